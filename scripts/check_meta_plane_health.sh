#!/usr/bin/env bash
# Checks the meta-plane of the cluster that the node at TARGET belongs to. Exits 0 when it
# is healthy; otherwise prints one "UNHEALTHY: ..." line per problem and exits 1:
#   a member that cannot be reached (never reported as "lag 0"), members that still
#   disagree on the cluster map (epoch and hash) after GRACE_SECS, ranges with a gap or an
#   overlap, a range with missing replicas, an operation in flight longer than STUCK_SECS,
#   no controller lease or an expired one. Exit 2: TARGET itself cannot be asked.
# Usage: TARGET=127.0.0.1:15051 scripts/check_meta_plane_health.sh
#        HOLOCTL=/path/to/holoctl GRACE_SECS=10 STUCK_SECS=60 TARGET=... scripts/...
set -euo pipefail
target=${TARGET:-127.0.0.1:15051}
grace=${GRACE_SECS:-10}
stuck=${STUCK_SECS:-60}
if [[ -n ${HOLOCTL:-} ]]; then
    ctl=$HOLOCTL
else
    dir=${CARGO_TARGET_DIR:-$HOME/.cache/holostore-target}
    ctl=
    for candidate in "$dir/release/holoctl" "$dir/debug/holoctl" "$(command -v holoctl || true)"; do
        if [[ -n $candidate && -x $candidate ]]; then
            ctl=$candidate
            break
        fi
    done
    if [[ -z $ctl ]]; then
        echo "check_meta_plane_health: no holoctl found (build it: cargo build --release -p holo-node, or set HOLOCTL)" >&2
        exit 2
    fi
fi
set +e
"$ctl" --target "$target" health --grace-secs "$grace" --stuck-secs "$stuck"
status=$?
set -e
if [[ $status -ne 0 && $status -ne 1 ]]; then
    exit 2
fi
exit "$status"
