#!/usr/bin/env bash
# Runs a register workload against a running cluster and checks its history for
# linearizability with holo-harness. With no NODES, it starts a fresh local cluster (port 0,
# redb) for the run and stops it afterwards.
#
# Environment (all optional):
#   NODES=127.0.0.1:16379,127.0.0.1:16380,127.0.0.1:16381   RESP addresses
#   CLIENTS=8  KEYS=32  SET_PCT=50  DURATION=20s  OP_TIMEOUT=2s  MODE=register|incr|multi
#   ROUNDS=1      workload + check rounds (fresh keys each round)
#   FAIL_FAST=1   stop at the first failing round (default: run every round, then report)
#   OUT=.holostore/check   where the history and any failure pictures go
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-$HOME/.cache/holostore-target}
harness=$target/release/holo-harness
if [[ ! -x $harness || ! -x $target/release/holo-node ]]; then
    echo "check_linearizability: building the release binaries..."
    CARGO_TARGET_DIR=$target cargo build --release --locked -p holo-node -p holo-harness
fi
out=${OUT:-.holostore/check}
mkdir -p "$out"
cluster_dir=$out/cluster
if [[ -z ${NODES:-} ]]; then
    [[ -d $cluster_dir ]] && "$harness" cluster down --dir "$cluster_dir" --purge >/dev/null 2>&1 || true
    rm -rf "$cluster_dir"
    "$harness" cluster up --dir "$cluster_dir" --resp-port 0 --grpc-port 0 --bin "$target/release/holo-node"
    trap '"$harness" cluster down --dir "$cluster_dir" --purge >/dev/null || true' EXIT
    nodes_args=(--dir "$cluster_dir")
else
    nodes_args=(--nodes "$NODES")
fi
failed=0
rounds=${ROUNDS:-1}
for round in $(seq "$rounds"); do
    history=$out/history-$round.jsonl
    echo "check_linearizability: round $round of $rounds"
    if "$harness" workload "${nodes_args[@]}" \
        --clients "${CLIENTS:-8}" --keys "${KEYS:-32}" --set-pct "${SET_PCT:-50}" \
        --duration "${DURATION:-20s}" --op-timeout "${OP_TIMEOUT:-2s}" --mode "${MODE:-register}" \
        --key-prefix "chk$(date +%s)r$round-" --seed "$round" --out "$history" --check; then
        echo "check_linearizability: round $round linearizable ($history)"
    else
        failed=$((failed + 1))
        echo "check_linearizability: round $round FAILED ($history)" >&2
        [[ ${FAIL_FAST:-0} == 1 ]] && break
    fi
done
if ((failed > 0)); then
    echo "check_linearizability: $failed round(s) FAILED" >&2
    exit 1
fi
echo "check_linearizability: all $rounds round(s) linearizable"
