# Sourced by scripts that need the local cluster for a while (bench_vs_redis.sh,
# flamegraph.sh): ensure_cluster starts it unless node 1 answers, and sets started_cluster
# to yes or no; stop_started_cluster stops it again only if ensure_cluster started it.
# Both expect the repository root as the working directory.
ensure_cluster() {
    started_cluster=no
    if ! { exec 3<>/dev/tcp/127.0.0.1/16379; } 2>/dev/null; then
        scripts/start_cluster.sh >/dev/null
        started_cluster=yes
    else
        exec 3<&- 3>&-
    fi
}

stop_started_cluster() {
    if [[ ${started_cluster:-no} == yes ]]; then
        scripts/cleanup_cluster.sh >/dev/null
    fi
}
