"""The shell programs hpgc runs on the login node, one round trip each.

They read their variable data (job lists, file trees) from stdin, so the command text has a fixed size
whatever the number of jobs, and nothing from a request is ever spliced into it unquoted.
"""

from __future__ import annotations

import io
import shlex
import tarfile
from dataclasses import dataclass, field

from hpgc.backends.files import PROGRESS_FILE
from hpgc.backends.slurm.sacct import FAILED, Sacct, check_ids
from hpgc.backends.slurm.script import SCRIPT_FILE, SLURM_ID_FILE, STDERR_FILE

MARK = "@@hpgc"
STDERR_TAIL_BYTES = 2000


SBATCH_MAY_RUN_MIN = 5  # sbatch's own retries: 1+2+...+15 s of sleep plus its RPC timeouts (MessageTimeout)


def submit_command(root: str, jobs: list[tuple[str, str]]) -> str:
    """Submit a batch of jobs in one round trip. `jobs`: (dir relative to ROOT, Slurm job name); stdin:
    one tar with every job's files under its dir, job.sbatch last in each.

    Per job, `slurm_job_id` says how far submission got, so that no job is ever submitted twice:
    - a Slurm id: submitted; its files are left alone (tar --exclude) and the id returned;
    - empty: an sbatch was started (the redirection creates the file) and has not answered; it may
      still be sleeping through Slurm's "temporarily unable to accept job" retries, even after hpgc gave
      up on the command, so for SBATCH_MAY_RUN_MIN minutes the job is only reported busy;
    - `failed`, or no file with a job.sbatch (hpgc died between writing the files and sbatch): Slurm is
      asked for the job by name (squeue, then sacct over 60 days: without -j sacct looks at today only)
      before submitting; if Slurm cannot answer, the job is refused rather than risk a duplicate.
    Outside those rare paths the only processes are one tar and one sbatch per job: forks are what a
    submission costs (sbatch writes its id straight into the file; `$(sbatch)` would fork a subshell).
    Once an sbatch gives up after its own retries, the rest of the batch is not tried: each would sleep
    as long; they are reported busy and hpgc tries them again later.
    Output: one '@@hpgc submitted|existing|busy|failed DIR ID-OR-MESSAGE' line per job.
    """
    q = shlex.quote
    pairs = " ".join(f"{q(rel)} {q(name)}" for rel, name in jobs)
    return f"""root={q(root)}
set -- {pairs}
excl=''; todo=''
while [ $# -gt 0 ]; do
  rel=$1; name=$2; shift 2; jd=$root/$rel; f=$jd/{SLURM_ID_FILE}; id=''
  if [ -s "$f" ]; then read -r id < "$f"; fi
  case $id in ''|*[!0-9]*) ;; *) echo "{MARK} existing $rel $id"; excl="$excl --exclude=$rel"; continue;; esac
  if [ -e "$jd/{SCRIPT_FILE}" ]; then
    if ! found=$(sacct --parsable2 --noheader -X -S now-60days --name="$name" --format=JobID 2>&1) || \
       ! q=$(squeue --noheader --name="$name" --format=%i 2>&1); then
      echo "{MARK} failed $rel Slurm cannot tell whether the job was submitted already; not resubmitting"
      excl="$excl --exclude=$rel"; continue
    fi
    found=$(printf '%s\\n%s\\n' "$q" "$found" | sed -n 's/^\\([0-9][0-9]*\\).*/\\1/p' | head -n 1)
    if [ -n "$found" ]; then
      echo "$found" > "$f"; echo "{MARK} existing $rel $found"; excl="$excl --exclude=$rel"; continue
    fi
    if [ -e "$f" ] && [ -z "$id" ] && [ -z "$(find "$f" -mmin +{SBATCH_MAY_RUN_MIN})" ]; then
      echo "{MARK} busy $rel an earlier sbatch of this job may still be waiting for Slurm"
      excl="$excl --exclude=$rel"; continue
    fi
  fi
  todo="$todo $rel"
done
tar -x -m -C "$root" $excl || {{ echo "hpgc: cannot write job directories under $root" >&2; exit 90; }}
stop=''
for rel in $todo; do
  jd=$root/$rel; f=$jd/{SLURM_ID_FILE}
  if [ -n "$stop" ]; then echo "{MARK} busy $rel $stop"; continue; fi
  if sbatch --parsable "$jd/{SCRIPT_FILE}" >"$f" 2>"$jd/.sbatch-error"; then
    read -r id < "$f"
    case $id in *";"*) id=${{id%%;*}}; echo "$id" > "$f";; esac
    echo "{MARK} submitted $rel $id"
  else
    echo failed > "$f"
    err=$(tr '\\n' ' ' < "$jd/.sbatch-error")
    case $err in
      *retrying*) stop="Slurm is not accepting jobs: $err"; echo "{MARK} busy $rel $stop";;
      *) echo "{MARK} failed $rel $err";;
    esac
  fi
done
"""


