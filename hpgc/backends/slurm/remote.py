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
# Job dirs belong to their users, who may put a FIFO where PROGRESS or stderr.log should be: only regular
# files are read, and the per-file part of a poll is time-boxed so a swap after the check cannot stall
# the poll (with one service account, everyone's jobs share it).
POLL_FILES_TIMEOUT_S = 20


# A user's folder under WORK_ROOT (often mode 1777, where anyone may create any name) is made 0700, or
# refused when it is not a real folder of the account: another user could have made it first, to read or
# swap what hpgc writes for this one.
_PRIVATE_FN = """private() {
  [ -d "$1" ] || mkdir -m 700 -- "$1" 2>/dev/null
  if [ -L "$1" ] || [ ! -d "$1" ] || [ ! -O "$1" ]; then return 1; fi
  chmod 700 -- "$1"
}"""
NOT_PRIVATE = "is not a folder owned by this account; refusing to write job files there"


def private_dir_command(root: str, user: str) -> str:
    """Create ROOT/USER 0700 (or check it is the account's own real folder) before anything is written in it."""
    folder = shlex.quote(f"{root.rstrip('/')}/{user}")
    return f"""umask 077
{_PRIVATE_FN}
private {folder} || {{ echo "hpgc: "{folder}" {NOT_PRIVATE}" >&2; exit 3; }}
"""


SBATCH_MAY_RUN_MIN = 5  # sbatch's own retries: 1+2+...+15 s of sleep plus its RPC timeouts (MessageTimeout)


def submit_command(root: str, jobs: list[tuple[str, str]]) -> str:
    """Submit a batch of jobs in one round trip. `jobs`: (dir relative to ROOT, Slurm job name); stdin:
    one tar with every job's files under its dir, job.sbatch last in each.

    Everything is created with umask 077, in a user folder made 0700 (and refused if another account owns
    it: see _PRIVATE_FN); sbatch passes that umask on to the job, so its outputs are private too.
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
    return f"""umask 077
root={q(root)}
{_PRIVATE_FN}
set -- {pairs}
excl=''; todo=''; mine=''
while [ $# -gt 0 ]; do
  rel=$1; name=$2; shift 2; jd=$root/$rel; f=$jd/{SLURM_ID_FILE}; id=''
  u=$root/${{rel%%/*}}
  if [ "$u" != "$mine" ]; then
    if ! private "$u"; then
      echo "{MARK} failed $rel $u {NOT_PRIVATE}"; excl="$excl --exclude=$rel"; continue
    fi
    mine=$u
  fi
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
BEGIN {
  while ((getline l < S) > 0) { n = split(l, f, "|"); if (f[1] ~ /^[0-9]+$/) { st[f[1]] = f[3]; ec[f[1]] = f[4] } }
  close(S)
  while ((getline l < R) > 0) reg[l] = 1; close(R)
}
{
  id = $1; jd = $2
  p = jd "/PROGRESS"; last = ""
  if (p in reg) { while ((getline l < p) > 0) last = l; close(p) }
  if (last != "") print "MARK progress " id " " last
  s = st[id]; sub(/ .*/, "", s)
  if (s ~ /^(FAILEDRE)$/ || (s == "COMPLETED" && ec[id] !~ /^0:/)) {  # COMPLETED 1:0 failed too
    cmd = "f='" jd "/STDERR'; [ -f \"$f\" ] && timeout 5 tail -c TAILBYTES \"$f\" 2>/dev/null"
    while ((cmd | getline l) > 0) print "MARK stderr " id " " l
    close(cmd)
  }
}
"""
_MISSING_AWK = r"""
BEGIN { while ((getline l < S) > 0) { split(l, f, "|"); if (f[1] ~ /^[0-9]+$/) st[f[1]] = 1 } close(S) }
!($1 in st) { printf "%s%s", (n++ ? "," : ""), $1 }
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
cut -d'|' -f2 "$t/jobs" | sed 's|$|/{PROGRESS_FILE}|' | xargs -r sh -c 'find "$@" -maxdepth 0 -type f 2>/dev/null' sh \\
  > "$t/regular"
timeout {POLL_FILES_TIMEOUT_S} awk -F'|' -v S="$t/sacct" -v R="$t/regular" {shlex.quote(awk)} "$t/jobs"
awk -F'|' -v S="$t/sacct" {shlex.quote(_MISSING_AWK)} "$t/jobs" > "$t/missing"
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


FILE_MISSING = 2  # exit status of read_command when the file (or a folder on its way) does not exist
DD_BLOCK = 256 * 1024


def read_command(root: str, parts: list[str], *, offset: int = 0, length: int | None = None,
                 tail: int | None = None, size_only: bool = False, max_bytes: int | None = None) -> str:
    """Print the size of (`size_only`) or the bytes of ROOT/PARTS..., a file of a job directory, only if it
    is a regular file with one link reached through real directories, each checked after `cd` by its
    physical path (a folder swapped for a symlink meanwhile is caught). The read itself is
    `dd iflag=nofollow,nonblock` of the name just checked, capped at the size seen: a symlink swapped in
    afterwards is not followed, a FIFO does not block, a file that grows is not read past that size.
    Exit FILE_MISSING when it does not exist, 3 (with a message) when it is refused."""
    q = shlex.quote
    for p in parts:
        if p in ("", ".", "..") or "/" in p or "\0" in p:
            raise ValueError(f"bad path component {p!r}")
    *folders, name = parts
    if size_only:
        action = 'printf "%s\\n" "$size"'
    else:
        if tail is not None:
            span = f'off=$((size > {int(tail)} ? size - {int(tail)} : 0)); n=$((size - off))'
        else:
            span = (f'off={int(offset)}; n=$((size > off ? size - off : 0))'
                    + (f'; [ "$n" -gt {int(length)} ] && n={int(length)}' if length is not None else ""))
        cap = (f'[ "$n" -gt {int(max_bytes)} ] && {{ echo "hpgc: $name is larger than {int(max_bytes)} bytes" >&2; '
               'exit 3; }') if max_bytes is not None else ":"
        action = (f"{span}\n{cap}\n"
                  f'exec dd if="./$name" iflag=nofollow,nonblock,skip_bytes,count_bytes skip="$off" count="$n" '
                  f"bs={DD_BLOCK} status=none")
    return f"""set -- {' '.join(q(f) for f in folders)}
name={q(name)}
cd -P -- {q(root)} 2>/dev/null || {{ echo "hpgc: the work root is missing" >&2; exit {FILE_MISSING}; }}
here=$(pwd -P)
for c in "$@"; do
  if [ ! -e "$c" ] && [ ! -L "$c" ]; then exit {FILE_MISSING}; fi
  if [ -L "$c" ] || ! cd -P -- "$c" 2>/dev/null || [ "$(pwd -P)" != "${{here%/}}/$c" ]; then
    echo "hpgc: $c is not a plain folder inside the job directory" >&2; exit 3
  fi
  here=${{here%/}}/$c
done
if [ ! -e "./$name" ] && [ ! -L "./$name" ]; then exit {FILE_MISSING}; fi
size=$(find "./$name" -maxdepth 0 -type f -links 1 -printf '%s')
if [ -z "$size" ]; then echo "hpgc: $name is not a regular file with a single link" >&2; exit 3; fi
{action}
"""
