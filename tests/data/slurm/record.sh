#!/bin/bash
# Record what hpgc's Slurm commands print, for tests/data/slurm/<version>/ (tests/unit/test_slurm_outputs.py).
# Run as root on the login node of a freshly started test cluster (root may choose job ids: the same ids on
# every version, so one list of expectations fits all):
#   cp tests/data/slurm/record.sh $RUN/shared/data/ && slurm-test-cluster/ctl exec login bash /data/record.sh OUT
# OUT (a folder under /data) gets sacct.txt, squeue.txt and version.
set -u
out=${1:?output folder}; mkdir -p "$out"; cd /tmp
sb() { local id=$1; shift; sbatch --parsable --jobid="$id" -o /dev/null "$@"; }
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
sb 61 -J s-het het.sh
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
