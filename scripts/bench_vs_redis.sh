#!/usr/bin/env bash
# Side-by-side throughput of the local HoloStore cluster and a plain redis-server (one node,
# nothing durable) on this machine, in one run: redis-benchmark -c 50 with -P 1 and -P 100,
# SET and GET. Starts the cluster if it is not running (and stops it again afterwards).
# Usage: scripts/bench_vs_redis.sh [requests for -P 1, default 100000]
set -euo pipefail
cd "$(dirname "$0")/.."
n1=${1:-100000}
n100=$((n1 * 10))
redis_port=16390
for tool in redis-server redis-benchmark; do
    command -v $tool >/dev/null || {
        echo "bench_vs_redis: $tool is missing; install it with: apt-get install redis-server redis-tools" >&2
        exit 1
    }
done
source scripts/cluster_lib.sh
ensure_cluster
redis-server --port $redis_port --save "" --appendonly no --daemonize no >/dev/null 2>&1 &
redis_pid=$!
cleanup() {
    kill $redis_pid 2>/dev/null || true
    stop_started_cluster
}
trap cleanup EXIT
until redis-cli -p $redis_port PING >/dev/null 2>&1; do sleep 0.1; done

printf '%-26s %-12s %12s %10s %10s\n' run server "requests/s" "p50 ms" "p99 ms"
for test in set get; do
    for pipeline in 1 100; do
        n=$n1
        [[ $pipeline == 100 ]] && n=$n100
        for server in redis-server holostore; do
            port=16379
            [[ $server == redis-server ]] && port=$redis_port
            line=$(redis-benchmark -p $port -c 50 -P $pipeline -n "$n" -t $test -r 100000 --csv | tail -n 1)
            IFS=, read -r _ rps _ _ p50 _ p99 _ <<<"${line//\"/}"
            printf '%-26s %-12s %12s %10s %10s\n' "${test^^} -c 50 -P $pipeline" $server "$rps" "$p50" "$p99"
        done
    done
done
