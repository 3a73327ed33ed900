#!/bin/bash
# PID 1 of a node: start its daemons, then reap orphans until told to stop.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8
svc=/opt/hpgc-node/svc.sh
trap '$svc stop all; exit 0' TERM INT
mkdir -p /run/hpgc /var/log/hpgc
case $(hostname) in
    login) $svc start munge mariadb slurmdbd accounting slurmctld sshd ;;
    *)     $svc start munge slurmd ;;
esac
touch /run/hpgc/booted
while :; do sleep 5 & wait $!; done
