#!/usr/bin/env bash
# Instructions per call of the parser's functions, counted by callgrind while
# one parse bench runs. Unlike wall-clock time this does not depend on what
# else the machine is doing, so it compares two versions of the code reliably.
#
#   crates/sip-message/benches/instructions.sh [BENCH_FILTER] [FUNCTION...]
#   e.g. instructions.sh register/parse_and_read Via::parse Contact::parse
set -euo pipefail

filter="${1:-register/parse_and_read}"
shift || true
functions=("$@")
if ((${#functions[@]} == 0)); then
    functions=(read_registrar_fields Message::parse_with Credentials::parse_str
        Via::parse NameAddr::parse Contact::parse CSeq::parse uri::parse_uri
        params::parse_params str::converts::from_utf8)
fi

cd "$(dirname "$0")/.."
bench="$(cargo bench --bench parse --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "parse" and m.get("executable"):
        print(m["executable"])')"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
valgrind --tool=callgrind --callgrind-out-file="$out" "$bench" --bench --profile-time 2 "$filter" >/dev/null 2>&1

# A function's block in the caller tree: `<` lines (callers, with call
# counts), then its `*` line with the inclusive cost. Inlined code can split a
# function into several blocks; the one with callers carries the total.
callgrind_annotate --tree=caller --inclusive=yes "$out" | python3 -c '
import re, sys
functions = sys.argv[1:]
best = {}
for block in sys.stdin.read().split("\n\n"):
    lines = block.strip("\n").split("\n")
    own = [line for line in lines if "*  " in line]
    if not own:
        continue
    for function in functions:
        if re.search(re.escape(function) + r"( \[|$)", own[0]):
            cost = int(own[0].split()[0].replace(",", ""))
            calls = sum(int(n.replace(",", "")) for line in lines if "<" in line
                        for n in re.findall(r"\(([0-9,]+)x\)", line))
            if calls and cost > best.get(function, (0, 0))[0]:
                best[function] = (cost, calls)
for function in functions:
    if function in best:
        cost, calls = best[function]
        print(f"{function:32} {cost / calls:9.0f} instructions/call  ({calls} calls)")
' "${functions[@]}"
