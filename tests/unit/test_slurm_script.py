"""sbatch script rendering: #SBATCH lines, quoting (run for real with bash), outputs manifest."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from hpgc.backends.base import BackendError
from hpgc.backends.slurm.config import ClusterSettings
from hpgc.backends.slurm.jobdir import job_dir
from hpgc.backends.slurm.script import SbatchOptions, render, slurm_time
from hpgc.models.run import Container, Resources, RunSpec, StagedFile

EVIL = ["$(touch pwned1)", "`touch pwned2`", "'; touch pwned3; '", '"; touch pwned4; "', "a\nb", "*", "~",
        "${HOME}", "\\", "$((1+1))", "-n", "", "; touch pwned5", "|touch pwned6", "&& touch pwned7"]


def _cluster(**kw: object) -> ClusterSettings:
    base: dict[str, object] = {"host": "login", "known_hosts": "/etc/ssh/known", "user": "alice",
                               "work_root": "/data/hpgc"}
    return ClusterSettings(**{**base, **kw})


def _spec(**kw: object) -> RunSpec:
    base: dict[str, object] = {"job_id": "0b7c-12", "process_id": "p", "kind": "command", "argv": ["true"]}
    return RunSpec(**{**base, **kw})


def test_sbatch_lines_resources_and_defaults() -> None:
    c = _cluster(partition="debug", account="hpgc", qos="normal", time_limit="2:00:00",
                 sbatch_options=["--exclusive"], setup=["module load apptainer"])
    text = render(_spec(resources=Resources(cpus=2, memory_mb=512, time_limit_s=90, tmp_mb=10, nodes=1)),
                  c, "/data/hpgc/alice/0b7c-12")
    sb = [line for line in text.splitlines() if line.startswith("#SBATCH")]
    assert sb == ["#SBATCH --job-name=hpgc-0b7c-12", "#SBATCH --chdir=/data/hpgc/alice/0b7c-12",
                  "#SBATCH --output=/data/hpgc/alice/0b7c-12/stdout.log",
                  "#SBATCH --error=/data/hpgc/alice/0b7c-12/stderr.log", "#SBATCH --nodes=1",
                  "#SBATCH --cpus-per-task=2", "#SBATCH --mem=512M", "#SBATCH --time=0:01:30", "#SBATCH --tmp=10M",
                  "#SBATCH --partition=debug", "#SBATCH --account=hpgc", "#SBATCH --qos=normal",
                  "#SBATCH --exclusive"]
    assert text.startswith("#!/bin/bash\n")
    assert "module load apptainer" in text
    assert 'exit "$code"' in text
    # the cluster default applies when the process asks for no time
    assert "#SBATCH --time=2:00:00" in render(_spec(), c, "/d/x")


def test_slurm_time() -> None:
    assert slurm_time(60) == "0:01:00"
    assert slurm_time(3661) == "1:01:01"
    assert slurm_time(2 * 86400 + 5) == "2-00:00:05"


def test_job_dir_refuses_odd_ids_and_users() -> None:
    c = _cluster()
    assert job_dir(c, "abc-1", None) == "/data/hpgc/alice/abc-1"
    assert job_dir(c, "abc-1", "bob") == "/data/hpgc/bob/abc-1"
    for bad in ["../x", "a b", "a;b", "", "a/b", "$(x)"]:
        with pytest.raises(BackendError):
            job_dir(c, bad, None)
    for user in ["Bob;", "../root", "a b"]:
        with pytest.raises(BackendError):
            job_dir(c, "x", user)


def test_cluster_settings_refuse_unsafe_values() -> None:
    for field, value in [("partition", "debug\n#SBATCH --uid=0"), ("account", "a b"), ("qos", "$(x)"),
                         ("work_root", "relative/path"), ("work_root", "/data/hp gc"),
                         ("sbatch_options", ["--comment=a b"]), ("sbatch_options", ["-x"])]:
        with pytest.raises(ValidationError):
            _cluster(**{field: value})
    with pytest.raises(ValidationError):
        _cluster(poll_min_s=10, poll_max_s=5)
    assert _cluster(work_root="/data/hpgc/").work_root == "/data/hpgc"


def test_container_and_cwl_command_lines() -> None:
    c = _cluster(container_runtime="apptainer", image_cache="/data/images")
    text = render(_spec(container=Container(image="python_3.11-slim.sif"), argv=["python3", "-c", "print(1)"]),
                  c, "/d/j")
    assert "apptainer exec /data/images/python_3.11-slim.sif python3 -c 'print(1)'" in text
    cwl = render(_spec(kind="cwl", argv=[]), c, "/d/j")
    assert "cwltool --quiet --outdir outputs" in cwl and "--singularity tool.cwl job.json > outputs.json" in cwl
    assert "export CWL_SINGULARITY_CACHE=/data/images" in cwl
    assert "--no-container" in render(_spec(kind="cwl", argv=[]), _cluster(), "/d/j")
    with pytest.raises(BackendError, match="container"):
        render(_spec(container=Container(image="x.sif")), _cluster(), "/d/j")
    for image in ["../etc/passwd", "a/b.sif", ".hidden"]:
        with pytest.raises(BackendError):
            render(_spec(container=Container(image=image)), c, "/d/j")
    with pytest.raises(BackendError, match=r"^the package gives no command to run$"):
        render(_spec(argv=[]), c, "/d/j")
    with pytest.raises(BackendError):
        render(_spec(env={"A B": "x"}), c, "/d/j")


def test_comment_lines_cannot_break_out() -> None:
    text = render(_spec(process_id="p\n#SBATCH --uid=0\ntouch pwned"), _cluster(), "/d/j")
    assert "\n#SBATCH --uid" not in text and "\ntouch pwned" not in text


def test_job_mode_stage_in_uses_curl_quoted() -> None:
    spec = _spec(files=[StagedFile(path="inputs/a_0.tif", href="https://x.org/a.tif?q=$(id)&b='1'")])
    text = render(spec, _cluster(stage_in="job"), "/d/j")
    href = shlex.quote("https://x.org/a.tif?q=$(id)&b='1'")
    assert f"--retry 3 --create-dirs -o inputs/a_0.tif {href} " in text
    assert "curl -fsSL --proto =http,https --proto-redir =http,https " in text, "no file:// or gopher:// on the cluster"
    assert "curl" not in render(spec, _cluster(), "/d/j")


def _run_script(text: str, jd: Path, extra_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{extra_path}:/usr/bin:/bin" if extra_path else "/usr/bin:/bin", "HOME": str(jd)}
    return subprocess.run(["bash", "-c", text], cwd=jd, env=env, capture_output=True, text=True, timeout=30)


def test_rendered_script_passes_hostile_values_literally(tmp_path: Path) -> None:
    jd = tmp_path / "job"
    (jd / "bin").mkdir(parents=True)
    spec = _spec(argv=["printf", "%s\\n", *EVIL], env={"EVIL": "$(touch pwned8)'\"`x`"},
                 outputs={"out'1": "result $(x).txt", "missing": "nope.txt"})
    text = render(spec, _cluster(work_root=str(tmp_path)), str(jd))
    r = _run_script(text, jd)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:-1] == [line for e in EVIL for line in e.split("\n")]
    assert not list(tmp_path.rglob("pwned*"))
    # nothing of the declared outputs exists: an empty manifest
    assert json.loads((jd / "outputs.json").read_text()) == {}
    # env value arrives verbatim
    r = _run_script(render(_spec(argv=["sh", "-c", 'printf %s "$EVIL"'], env=spec.env), _cluster(), str(jd)), jd)
    assert r.stdout == "$(touch pwned8)'\"`x`"
    assert not list(tmp_path.rglob("pwned*"))


def test_outputs_manifest_and_exit_code(tmp_path: Path) -> None:
    jd = tmp_path / "job"
    (jd / "bin").mkdir(parents=True)
    outputs = {"out'1": "result $(x).txt", "b": "sub/b.txt", "missing": "nope.txt"}
    spec = _spec(argv=["sh", "-c", "mkdir sub; echo 1 > 'result $(x).txt'; echo 2 > sub/b.txt"], outputs=outputs)
    r = _run_script(render(spec, _cluster(), str(jd)), jd)
    assert r.returncode == 0, r.stderr
    manifest = json.loads((jd / "outputs.json").read_text())
    assert manifest == {"out'1": {"class": "File", "path": f"{jd}/result $(x).txt"},
                        "b": {"class": "File", "path": f"{jd}/sub/b.txt"}}
    (jd / "outputs.json").unlink()
    r = _run_script(render(_spec(argv=["sh", "-c", "echo boom >&2; exit 3"], outputs=outputs), _cluster(),
                           str(jd)), jd)
    assert r.returncode == 3 and "boom" in r.stderr
    assert not (jd / "outputs.json").exists()


def test_progress_helper_on_path(tmp_path: Path) -> None:
    from hpgc.backends.files import PROGRESS_HELPER

    jd = tmp_path / "job"
    (jd / "bin").mkdir(parents=True)
    helper = jd / "bin" / "hpgc-progress"
    helper.write_text(PROGRESS_HELPER)
    helper.chmod(0o755)
    r = _run_script(render(_spec(argv=["hpgc-progress", "42", "tiling"]), _cluster(), str(jd)), jd)
    assert r.returncode == 0, r.stderr
    assert (jd / "progress").read_text() == "42 tiling\n"


# The whole script, written out: what its owner reads at GET /jobs/{id}/script and what Slurm runs.
FULL_COMMAND_SCRIPT = """#!/bin/bash
#SBATCH --job-name=hpgc-0b7c-12
#SBATCH --chdir=/data/hpgc/alice/0b7c-12
#SBATCH --output=/data/hpgc/alice/0b7c-12/stdout.log
#SBATCH --error=/data/hpgc/alice/0b7c-12/stderr.log
#SBATCH --cpus-per-task=4
#SBATCH --mem=2048M
#SBATCH --time=1:00:00
#SBATCH --partition=GPU-X
# hpgc job 0b7c-12, process BandMath?v2 (command)
# Progress: `hpgc-progress PERCENT MESSAGE` writes $HPGC_JOB_DIR/progress.

