#!/bin/bash
# Record what hpgc's Slurm commands print, for tests/data/slurm/<version>/ (tests/unit/test_slurm_outputs.py).
# Run as root on the login node of a freshly started test cluster, before any other job: it restarts
# slurmctld with FirstJobId=52, so that the jobs get the same ids on every version and one list of
# expectations fits all:
#   cp tests/data/slurm/record.sh $RUN/shared/data/ && slurm-test-cluster/ctl exec login bash /data/record.sh OUT
# OUT (a folder under /data) gets sacct.txt, squeue.txt and version.
set -u
out=${1:?output folder}; mkdir -p "$out"; cd /tmp
grep -q '^FirstJobId=' /etc/slurm/slurm.conf || echo FirstJobId=52 >> /etc/slurm/slurm.conf
/opt/hpgc-node/svc.sh stop slurmctld; /opt/hpgc-node/svc.sh start slurmctld
for _ in $(seq 60); do [ "$(sinfo -h -o %t | sort -u)" = idle ] && break; sleep 1; done  # nodes back
sb() {  # sb ID OPTIONS...: submit, and stop if Slurm chose another id
    local want=$1 got; shift
    got=$(sbatch --parsable -o /dev/null "$@") || exit 1
    [ "${got%%;*}" = "$want" ] || { echo "got job id $got, not $want: not a fresh cluster" >&2; exit 1; }
}
cat > het.sh <<'SH'
#!/bin/sh
#SBATCH -n1
#SBATCH hetjob
#SBATCH -n1
true
SH
sb 52 -J s-ok --wrap true
sb 53 -J s-fail --wrap 'exit 3'
sb 54 -J s-arr --array=0-2 --wrap true
sb 55 -J s-slow --wrap 'sleep 120'
sb 56 -J s-timeout --time=0:01 --wrap 'sleep 600'
sb 57 -J s-arrfail --array=0-1%1 --wrap 'exit 3'
for id in 58 59 60; do sb $id -J s-filler --hold --wrap true; done  # ids 58-60, never in the records
scancel 58 59 60
sb 61 -J s-het het.sh   # takes 61 and 62
sb 63 -J s-pend --begin=now+1hour --wrap true
sb 64 -J s-arrp --array=0-3%1 --begin=now+1hour --wrap true
sleep 6
scancel 55
sleep 4
squeue --noheader --format='%i|%T|%r|%j' > "$out/squeue.txt"
# 56 ends at its time limit (a minute, then KillWait): wait for sacct to say so
for _ in $(seq 60); do
    sacct -n -X -j 56 -o State | grep -q TIMEOUT && break; sleep 5
done
sleep 3
sacct --parsable2 --noheader -j 52,53,54,55,56,57,61,63 \
    --format=JobID,JobName,State,ExitCode,Reason,NodeList,Elapsed,TotalCPU,MaxRSS,Start,End > "$out/sacct.txt"
sbatch --version > "$out/version"
scancel 63 64
