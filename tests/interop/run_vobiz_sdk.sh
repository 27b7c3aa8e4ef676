#!/usr/bin/env bash
# Interop test: the official Vobiz Python SDK against a real sipd (see vobiz_sdk.py).
# Installs vobiz-python into a venv under the cargo target dir, builds sipd exactly as
# `cargo test --workspace` does (same profile and features, so after the test suites this
# builds nothing), then runs the checks.
#
#   bash tests/interop/run_vobiz_sdk.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
sdk_version="0.1.1"

target_dir="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
venv="$target_dir/interop-venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('vobiz-python') != '$sdk_version')" 2>/dev/null; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check "vobiz-python==$sdk_version"
fi

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
exec "$venv/bin/python" "$root/tests/interop/vobiz_sdk.py" "$sipd"
