#!/usr/bin/env bash
# A CPU flame graph of the local cluster's three nodes under a redis-benchmark load.
# Starts the cluster if it is not running (and stops it again afterwards), runs the load,
# samples every thread of the three nodes with `perf record --call-graph dwarf` meanwhile,
# and writes an SVG (inferno; installed with cargo if missing).
# Usage: scripts/flamegraph.sh OUT.svg [redis-benchmark arguments]
#   default load: -c 50 -P 1 -t set -r 100000, for 6 s of sampling
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/flamegraph.sh OUT.svg [redis-benchmark arguments]}
shift
load=("$@")
[[ ${#load[@]} -gt 0 ]] || load=(-c 50 -P 1 -t set -r 100000)
seconds=${SECONDS_SAMPLED:-6}
for tool in perf redis-benchmark; do
    command -v $tool >/dev/null || {
        echo "flamegraph: $tool is missing; install it with: apt-get install linux-perf redis-tools" >&2
        exit 1
    }
done
if ! command -v inferno-flamegraph >/dev/null; then
    echo "flamegraph: installing inferno (cargo install --locked inferno)..."
    cargo install --locked inferno >/dev/null
fi
source scripts/cluster_lib.sh
ensure_cluster
work=$(mktemp -d)
cleanup() {
    [[ -n ${bench_pid:-} ]] && kill "$bench_pid" 2>/dev/null || true
    rm -rf "$work"
    stop_started_cluster
}
trap cleanup EXIT
pids=$(cat .holostore/cluster/pids/node{1,2,3}.pid | paste -sd,)
# Enough requests to outlast the sampling; the benchmark is stopped afterwards.
redis-benchmark -p 16379 -n 100000000 -q "${load[@]}" >/dev/null &
bench_pid=$!
sleep 1 # let the load reach its steady state before sampling
perf record -F 499 --call-graph dwarf,16384 -p "$pids" -o "$work/perf.data" -- sleep "$seconds" 2>/dev/null
kill "$bench_pid" 2>/dev/null || true
perf script -i "$work/perf.data" 2>/dev/null | inferno-collapse-perf >"$work/folded"
inferno-flamegraph --title "holo-node x3: redis-benchmark ${load[*]}" --minwidth 1 <"$work/folded" >"$out"
echo "flamegraph: $out ($(wc -l <"$work/folded") distinct stacks); samples by thread:"
# The first frame of a stack is the thread's name; node ids differ only in the suffix.
awk '{n = $NF; split($0, f, ";"); t = f[1]; sub(/-[0-9]+$/, "", t); s[t] += n; all += n}
     END {for (t in s) printf "  %-20s %5.1f%%\n", t, 100 * s[t] / all}' "$work/folded" | sort -k2 -rn
