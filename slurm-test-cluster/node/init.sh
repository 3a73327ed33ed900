#!/bin/bash
# First process of a node, already in its own network, UTS, mount and PID namespaces
# (PID 1 there). Assembles the node's file system and becomes the node's boot script.
#   init.sh NAME RUN
set -euo pipefail
NAME=$1 RUN=$2
N=$RUN/nodes/$NAME M=$RUN/nodes/$NAME/merged
hostname "$NAME"
# One read-only root for all nodes; each node writes only into its own upper dir. The real
# path, so that `up` can see in /proc/*/mountinfo which cached roots are in use.
mount -t overlay overlay -o "lowerdir=$(readlink -f "$RUN/root"),upperdir=$N/upper,workdir=$N/work" "$M"
mount -t proc proc "$M/proc"
mount -t sysfs sysfs "$M/sys"
# A private /dev with just what daemons, sshd and Apptainer (squashfuse: /dev/fuse) use.
mount -t tmpfs -o mode=755,size=16m tmpfs "$M/dev"
mknod -m 666 "$M/dev/null" c 1 3;    mknod -m 666 "$M/dev/zero" c 1 5
mknod -m 666 "$M/dev/full" c 1 7;    mknod -m 666 "$M/dev/random" c 1 8
mknod -m 666 "$M/dev/urandom" c 1 9; mknod -m 666 "$M/dev/tty" c 5 0
mknod -m 666 "$M/dev/fuse" c 10 229
mkdir -m 755 "$M/dev/pts"; mkdir -m 1777 "$M/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts "$M/dev/pts"
mount -t tmpfs -o mode=1777 tmpfs "$M/dev/shm"
ln -s pts/ptmx "$M/dev/ptmx"; ln -s /proc/self/fd "$M/dev/fd"
ln -s /proc/self/fd/0 "$M/dev/stdin"; ln -s /proc/self/fd/1 "$M/dev/stdout"
ln -s /proc/self/fd/2 "$M/dev/stderr"
mount -t tmpfs -o mode=755 tmpfs "$M/run"
mount -t tmpfs -o mode=1777 tmpfs "$M/tmp"
# The shared file system: the same /home and /data on every node.
mkdir -p "$M/data" "$M/opt/hpgc-node"
mount --bind "$RUN/shared/home" "$M/home"
mount --bind "$RUN/shared/data" "$M/data"
mount --bind "$RUN/etc/slurm" "$M/etc/slurm"
mount --bind "$RUN/etc/munge" "$M/etc/munge"
mount --bind -o ro "$RUN/node-scripts" "$M/opt/hpgc-node"
# pivot_root, not chroot: the kernel refuses new user namespaces to a chrooted
# process, and Apptainer (not setuid here) runs containers in user namespaces.
cd "$M"
mkdir -p .oldroot
pivot_root . .oldroot
cd /
umount -l /.oldroot
rmdir /.oldroot
exec /opt/hpgc-node/boot.sh
