# One poll of a group of jobs, one round trip (see poll.py). Filled in: CHUNK, FIELDS, MARK,
# PROGRESS_FILE, FILES_TIMEOUT_S, PROGRESS_AWK. stdin: one 'SLURM_ID|JOB_DIR' line per job.
# It runs sacct and squeue and reads progress files; it interprets nothing Slurm prints.
t=$(mktemp -d) || exit 1
trap 'rm -rf "$t"' EXIT
cat > "$t/jobs"
cut -d'|' -f1 "$t/jobs" | xargs -n {{CHUNK}} | tr ' ' ',' > "$t/chunks"
while read -r ids; do
  sacct --parsable2 --noheader -j "$ids" --format={{FIELDS}} 2>>"$t/err" || echo "{{MARK}} sacct-failed" >> "$t/err"
done < "$t/chunks" > "$t/sacct"
echo "{{MARK}} sacct"; cat "$t/sacct"
if [ -s "$t/err" ]; then echo "{{MARK}} sacct-err"; cat "$t/err"; fi
echo "{{MARK}} files"
# job dirs belong to their users, who may put a FIFO where the progress file should be: only regular
# files are read, and that part is time-boxed so a swap after the check cannot stall the poll
cut -d'|' -f2 "$t/jobs" | sed 's|$|/{{PROGRESS_FILE}}|' | xargs -r sh -c 'find "$@" -maxdepth 0 -type f 2>/dev/null' sh \
  > "$t/regular"
timeout {{FILES_TIMEOUT_S}} awk -F'|' -v R="$t/regular" -v MARK='{{MARK}}' -v P='{{PROGRESS_FILE}}' \
  {{PROGRESS_AWK}} "$t/jobs"
# squeue for the ids sacct printed no line of (slurmdbd lags behind slurmctld): compared as text
cut -d'|' -f1 "$t/sacct" | sort -u > "$t/known"
cut -d'|' -f1 "$t/jobs" | sort -u | comm -23 - "$t/known" | tr '\n' ',' | sed 's/,$//' > "$t/missing"
if [ -s "$t/missing" ]; then
  echo "{{MARK}} squeue"; squeue --noheader -j "$(cat "$t/missing")" --format='%i|%T|%r|%j' 2>&1
fi
exit 0  # squeue fails for ids slurmctld has forgotten: that is an answer, not an error
