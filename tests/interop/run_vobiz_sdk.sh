#!/usr/bin/env bash
# Interop test: the official Vobiz Python SDK against a real sipd (see vobiz_sdk.py).
# Installs vobiz-python into a venv under the cargo target dir, builds sipd with the same
# profile as `cargo test` (so CI reuses that build), then runs the checks.
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

cargo build -p sipd
exec "$venv/bin/python" "$root/tests/interop/vobiz_sdk.py" "$target_dir/debug/sipd"
