#!/usr/bin/env bash
# Stops the local cluster started by start_cluster.sh (SIGTERM, then SIGKILL after 10 s).
# Usage: scripts/cleanup_cluster.sh [--purge]   (--purge also deletes data and logs)
set -euo pipefail
cd "$(dirname "$0")/.."
cluster=$PWD/.holostore/cluster
stopped=0
for pidfile in "$cluster"/pids/node*.pid; do
    [[ -f $pidfile ]] || continue
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "cleanup_cluster: pid $pid ignored SIGTERM; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        stopped=$((stopped + 1))
    fi
    rm -f "$pidfile"
done
echo "cleanup_cluster: stopped $stopped node(s)"
if [[ ${1:-} == "--purge" ]]; then
    rm -rf "$cluster"
    echo "cleanup_cluster: deleted $cluster"
fi
