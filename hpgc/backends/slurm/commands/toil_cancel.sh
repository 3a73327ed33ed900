# Dismiss a job, and if it is a Toil leader every step job it started, in one round trip (toil_cancel.py).
# Filled in: SCANCEL (the job's own scancel), TOIL_DIR, STEP_NAME, LEADER (its id, or '' when never stored).
{{SCANCEL}}
rc=$?
if [ -d {{TOIL_DIR}} ]; then
  me=$(id -un)
  # the steps it has submitted; then, once Slurm has the leader gone, those it was submitting meanwhile
  scancel -u "$me" --name={{STEP_NAME}} 2>/dev/null
  i=0
  while [ -n {{LEADER}} ] && [ $i -lt 40 ] && squeue -h -j {{LEADER}} -o %i 2>/dev/null | grep -q .; do
    sleep 0.25; i=$((i + 1))
  done
  scancel -u "$me" --name={{STEP_NAME}} 2>/dev/null
fi
exit $rc