def parse_submit(stdout: str) -> dict[str, tuple[str, str]]:
    """DIR → ('submitted'|'existing', slurm id) or ('busy'|'failed', message)."""
    out: dict[str, tuple[str, str]] = {}
    for line in stdout.splitlines():
        if not line.startswith(MARK + " "):
            continue
        word, _, rest = line[len(MARK) + 1:].partition(" ")
        rel, _, value = rest.partition(" ")
        if (word in ("submitted", "existing") and value.strip().isdigit()) or word in ("busy", "failed"):
            out[rel] = (word, value.strip())
    return out


def tar_files(files: dict[str, tuple[bytes, int]]) -> bytes:
    """path → (content, mode) as an uncompressed tar (the job directory's new files)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, (content, mode) in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(content)
            info.mode = mode
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


_FAILED_RE = "|".join(sorted(FAILED))
_POLL_AWK = r"""
BEGIN { while ((getline l < S) > 0) { n = split(l, f, "|"); if (f[1] ~ /^[0-9]+$/) st[f[1]] = f[3] } close(S) }
{
  id = $1; jd = $2
  if (!(id in st)) miss = miss (miss == "" ? "" : ",") id
  p = jd "/PROGRESS"; last = ""
  while ((getline l < p) > 0) last = l
  close(p)
  if (last != "") print "MARK progress " id " " last
  s = st[id]; sub(/ .*/, "", s)
  if (s ~ /^(FAILEDRE)$/) {
    cmd = "tail -c TAILBYTES '" jd "/STDERR' 2>/dev/null"
    while ((cmd | getline l) > 0) print "MARK stderr " id " " l
    close(cmd)
  }
}
END { printf "%s", miss > M }
"""


def poll_command(chunk: int) -> str:
    """sacct for every job (chunked), progress lines, stderr tails of failed jobs, squeue for jobs sacct
    does not know yet: all in one round trip. stdin: one 'SLURM_ID|JOB_DIR' line per job."""
    awk = (_POLL_AWK.replace("MARK", MARK).replace("PROGRESS", PROGRESS_FILE).replace("FAILEDRE", _FAILED_RE)
           .replace("TAILBYTES", str(STDERR_TAIL_BYTES)).replace("STDERR", STDERR_FILE))
    fmt = ",".join(Sacct.FIELDS)
    return f"""t=$(mktemp -d) || exit 1
trap 'rm -rf "$t"' EXIT
cat > "$t/jobs"
cut -d'|' -f1 "$t/jobs" | xargs -n {int(chunk)} | tr ' ' ',' > "$t/chunks"
while read -r ids; do
  sacct --parsable2 --noheader -j "$ids" --format={fmt} 2>>"$t/err" || echo "{MARK} sacct-failed" >> "$t/err"
done < "$t/chunks" > "$t/sacct"
echo "{MARK} sacct"; cat "$t/sacct"
if [ -s "$t/err" ]; then echo "{MARK} sacct-err"; cat "$t/err"; fi
echo "{MARK} files"
awk -F'|' -v S="$t/sacct" -v M="$t/missing" {shlex.quote(awk)} "$t/jobs"
if [ -s "$t/missing" ]; then
  echo "{MARK} squeue"; squeue --noheader -j "$(cat "$t/missing")" --format='%i|%T|%r|%j' 2>&1
fi
exit 0  # squeue fails for ids slurmctld has forgotten: that is an answer, not an error
"""


def poll_input(jobs: list[tuple[str, str]]) -> bytes:
    check_ids([i for i, _ in jobs])
    return "".join(f"{i}|{jd}\n" for i, jd in jobs).encode()


@dataclass
class PollOutput:
    sacct: str = ""
    sacct_error: str = ""
    sacct_failed: bool = False
    squeue: str | None = None
    progress: dict[str, str] = field(default_factory=dict)
    stderr: dict[str, list[str]] = field(default_factory=dict)


def parse_poll(stdout: str) -> PollOutput:
    out = PollOutput()
    section = ""
    sacct: list[str] = []
    err: list[str] = []
    squeue: list[str] = []
    for line in stdout.splitlines():
        if line.startswith(MARK + " "):
            word, _, rest = line[len(MARK) + 1:].partition(" ")
            if word in ("sacct", "sacct-err", "files", "squeue"):
                section = word
                continue
            if word == "sacct-failed":
                out.sacct_failed = True
                continue
            job, _, text = rest.partition(" ")
            if word == "progress":
                out.progress[job] = text
            elif word == "stderr":
                out.stderr.setdefault(job, []).append(text)
            continue
        if section == "sacct":
            sacct.append(line)
        elif section == "sacct-err":
            err.append(line)
        elif section == "squeue":
            squeue.append(line)
    out.sacct = "\n".join(sacct)
    out.sacct_error = "\n".join(err).strip()
    if out.sacct_error and not sacct:
        out.sacct_failed = True
    out.squeue = "\n".join(squeue) if squeue or section == "squeue" else None
    return out
