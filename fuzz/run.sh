#!/usr/bin/env bash
# Runs every fuzz target for a bounded time on the stable toolchain.
#
#   fuzz/run.sh [SECONDS]      # SECONDS per target, default 60
#
# Installs cargo-fuzz if it is missing, seeds corpus/<target>/ from the SIP
# torture messages (corpus/ is generated and git-ignored), and exits non-zero
# if any target found a crash (the input is saved under artifacts/<target>/).
set -euo pipefail

seconds="${1:-60}"
fuzz_dir="$(cd "$(dirname "$0")" && pwd)"
torture_dir="$fuzz_dir/../crates/sip-message/tests/torture"
targets=(parse_message framer digest proxy)

# A private target dir, so fuzz builds never invalidate the workspace's.
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$fuzz_dir/target}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    # Its own target dir, so the install does not rebuild the fuzz targets' deps.
    CARGO_TARGET_DIR="$CARGO_TARGET_DIR/cargo-fuzz-install" cargo install cargo-fuzz --locked
fi

for target in "${targets[@]}"; do
    mkdir -p "$fuzz_dir/corpus/$target"
done
cp "$torture_dir"/*.sip "$fuzz_dir/corpus/parse_message/"
# The framer's first input byte picks limits and chunking (see
# tests/fuzz_exercise/framer.rs); prefix each message with a few such bytes.
for file in "$torture_dir"/*.sip; do
    for control in 00 07 2a; do
        { printf "\\x$control"; cat "$file"; } >"$fuzz_dir/corpus/framer/$(basename "$file" .sip)-$control"
    done
done
cp "$fuzz_dir"/seeds/digest/* "$fuzz_dir/corpus/digest/"
# The proxy's first input byte steers its simulated phones; the rest is a stream of
# messages (see crates/sipd-proxy/tests/fuzz_exercise/proxy.rs).
mkdir -p "$fuzz_dir/corpus/proxy"
for file in "$torture_dir"/*.sip "$fuzz_dir"/seeds/proxy/*; do
    [ -f "$file" ] || continue
    for control in 00 01 05; do
        { printf "\\x$control"; cat "$file"; } >"$fuzz_dir/corpus/proxy/$(basename "$file")-$control"
    done
done
# Auth header values found in the torture messages, one file each.
grep -ahiE '^(proxy-)?(authorization|authenticate|www-authenticate):' "$torture_dir"/*.sip |
    sed -E 's/^[^:]*:[ \t]*//' | tr -d '\r' | awk -v dir="$fuzz_dir/corpus/digest" \
    '{ f = sprintf("%s/torture-%03d", dir, NR); printf "%s", $0 > f; close(f) }'

# cargo-fuzz passes nightly-only flags (-Zsanitizer=address, ...); only a
# stable toolchain is available here, and RUSTC_BOOTSTRAP lets it accept them.
# Set only now: build scripts that probe for nightly (proc-macro2) must not
# see it while cargo-fuzz itself is installed.
export RUSTC_BOOTSTRAP=1

cd "$fuzz_dir"
failed=()
for target in "${targets[@]}"; do
    echo "== fuzzing $target for ${seconds}s"
    if ! cargo fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1; then
        failed+=("$target")
    fi
done

if ((${#failed[@]})); then
    echo "fuzz targets that failed: ${failed[*]}" >&2
    exit 1
fi
echo "all fuzz targets ran ${seconds}s without a crash"
