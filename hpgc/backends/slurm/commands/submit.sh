# Submit a batch of jobs in one round trip (see submit.py). Filled in: ROOT, PAIRS (dir name pairs),
# MARK, ID_FILE, SCRIPT_FILE, MAY_RUN_MIN, NOT_PRIVATE; the private() function comes before it.
# stdin: one tar with every job's files under its dir.
# Slurm ids are passed on as Slurm printed them: what they look like is known only to jobid.py.
root={{ROOT}}
set -- {{PAIRS}}
excl=''; todo=''; mine=''
while [ $# -gt 0 ]; do
  rel=$1; name=$2; shift 2; jd=$root/$rel; f=$jd/{{ID_FILE}}; id=''
  u=$root/${rel%%/*}
  if [ "$u" != "$mine" ]; then
    if ! private "$u"; then
      echo "{{MARK}} failed $rel $u {{NOT_PRIVATE}}"; excl="$excl --exclude=$rel"; continue
    fi
    mine=$u
  fi
  if [ -s "$f" ]; then read -r id < "$f"; fi
  case $id in ''|failed) ;; *) echo "{{MARK}} existing $rel $id"; excl="$excl --exclude=$rel"; continue;; esac
  # squeue --states=all: also a job that already ended (slurmctld keeps it for MinJobAge), which slurmdbd
  # 22.05 may not know by its name yet (commands/versions.py); otherwise a quick job could run twice
  if [ -e "$jd/{{SCRIPT_FILE}}" ]; then
    if ! found=$(sacct --parsable2 --noheader -X -S now-60days --name="$name" --format=JobID 2>&1) || \
       ! q=$(squeue --noheader --states=all --name="$name" --format=%i 2>&1); then
      echo "{{MARK}} failed $rel Slurm cannot tell whether the job was submitted already; not resubmitting"
      excl="$excl --exclude=$rel"; continue
    fi
    # the first line that starts like an id (not a warning of sacct's or squeue's); jobid.py judges it
    found=$(printf '%s\n%s\n' "$q" "$found" | sed -n 's/^[[:space:]]*\([0-9][^[:space:]]*\).*/\1/p' | head -n 1)
    if [ -n "$found" ]; then
      echo "$found" > "$f"; echo "{{MARK}} existing $rel $found"; excl="$excl --exclude=$rel"; continue
    fi
    if [ -e "$f" ] && [ -z "$id" ] && [ -z "$(find "$f" -mmin +{{MAY_RUN_MIN}})" ]; then
      echo "{{MARK}} busy $rel an earlier sbatch of this job may still be waiting for Slurm"
      excl="$excl --exclude=$rel"; continue
    fi
  fi
  todo="$todo $rel"
done
tar -x -m -C "$root" $excl || { echo "hpgc: cannot write job directories under $root" >&2; exit 90; }
stop=''
for rel in $todo; do
  jd=$root/$rel; f=$jd/{{ID_FILE}}
  if [ -n "$stop" ]; then echo "{{MARK}} busy $rel $stop"; continue; fi
  if sbatch --parsable "$jd/{{SCRIPT_FILE}}" >"$f" 2>"$jd/.sbatch-error"; then
    read -r id < "$f"
    echo "{{MARK}} submitted $rel $id"
  else
    echo failed > "$f"
    err=$(tr '\n' ' ' < "$jd/.sbatch-error")
    case $err in
      *retrying*) stop="Slurm is not accepting jobs: $err"; echo "{{MARK}} busy $rel $stop";;
      *) echo "{{MARK}} failed $rel $err";;
    esac
  fi
done
