#!/usr/bin/env bash
# SIP interop test: sipp (UDP, TCP; 1,000 endpoints), baresip (TLS, UDP), sipsak (UDP) and
# JsSIP (WSS) register with a real sipd; the REST API must show every registration, and every
# unregistration. See interop.py for the checks.
#
#   bash tests/interop/sip/run.sh            # SQLite; also PostgreSQL when
#   SIPD_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test bash tests/interop/sip/run.sh
#
# interop.py checks registrations, then calls.py calls through the proxy (sipp, baresip,
# sipsak, JsSIP), on the same databases.
#
# Installs missing tools first (install.sh; root), builds sipd with the dev profile into the
# repository's target directory exactly as `cargo test --workspace` does (in CI that build
# already exists, so this builds nothing), then runs interop.py. Ends with "N passed, N failed"; exits
# non-zero on any failure. All traffic is on 127.0.0.1 (SIP on 15060 UDP/TCP, 15061 TLS,
# 17443 WSS; sipp's UDP side on 25070); sipd is stopped on exit by interop.py, and any
# process left in this script's group by the trap below.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
cd "$root"
started=$SECONDS

# shellcheck disable=SC2317  # called by the trap
cleanup() {
    local code=$? pid
    # interop.py stops sipd itself; this catches anything it could not (e.g. killed by a signal).
    if [ -n "${interop_pid:-}" ] && kill -0 "$interop_pid" 2>/dev/null; then
        kill "$interop_pid" 2>/dev/null || true
        wait "$interop_pid" 2>/dev/null || true
    fi
    if [ -n "${scratch:-}" ]; then
        if [ -f "$scratch/sipd.pids" ]; then
            while read -r pid; do
                kill "$pid" 2>/dev/null || true
            done <"$scratch/sipd.pids"
        fi
        rm -rf "$scratch"
    fi
    exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

printf '== install (missing tools only)\n'
install_started=$SECONDS
bash "$here/install.sh"
printf 'install step: %ss\n' "$((SECONDS - install_started))"

printf '== build sipd (exactly as cargo test --workspace does: CI reuses that build)\n'
build_started=$SECONDS
sipd="$(cargo test --workspace --no-run --message-format=json-render-diagnostics |
    python3 -c '
import json, sys
for line in sys.stdin:
    message = json.loads(line)
    target = message.get("target", {})
    if (
        message.get("reason") == "compiler-artifact"
        and target.get("name") == "sipd"
        and "bin" in target.get("kind", [])
        and not message["profile"]["test"]  # the binary, not its unit-test harness
    ):
        print(message["executable"])
')"
if [ ! -x "$sipd" ]; then
    echo "cargo did not report the sipd binary" >&2
    exit 1
fi
printf 'build step: %ss (%s)\n' "$((SECONDS - build_started))" "$sipd"

scratch="$(mktemp -d)"

printf '== interop checks\n'
set +e
SIPD_HARNESS_PID_FILE="$scratch/sipd.pids" timeout --kill-after=30 900 python3 "$here/interop.py" \
    --sipd "$sipd" "$@" &
interop_pid=$!
wait "$interop_pid"
status=$?
set -e
interop_pid=

printf '== call interop checks (calls.py)\n'
set +e
SIPD_HARNESS_PID_FILE="$scratch/sipd.pids" timeout --kill-after=30 900 python3 "$here/calls.py" \
    --server sipd --sipd "$sipd" &
interop_pid=$!
wait "$interop_pid"
calls_status=$?
set -e
interop_pid=
if [ "$status" -eq 0 ]; then
    status=$calls_status
fi
printf 'SIP interop total: %ss (exit %s)\n' "$((SECONDS - started))" "$status"
exit "$status"
