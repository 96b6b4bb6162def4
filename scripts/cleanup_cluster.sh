#!/usr/bin/env bash
# Stops the local cluster started by start_cluster.sh.
set -euo pipefail
echo "cleanup_cluster: no cluster to stop; the holo-node server is not built yet." >&2