# --- when it ends: tell hpgc at once
trap 'printf "%s %s\\n" "$SLURM_JOB_ID" "$?" >> /data/hpgc/alice/.hpgc-events 2>/dev/null' EXIT

# --- environment
export HPGC_JOB_DIR=/data/hpgc/alice/0b7c-12
cd "$HPGC_JOB_DIR" || exit 1
export PATH="$HPGC_JOB_DIR/bin:$PATH"
export APPTAINERENV_PREPEND_PATH="$HPGC_JOB_DIR/bin" SINGULARITYENV_PREPEND_PATH="$HPGC_JOB_DIR/bin"
export CWL_SINGULARITY_CACHE=/data/images
export OTB_MAX_RAM_HINT=256

# --- site set-up
module load apptainer

# --- stage-in
curl -fsSL --proto =http,https --proto-redir =http,https --max-redirs 5 --retry 3 --create-dirs -o inputs/il_0.tif \
https://x.org/a.tif || { echo 'hpgc: could not download input inputs/il_0.tif' >&2; exit 1; }
curl -fsSL --proto =http,https --proto-redir =http,https --max-redirs 5 --retry 3 --create-dirs -o bin/tool \
https://x.org/tool || { echo 'hpgc: could not download input bin/tool' >&2; exit 1; }

