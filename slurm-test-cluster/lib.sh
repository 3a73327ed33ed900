# Shared settings and helpers for up/down/status/ctl. Sourced, never run.
umask 022  # the nodes' daemons (munge) need their files readable as before: never the caller's umask (e.g. 077)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=$HERE/.state
CACHE=${HPGC_CLUSTER_CACHE:-/var/cache/hpgc-slurm-test-cluster}
# Everything a running cluster owns on the host (unpacked root, per-node overlays,
# the shared /home and /data). `down` deletes it; the cache survives.
RUN=${HPGC_CLUSTER_RUN:-/var/lib/hpgc-slurm-test-cluster}
# A /24 used for nothing but these namespaces; the host end of the bridge is .1.
NET=${HPGC_CLUSTER_NET:-10.213.47}
# A second cluster can run beside the first: start it from another checkout (its own .state/)
# with other HPGC_CLUSTER_RUN, HPGC_CLUSTER_NET, HPGC_CLUSTER_BRIDGE and HPGC_CLUSTER_NS_PREFIX.
BRIDGE=${HPGC_CLUSTER_BRIDGE:-hpgcbr0}
PREFIX=${HPGC_CLUSTER_NS_PREFIX:-hpgc-}   # network namespace and host veth names start with this
# The Debian suite of the root, hence the Slurm: bookworm 22.05, trixie 24.11 (default), sid 26.05.
SUITE=${HPGC_CLUSTER_SUITE:-trixie}
case $SUITE in bookworm|trixie|sid) ;; *) echo "HPGC_CLUSTER_SUITE: bookworm, trixie or sid, not $SUITE" >&2; exit 2 ;; esac
export HPGC_CLUSTER_SUITE=$SUITE
NODES=(login node1 node2)
declare -A ADDR=([login]=$NET.10 [node1]=$NET.11 [node2]=$NET.12)
CLUSTER_NAME=hpgc
PARTITION=debug
USERS=(alice bob)

export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
need_root() { [ "$(id -u)" = 0 ] || die "run me as root"; }

# Host PID of a node's init (PID 1 inside the node), or nothing.
node_pid() {
    local f=$RUN/nodes/$1/unshare.pid upid
    [ -f "$f" ] || return 0
    upid=$(cat "$f")
    [ -d /proc/$upid ] || return 0
    # A stale pid file must never make us signal someone else's process.
    tr '\0' ' ' < /proc/$upid/cmdline 2>/dev/null | grep -qF "node/init.sh $1 $RUN " || return 0
    # unshare --fork waits for its one child: that child is the node's PID 1.
    cat /proc/$upid/task/$upid/children 2>/dev/null | awk '{print $1}'
}
node_up() { [ -n "$(node_pid "$1")" ]; }

# Run a command inside a node: all its namespaces, its root and its cwd.
in_node() {
    local node=$1 pid; shift
    pid=$(node_pid "$node"); [ -n "$pid" ] || die "node $node is not running"
    nsenter -t "$pid" -a -r -w "$@"
}
