#!/usr/bin/env bash
# REGISTER-with-digest load benchmark of sipd over UDP, driven by sipp (see register_load.py).
#
#   bash bench/register-load.sh [--db sqlite|postgres] [--endpoints 10000]
#        [--rates 1000,2000,4000,6000,8000,10000,12000] [--seconds 5]
#        [--memory-bindings 100000 | 0] [--json results.json]
#
# Builds sipd in release mode (the repository's target directory) and runs it with default
# settings (the MD5 challenge sipp 3.6.1 can answer), then runs the rate steps and the memory-per-binding phase on
# scratch databases: a SQLite file in a temp folder, or a database created (and dropped) on the
# PostgreSQL server at postgres://postgres@127.0.0.1:5432. Needs sipp (tests/interop/sip/install.sh),
# and psql for --db postgres. SIP on 127.0.0.1:16060, sipp on 127.0.0.1:26060; nothing else.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"

for tool in sipp cc python3; do
    if ! command -v "$tool" >/dev/null; then
        echo "register-load.sh: $tool is missing (bash tests/interop/sip/install.sh)" >&2
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

target_dir="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
cargo build --release -p sipd

echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores; $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "sipp: $(sipp -v 2>&1 | grep -o 'SIPp v[^ ]*' | head -1)"
SIPD_HARNESS_PID_FILE="$scratch/sipd.pids" timeout --kill-after=30 3600 \
    python3 "$here/register_load.py" --sipd "$target_dir/release/sipd" "$@" &
bench_pid=$!
wait "$bench_pid"