# --- command
mkdir -p outputs outputs/logs
hpgc_image=/data/images/otbtf-0123456789abcdef.sif; if [ -e /data/images/otbtf_4.1.0-cpu.sif ]; then \
hpgc_image=/data/images/otbtf_4.1.0-cpu.sif; fi
apptainer exec "$hpgc_image" /opt/otb/bin/otbcli_BandMath -il inputs/il_0.tif -exp 'im1b1 * 2'
code=$?

# --- stage-out
if [ "$code" -eq 0 ]; then
  {
    sep=''
    printf '{'
    if [ -f outputs/out.tif ]; then printf '%s%s' "$sep" '"out": {"class": "File", "path": \
"/data/hpgc/alice/0b7c-12/outputs/out.tif"}'; sep=', '; fi
    if [ -f outputs/logs/run.log ]; then printf '%s%s' "$sep" '"log": {"class": "File", "path": \
"/data/hpgc/alice/0b7c-12/outputs/logs/run.log"}'; sep=', '; fi
    if [ -f top.txt ]; then printf '%s%s' "$sep" '"top": {"class": "File", "path": \
"/data/hpgc/alice/0b7c-12/top.txt"}'; sep=', '; fi
    printf '}\\n'
  } > outputs.json
fi

exit "$code"
"""

FULL_CWL_SCRIPT = """#!/bin/bash
#SBATCH --job-name=hpgc-j2
#SBATCH --chdir=/data/hpgc/alice/j2
#SBATCH --output=/data/hpgc/alice/j2/stdout.log
#SBATCH --error=/data/hpgc/alice/j2/stderr.log
# hpgc job j2, process echo (cwl)
# Progress: `hpgc-progress PERCENT MESSAGE` writes $HPGC_JOB_DIR/progress.

