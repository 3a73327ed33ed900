#!/bin/bash
# Start or stop a node's daemons (run inside the node; `ctl` calls it for fault injection).
#   svc.sh start|stop|status NAME...   (stop all: every daemon of this node)
set -u
cmd=$1; shift
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
pidf() { echo "/run/hpgc/$1.pid"; }
running() { local p; p=$(cat "$(pidf "$1")" 2>/dev/null) && kill -0 "$p" 2>/dev/null; }

# Every daemon runs in the foreground, detached; PID 1 reaps it.
launch() {
    local name=$1; shift
    running "$name" && return 0
    setsid "$@" >> "/var/log/hpgc/$name.log" 2>&1 < /dev/null &
    echo $! > "$(pidf "$name")"
}

wait_for() {  # wait_for SECONDS CMD...   (gives up early when $WATCH, a daemon, has died)
    local t=$(( $1 * 10 )); shift
    until "$@" >/dev/null 2>&1; do
        t=$((t - 1)); [ $t -gt 0 ] || return 1; sleep 0.1
        [ -z "${WATCH:-}" ] || running "$WATCH" || return 1
    done
}

start_one() {
    case $1 in
    munge)
        mkdir -p /run/munge /var/lib/munge /var/log/munge
        chown munge:munge /run/munge /var/lib/munge /var/log/munge
        launch munge setpriv --reuid=munge --regid=munge --clear-groups munged -F
        wait_for 10 test -S /run/munge/munge.socket.2 ;;
    mariadb)
        # the socket's folder: /run/mysqld up to trixie's MariaDB, /run/mariadbd in sid's
        mkdir -p /run/mysqld /run/mariadbd; chown mysql:mysql /run/mysqld /run/mariadbd
        launch mariadb setpriv --reuid=mysql --regid=mysql --clear-groups \
            mariadbd --bind-address=127.0.0.1 --skip-name-resolve
        wait_for 30 mariadb -e 'select 1'
        mariadb -e "CREATE USER IF NOT EXISTS slurm@localhost IDENTIFIED BY 'slurm';
                    GRANT ALL ON slurm_acct_db.* TO slurm@localhost;" ;;
    slurmdbd)
        # slurmdbd 24.11 with MariaDB 11.8 dies on its first start against an empty
        # database (error 5027); the next start works. So: retry.
        local i
        for i in 1 2 3 4 5 6; do
            launch slurmdbd slurmdbd -D
            if WATCH=slurmdbd wait_for 20 sacctmgr -n show cluster; then return 0; fi
            stop_one slurmdbd
        done
        return 1 ;;
    accounting)
        sacctmgr -i add cluster hpgc >/dev/null 2>&1 || true
        sacctmgr -i add account hpgc Cluster=hpgc Description=test Organization=hpgc >/dev/null 2>&1 || true
        sacctmgr -i add user alice,bob Account=hpgc Cluster=hpgc >/dev/null 2>&1 || true
        # A second account and QOS levels (enforced, slurm.conf): alice may also charge geo, at QOS normal
        # only; bob is not in geo, and nobody may use QOS high.
        sacctmgr -i add qos high Priority=10 >/dev/null 2>&1 || true
        sacctmgr -i add account geo Cluster=hpgc Description=geo Organization=hpgc >/dev/null 2>&1 || true
        sacctmgr -i add user alice Account=geo Cluster=hpgc QOS=normal DefaultQOS=normal >/dev/null 2>&1 || true ;;
    slurmctld)
        launch slurmctld slurmctld -D -i
        wait_for 30 scontrol ping ;;
    slurmd)
        launch slurmd slurmd -D ;;
    sshd)
        mkdir -p /run/sshd
        launch sshd /usr/sbin/sshd -D -e ;;
    *) echo "unknown daemon $1" >&2; return 2 ;;
    esac
}

stop_one() {
    local p i
    p=$(cat "$(pidf "$1")" 2>/dev/null) || return 0
    kill -TERM "$p" 2>/dev/null
    for i in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
    rm -f "$(pidf "$1")"
}

all() { case $(hostname) in login) echo sshd slurmctld slurmdbd mariadb munge ;; *) echo slurmd munge ;; esac; }

rc=0
case $cmd in
start)  for d in "$@"; do start_one "$d" || { echo "$(hostname): $d did not start" >&2; rc=1; }; done ;;
stop)   [ "$*" = all ] && set -- $(all); for d in "$@"; do stop_one "$d"; done ;;
status) [ $# = 0 ] && set -- $(all)
        for d in "$@"; do if running "$d"; then echo "$d running"; else echo "$d stopped"; rc=3; fi; done ;;
*) echo "usage: svc.sh start|stop|status NAME..." >&2; rc=2 ;;
esac
exit $rc
