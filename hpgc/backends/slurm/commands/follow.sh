# Follow one identity's events file (see follow.py): every job script of this account appends one line
# ('SLURM_ID EXIT_CODE') to it as its last act; this prints each new line as it comes, and a heartbeat
# every BEAT_S seconds so that the server can tell a quiet channel from a dead one. Filled in: EVENTS (quoted),
# MARK, BEAT_S, MAX_BYTES. When the server's end of the channel closes, the next heartbeat fails and the
# whole program (tail included) ends with it.
f={{EVENTS}}
umask 077
[ -f "$f" ] || : >> "$f" || exit 1
# the file grows by one short line per job: start afresh when it is large (a line lost to the truncation
# is a job noticed at its next poll instead)
[ "$(wc -c < "$f")" -gt {{MAX_BYTES}} ] && : > "$f"
trap '' PIPE
trap 'kill 0 2>/dev/null' EXIT
tail -n 0 -F -- "$f" 2>/dev/null | while IFS= read -r line; do
  printf '%s done %s\n' '{{MARK}}' "$line" || exit 0
done &
printf '%s following\n' '{{MARK}}' || exit 0
while sleep {{BEAT_S}}; do
  printf '%s beat\n' '{{MARK}}' || exit 0
done
