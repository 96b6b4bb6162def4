#!/usr/bin/env bash
# Instructions per transaction of the Accord core (holo-accord/benches/core.rs), counted by
# valgrind's callgrind: stable on a noisy machine, so a change's effect on the per-command
# CPU cost shows without a quiet one. The marginal cost is measured (runs of N and 2N
# transactions, difference over N), so set-up does not count.
#   TXNS   transactions of the shorter run (default 2000)
set -euo pipefail
cd "$(dirname "$0")/.."

TXNS=${TXNS:-2000}
if ! command -v valgrind >/dev/null; then
    if [ "$(id -u)" -eq 0 ]; then sudo=(); elif sudo -n true 2>/dev/null; then sudo=(sudo -n); else
        echo "bench_cpu: valgrind is missing: sudo apt-get install -y valgrind" >&2
        exit 1
    fi
    echo "bench_cpu: installing valgrind"
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq valgrind >/dev/null
fi

bin=$(cargo bench --locked --no-run -p holo-accord --bench core --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "core" and m.get("executable"):
        print(m["executable"])')
[ -x "$bin" ] || { echo "bench_cpu: the core benchmark did not build" >&2; exit 1; }

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
instructions() { # scenario txns
    valgrind --tool=callgrind --callgrind-out-file="$out/cg" "$bin" --scenario "$1" --txns "$2" \
        >/dev/null 2>&1
    awk '/^(summary|totals):/ {print $2; exit}' "$out/cg"
}
echo "Accord core, three in-memory nodes, instructions per transaction (all three nodes' work):"
for scenario in write read batch; do
    one=$(instructions "$scenario" "$TXNS")
    two=$(instructions "$scenario" $((2 * TXNS)))
    echo "  $scenario: $(((two - one) / TXNS))"
done
