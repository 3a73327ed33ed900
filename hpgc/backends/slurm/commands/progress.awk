# For each job line 'ID|DIR' whose DIR/P is a regular file (listed in file R): the file's last line.
BEGIN { while ((getline l < R) > 0) reg[l] = 1; close(R) }
{
  p = $2 "/" P; last = ""
  if (p in reg) { while ((getline l < p) > 0) last = l; close(p) }
  if (last != "") print MARK " progress " $1 " " last
}
