# The last TAIL_BYTES bytes of each listed job's stderr file, if it is a regular file (see tails.py).
# Filled in: MARK, STDERR_FILE, TAIL_BYTES. stdin: one 'KEY|JOB_DIR' line per job.
while IFS='|' read -r key jd; do
  f=$jd/{{STDERR_FILE}}
  [ -f "$f" ] || continue
  timeout 5 tail -c {{TAIL_BYTES}} "$f" 2>/dev/null | sed "s|^|{{MARK}} stderr $key |"
done
exit 0
