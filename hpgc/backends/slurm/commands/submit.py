"""Submit a batch of jobs in one round trip (submit.sh): write their job directories from a tar on stdin
and run one sbatch per job, never submitting a job twice.

Everything is created with umask 077, in a user folder made 0700 (and refused if another account owns it:
private.sh); sbatch passes that umask on to the job, so its outputs are private too. Per job, the file
`slurm_job_id` says how far submission got:
- what sbatch printed (an id): submitted; its files are left alone (tar --exclude) and the id returned;
- empty: an sbatch was started (the redirection creates the file) and has not answered; it may still be
  sleeping through Slurm's "temporarily unable to accept job" retries, even after hpgc gave up on the
  command, so for SBATCH_MAY_RUN_MIN minutes the job is only reported busy;
- `failed`, or no file with a job.sbatch (hpgc died between writing the files and sbatch): Slurm is asked
  for the job by name (squeue, then sacct over 60 days: without -j sacct looks at today only) before
  submitting; if Slurm cannot answer, the job is refused rather than risk a duplicate.
Outside those rare paths the only processes are one tar and one sbatch per job: forks are what a
submission costs (sbatch writes its id straight into the file; `$(sbatch)` would fork a subshell). Once an
sbatch gives up after its own retries, the rest of the batch is not tried: each would sleep as long; they
are reported busy and hpgc tries them again later.
Output: one 'MARK submitted|existing|busy|failed DIR ID-OR-MESSAGE' line per job.
"""

from __future__ import annotations

import io
import shlex
import tarfile

from hpgc.backends.slurm.commands import MARK, fill, marked
from hpgc.backends.slurm.commands.private_dir import NOT_PRIVATE, private_function
from hpgc.backends.slurm.jobdir import SCRIPT_FILE, SLURM_ID_FILE
from hpgc.backends.slurm.jobid import SlurmJobId

SBATCH_MAY_RUN_MIN = 5  # sbatch's own retries: 1+2+...+15 s of sleep plus its RPC timeouts (MessageTimeout)
TAR_FAILED = 90  # the exit status when the job directories cannot be written


def submit_command(root: str, jobs: list[tuple[str, str]]) -> str:
    """`jobs`: (dir relative to ROOT, Slurm job name); stdin: `tar_files` of every job's files under its
    dir, job.sbatch last in each."""
    q = shlex.quote
    pairs = " ".join(f"{q(rel)} {q(name)}" for rel, name in jobs)
    return "umask 077\n" + private_function() + fill(
        "submit.sh", ROOT=q(root), PAIRS=pairs, MARK=MARK, ID_FILE=SLURM_ID_FILE, SCRIPT_FILE=SCRIPT_FILE,
        MAY_RUN_MIN=SBATCH_MAY_RUN_MIN, NOT_PRIVATE=NOT_PRIVATE)


def parse_submit(stdout: str) -> dict[str, tuple[str, str]]:
    """DIR → ('submitted'|'existing', Slurm id as commands take it) or ('busy'|'failed', message)."""
    out: dict[str, tuple[str, str]] = {}
    for word, rest in marked(stdout):
        rel, _, value = rest.partition(" ")
        if word in ("submitted", "existing"):
            try:
                out[rel] = (word, str(SlurmJobId.parse(value)))
            except ValueError:
                continue
        elif word in ("busy", "failed"):
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
