# Whether a file on the cluster can be read in place by this account (run as the job's own user, over their
# own connection): a regular file it may read. Prints the physical path, which the job then uses. Filled in:
# FILE (quoted).
f={{FILE}}
if [ -f "$f" ] && [ -r "$f" ]; then
  real=$(readlink -f -- "$f") && [ -f "$real" ] && [ -r "$real" ] && { printf '%s\n' "$real"; exit 0; }
fi
exit 3
