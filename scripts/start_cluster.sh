#!/usr/bin/env bash
# Starts a local 3-node HoloStore cluster in the background: RESP 16379-16381,
# gRPC 15051-15053, redb storage, from config/node{1,2,3}.toml.
# State lives in .holostore/cluster/ (data/, logs/, pids/); data survives a stop.
# Usage: scripts/start_cluster.sh            (builds the release binary if missing)
#        HOLO_NODE_BIN=/path/to/holo-node scripts/start_cluster.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=${CARGO_TARGET_DIR:-$HOME/.cache/holostore-target}
bin=${HOLO_NODE_BIN:-$target/release/holo-node}
ctl=$(dirname "$bin")/holoctl
cluster=$root/.holostore/cluster
mkdir -p "$cluster/data" "$cluster/logs" "$cluster/pids"

if [[ ! -x $bin ]]; then
    echo "start_cluster: building the release binaries (first run)..."
    CARGO_TARGET_DIR=$target cargo build --release --locked -p holo-node
fi

# A killed node can linger as a zombie until its parent (init here) reaps it: not alive.
alive() {
    [[ -f $1 ]] || return 1
    local pid state
    pid=$(cat "$1")
    kill -0 "$pid" 2>/dev/null || return 1
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
    [[ $state != Z ]]
}

ping_node() { # port -> 0 when the node answers PING with PONG
    local reply
    { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
    printf 'PING\r\n' >&3
    read -r -t 2 reply <&3 || reply=
    exec 3<&- 3>&-
    [[ $reply == "+PONG"* ]]
}

for i in 1 2 3; do
    pidfile=$cluster/pids/node$i.pid
    if alive "$pidfile"; then
        echo "node $i already running (pid $(cat "$pidfile"))"
        continue
    fi
    nohup "$bin" --config "config/node$i.toml" --data-dir "$cluster/data/node$i" \
        >>"$cluster/logs/node$i.log" 2>&1 </dev/null &
    echo $! >"$pidfile"
done

deadline=$((SECONDS + 60))
for i in 1 2 3; do
    port=$((16378 + i))
    until ping_node "$port"; do
        if ! alive "$cluster/pids/node$i.pid"; then
            echo "start_cluster: node $i exited; the end of its log ($cluster/logs/node$i.log):" >&2
            tail -n 20 "$cluster/logs/node$i.log" >&2
            exit 1
        fi
        if ((SECONDS > deadline)); then
            echo "start_cluster: node $i does not answer on port $port after 60 s; see $cluster/logs/node$i.log" >&2
            exit 1
        fi
        sleep 0.2
    done
done

cat <<MSG
HoloStore is serving: 3 nodes, redb, data in .holostore/cluster/data
  connect:   redis-cli -p 16379        (or 16380, 16381: any node serves any key)
  try:       redis-cli -p 16379 SET greeting hello && redis-cli -p 16381 GET greeting
  bench:     redis-benchmark -p 16379 -t set,get -n 100000 -P 100 -q
  admin:     $ctl --target 127.0.0.1:15051 topology    (or state, meta-status, controller-status)
  split:     $ctl --target 127.0.0.1:15051 split 4 k   (merge 4 5; health: TARGET=127.0.0.1:15051 scripts/check_meta_plane_health.sh)
  metrics:   redis-cli -p 16379 HOLOMETRICS
  logs:      .holostore/cluster/logs/node{1,2,3}.log
  stop:      make stop      (scripts/cleanup_cluster.sh --purge also deletes the data)
MSG
