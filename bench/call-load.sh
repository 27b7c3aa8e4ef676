#!/usr/bin/env bash
# Call-load benchmark through the proxy: sipd and the Kamailio anchor, the same sipp load, side
# by side (see call_load.py).
#
#   bash bench/call-load.sh [--servers sipd,kamailio] [--db postgres|sqlite]
#        [--rates 500,1000,1500,2000] [--seconds 20] [--pause-ms 1000]
#        [--callers 1000] [--callees 100] [--repeat 2000:3] [--json results.json]
#
# Builds sipd in release mode (when sipd is among --servers) and runs it on a scratch database
# (a SQLite file in a temp folder, or a database created and dropped on the PostgreSQL server at
# postgres://postgres@127.0.0.1:5432); starts the Kamailio anchor from
# ../shared/anchors/kamailio (its setup-db.sh first when its database lacks the users: root and
# the local PostgreSQL 15 cluster). Needs sipp (tests/interop/sip/install.sh), psql, kamailio.
# SIP: sipd on 127.0.0.1:16070, Kamailio on 127.0.0.1:25060, sipp on 127.0.0.1:26070-26081.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"

servers="sipd,kamailio"
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[$i]}" in
    --servers) servers="${args[$((i + 1))]:-}" ;;
    --servers=*) servers="${args[$i]#--servers=}" ;;
    esac
done

for tool in sipp psql python3; do
    if ! command -v "$tool" >/dev/null; then
        echo "call-load.sh: $tool is missing (bash tests/interop/sip/install.sh)" >&2
        exit 1
    fi
done

scratch="$(mktemp -d)"
# shellcheck disable=SC2317  # called by the trap
cleanup() {
    local code=$? pid
    if [ -n "${bench_pid:-}" ] && kill -0 "$bench_pid" 2>/dev/null; then
        kill "$bench_pid" 2>/dev/null || true
        wait "$bench_pid" 2>/dev/null || true
    fi
    if [ -f "$scratch/sipd.pids" ]; then
        while read -r pid; do
            kill "$pid" 2>/dev/null || true
        done <"$scratch/sipd.pids"
    fi
    rm -rf "$scratch"
    exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

sipd_args=()
if [[ ",$servers," == *",sipd,"* ]]; then
    target_dir="$(cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
    cargo build --release -p sipd
    sipd_args=(--sipd "$target_dir/release/sipd")
fi

echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores; $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "sipp: $(sipp -v 2>&1 | grep -o 'SIPp v[^ ]*' | head -1); kamailio: $(kamailio -v 2>/dev/null | head -1 | cut -d' ' -f3 || true)"
SIPD_HARNESS_PID_FILE="$scratch/sipd.pids" timeout --kill-after=30 7200 \
    python3 "$here/call_load.py" "${sipd_args[@]}" "$@" &
bench_pid=$!
wait "$bench_pid"