# --- when it ends: tell hpgc at once
trap 'printf "%s %s\\n" "$SLURM_JOB_ID" "$?" >> /data/hpgc/alice/.hpgc-events 2>/dev/null' EXIT

# --- environment
export HPGC_JOB_DIR=/data/hpgc/alice/j2
cd "$HPGC_JOB_DIR" || exit 1
export PATH="$HPGC_JOB_DIR/bin:$PATH"
export APPTAINERENV_PREPEND_PATH="$HPGC_JOB_DIR/bin" SINGULARITYENV_PREPEND_PATH="$HPGC_JOB_DIR/bin"

# --- command
/opt/cwl/bin/cwltool --quiet --outdir outputs --tmpdir-prefix tmp/ --preserve-environment HPGC_JOB_DIR \
--no-container tool.cwl job.json > outputs.json
code=$?

exit "$code"
"""


def test_whole_command_script() -> None:
    c = _cluster(container_runtime="apptainer", image_cache="/data/images", stage_in="job",
                 setup=["module load apptainer"], partition="GPU-X")
    spec = _spec(process_id="BandMath\tv2", argv=["/opt/otb/bin/otbcli_BandMath", "-il", "inputs/il_0.tif", "-exp",
                                                   "im1b1 * 2"],
                 container=Container(image="otbtf-0123456789abcdef.sif", source="docker://otbtf/4.1.0-cpu",
                                     site_image="otbtf_4.1.0-cpu.sif"),
                 files=[StagedFile(path="inputs/il_0.tif", href="https://x.org/a.tif"),
                        StagedFile(path="bin/tool", href="https://x.org/tool"),
                        StagedFile(path="inputs/b.txt", content=b"x")],
                 outputs={"out": "outputs/out.tif", "log": "outputs/logs/run.log", "top": "top.txt"},
                 env={"OTB_MAX_RAM_HINT": "256"}, resources=Resources(cpus=4, memory_mb=2048, time_limit_s=3600))
    assert render(spec, c, "/data/hpgc/alice/0b7c-12") == FULL_COMMAND_SCRIPT


def test_whole_cwl_script() -> None:
    c = _cluster(cwltool="/opt/cwl/bin/cwltool")
    assert render(_spec(job_id="j2", process_id="echo", kind="cwl", argv=[]), c, "/data/hpgc/alice/j2") == (
        FULL_CWL_SCRIPT)


def test_sbatch_options_refuse_every_unsafe_character() -> None:
    base = {"job_name": "hpgc-j", "chdir": "/d/j", "output": "/d/j/o", "error": "/d/j/e"}
    assert SbatchOptions(**base, extra=("--exclusive", "--gres=gpu:1")).lines()[-2:] == [
        "#SBATCH --exclusive", "#SBATCH --gres=gpu:1"]
    for c in "\n\r \t'\"\\$`":
        with pytest.raises(BackendError, match="unsafe sbatch option"):
            SbatchOptions(**base, extra=(f"--comment=a{c}b",)).lines()
        with pytest.raises(BackendError):
            SbatchOptions(**{**base, "chdir": f"/d/j{c}x"}).lines()
    # nothing asked, nothing written; zero memory or scratch is no request either
    assert SbatchOptions(**base, mem_mb=0, tmp_mb=0).lines() == [
        "#SBATCH --job-name=hpgc-j", "#SBATCH --chdir=/d/j", "#SBATCH --output=/d/j/o", "#SBATCH --error=/d/j/e"]


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0:00:00"), (59, "0:00:59"), (61, "0:01:01"), (3600, "1:00:00"), (86399, "23:59:59"),
    (86400, "1-00:00:00"), (90061, "1-01:01:01"), (10 * 86400 + 7, "10-00:00:07"),
])
def test_slurm_time_table(seconds: int, text: str) -> None:
    assert slurm_time(seconds) == text


def test_job_dir_messages_and_comment() -> None:
    c = _cluster()
    with pytest.raises(BackendError, match=r"^job id 'a b' cannot name a Slurm job$"):
        job_dir(c, "a b", None)
    with pytest.raises(BackendError, match=r"^unix user 'Bob;' is not a valid user name: "):
        job_dir(c, "x", "Bob;")
    assert job_dir(c, "A_b-9" * 20, None) == "/data/hpgc/alice/" + "A_b-9" * 20
    with pytest.raises(BackendError):
        job_dir(c, "x" * 101, None)
    text = render(_spec(process_id="p" * 300), c, "/d/j")
    assert f"# hpgc job 0b7c-12, process {'p' * 200} (command)\n" in text


def test_environment_names_and_job_download_rules() -> None:
    text = render(_spec(env={"_A1": "x y", "B": ""}), _cluster(), "/d/j")
    assert "\nexport _A1='x y'\nexport B=''\n" in text
    for bad in ("1A", "A-B", "A B", ""):
        with pytest.raises(BackendError, match="environment variable name"):
            render(_spec(env={bad: "x"}), _cluster(), "/d/j")
    # files with content are uploaded by hpgc, never downloaded by the job
    text = render(_spec(files=[StagedFile(path="a.txt", content=b"x")]), _cluster(stage_in="job"),
                  "/d/j")
    assert "curl" not in text and "chmod" not in text and "# --- stage-in" not in text
    both = _spec(files=[StagedFile(path="a.txt", content=b"x", href="https://x.org/a.txt")])
    assert "curl" not in render(both, _cluster(stage_in="job"), "/d/j")  # its content is there: not downloaded


def test_container_image_names_are_checked_with_the_site_image() -> None:
    c = _cluster(container_runtime="singularity", image_cache="/data/images")
    for site in ["a/b.sif", ".hidden.sif"]:
        with pytest.raises(BackendError, match="must be a file name in the image cache"):
            render(_spec(container=Container(image="ok.sif", site_image=site)), c, "/d/j")
    text = render(_spec(container=Container(image="ok.sif"), argv=["t", "a b"]), c, "/d/j")
    assert "\nsingularity exec /data/images/ok.sif t 'a b'\ncode=$?\n" in text
    with pytest.raises(BackendError, match="no container_runtime and image_cache"):
        render(_spec(container=Container(image="ok.sif")), _cluster(container_runtime="apptainer"), "/d/j")
    with pytest.raises(BackendError, match="no container_runtime and image_cache"):
        render(_spec(container=Container(image="ok.sif")), _cluster(image_cache="/i"), "/d/j")
