#!/usr/bin/env bash
# REGISTER-with-digest load benchmark over UDP, driven by sipp: sipd and the Kamailio anchor,
# the same load, side by side (see register_load.py).
#
#   bash bench/register-load.sh [--servers sipd,kamailio] [--db sqlite|postgres]
#        [--sockets one|per-phone|one,per-phone] [--endpoints 10000]
#        [--rates 1000,2000,4000,6000,8000,10000,12000] [--seconds 5] [--repeat RATE:COUNT]
#        [--memory-bindings 100000 | 0] [--kamailio-dbmode 1] [--json results.json]
#
#   e.g. bash bench/register-load.sh --db postgres --rates 4000,6000,8000 --repeat 8000:3 \
#            --seconds 60 --sockets one,per-phone --memory-bindings 0
#
# Builds sipd in release mode (the repository's target directory; when sipd is among
# --servers) and runs it with default settings (the MD5 challenge sipp 3.6.1 can answer) on
# scratch databases: a SQLite file in a temp folder, or a database created (and dropped) on the
# PostgreSQL server at postgres://postgres@127.0.0.1:5432. Starts the Kamailio anchor from
# ../shared/anchors/kamailio (its setup-db.sh first when its database lacks the users: root and
# the local PostgreSQL 15 cluster). --sockets one: every REGISTER from one UDP socket (sipp -t
# u1); per-phone: a socket per REGISTER exchange (sipp -t un); one,per-phone: both, a table
# each. The memory phase is sipd's only (--memory-bindings 0 skips it). Needs sipp
# (tests/interop/sip/install.sh), psql for --db postgres, and kamailio with psql for the anchor
# (INSTALL_KAMAILIO=1 bash tests/interop/sip/install.sh). SIP: sipd on 127.0.0.1:16060,
# Kamailio on 127.0.0.1:25060, sipp on 127.0.0.1:26060 (to sipd) and 26061 (to Kamailio), plus
# ephemeral ports with --sockets per-phone; nothing else.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"

servers="sipd,kamailio"
db="sqlite"
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[$i]}" in
    --servers) servers="${args[$((i + 1))]:-}" ;;
    --servers=*) servers="${args[$i]#--servers=}" ;;
    --db) db="${args[$((i + 1))]:-}" ;;
    --db=*) db="${args[$i]#--db=}" ;;
    esac
done

tools=(sipp python3)
if [[ ",$servers," == *",sipd,"* ]]; then
    tools+=(cc)
fi
if [[ ",$servers," == *",kamailio,"* ]]; then
    tools+=(kamailio psql)
elif [ "$db" = postgres ]; then
    tools+=(psql)
fi
for tool in "${tools[@]}"; do
    if ! command -v "$tool" >/dev/null; then
        echo "register-load.sh: $tool is missing (INSTALL_KAMAILIO=1 bash tests/interop/sip/install.sh)" >&2
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
echo "sipp: $(sipp -v 2>&1 | grep -o 'SIPp v[^ ]*' | head -1)$(
    [[ ",$servers," == *",kamailio,"* ]] && echo "; kamailio: $(kamailio -v 2>/dev/null | head -1 | cut -d' ' -f3 || true)")"
# 60 s steps, two servers, two socket modes and repeats take well over an hour.
SIPD_HARNESS_PID_FILE="$scratch/sipd.pids" timeout --kill-after=30 14400 \
    python3 "$here/register_load.py" "${sipd_args[@]}" "$@" &
bench_pid=$!
wait "$bench_pid"
