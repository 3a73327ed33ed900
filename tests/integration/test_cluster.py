"""Proves the Slurm test cluster: jobs, accounting states, Apptainer images, CWL, and its life cycle.

Everything a client does goes over SSH as an ordinary user (alice), with the host key verified.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
import uuid
from pathlib import Path

import asyncssh
import pytest

pytestmark = pytest.mark.slurm

CLUSTER_DIR = Path(__file__).resolve().parents[2] / "slurm-test-cluster"
OTB = "/data/images/otbtf_4.1.0-cpu.sif"
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL",
            "DEADLINE", "PREEMPTED")


def workdir(cluster: dict, ssh) -> str:
    d = f"{cluster['work_root']}/test-{uuid.uuid4().hex[:10]}"
    ssh(f"mkdir -p {d}")
    return d


def sbatch(ssh, script: str, *options: str) -> str:
    """Submit a batch script (text) as alice; return the job id."""
    opts = " ".join(shlex.quote(o) for o in options)
    out = ssh(f"sbatch --parsable {opts} <<'HPGC_EOF'\n{script}\nHPGC_EOF").stdout.strip()
    assert re.fullmatch(r"\d+", out), out
    return out


def sacct(ssh, job_id: str) -> tuple[str, str]:
    """(State, ExitCode) of the job's allocation as accounting records it, ('', '') before it does."""
    out = ssh(f"sacct -X -n -P -j {job_id} -o State,ExitCode").stdout.strip()
    if not out:
        return "", ""
    state, exit_code = out.splitlines()[0].split("|")
    return state, exit_code


def wait_for(ssh, job_id: str, timeout: float = 180, states=TERMINAL) -> tuple[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        state, exit_code = sacct(ssh, job_id)
        if state.split(" ")[0] in states:
            return state, exit_code
        assert time.monotonic() < deadline, f"job {job_id} still {state!r} after {timeout} s"
        time.sleep(0.5)


def test_cluster_json_describes_the_cluster(cluster):
    for key in ("host", "port", "users", "known_hosts", "work_root", "image_cache", "slurm_version"):
        assert key in cluster, key
    assert set(cluster["users"]) >= {"alice", "bob"}
    for path in cluster["users"].values():
        assert Path(path).is_file() and Path(path).stat().st_mode & 0o077 == 0
    known = Path(cluster["known_hosts"]).read_text().split()
    assert known[0] == cluster["host"] and known[1] == "ssh-ed25519"
    assert re.fullmatch(r"\d+\.\d+\.\d+", cluster["slurm_version"])


def test_users_log_in_and_share_files(cluster, ssh):
    d = workdir(cluster, ssh)
    out = ssh(f"id -un; hostname; echo from-alice > {d}/a; touch {cluster['image_cache']}/.w-alice "
              f"&& rm {cluster['image_cache']}/.w-alice && echo cache-writable").stdout.split()
    assert out == ["alice", "login", "cache-writable"]
    out = ssh(f"id -un; cat {d}/a; touch {cluster['image_cache']}/.w-bob && rm {cluster['image_cache']}/.w-bob "
              "&& echo cache-writable", user="bob").stdout.split()
    assert out == ["bob", "from-alice", "cache-writable"]
    # The test host sees the same shared folder.
    if "shared_dir_on_host" in cluster and os.access(cluster["shared_dir_on_host"], os.R_OK):
        rel = Path(d).relative_to(cluster.get("shared_dir", "/data"))
        assert (Path(cluster["shared_dir_on_host"]) / rel / "a").read_text() == "from-alice\n"


async def test_host_key_is_verified(cluster, ssh_connect, tmp_path):
    async with ssh_connect() as conn:
        assert (await conn.run("true")).exit_status == 0
    # The same host under another key must be refused.
    other = tmp_path / "known_hosts"
    other_key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    other.write_text(f"{cluster['host']} {other_key}")
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        async with ssh_connect(known_hosts=str(other)):
            pass


def test_bandmath_in_apptainer_job_completes(cluster, ssh):
    d = workdir(cluster, ssh)
    script = f"""#!/bin/bash
#SBATCH -J hpgc-test-bandmath
#SBATCH -o {d}/job.out
set -euo pipefail
cd {d}
run() {{ apptainer -s exec {OTB} "$@"; }}
run python3 - <<'PY'
import numpy as np
from osgeo import gdal
gdal.UseExceptions()
rng = np.random.default_rng(7)
ds = gdal.GetDriverByName("GTiff").Create("in.tif", 32, 16, 2, gdal.GDT_Float32)
for b in (1, 2):
    ds.GetRasterBand(b).WriteArray(rng.integers(0, 1000, (16, 32)).astype("float32"))
ds = None
PY
run /opt/otbtf/bin/otbcli_BandMath -il in.tif -out out.tif float -exp "im1b1+im1b2"
run python3 - <<'PY'
import numpy as np
from osgeo import gdal
gdal.UseExceptions()
src, dst = gdal.Open("in.tif"), gdal.Open("out.tif")  # a band is only valid while its dataset lives
b1, b2 = (src.GetRasterBand(i).ReadAsArray().astype("float64") for i in (1, 2))
out = dst.GetRasterBand(1).ReadAsArray().astype("float64")
assert out.shape == b1.shape == (16, 32), out.shape
assert np.allclose(out, b1 + b2), float(np.abs(out - b1 - b2).max())
assert b1.std() > 0 and b2.std() > 0
print("BANDMATH-OK", out.shape, int(out.sum()), int((b1 + b2).sum()))
PY
"""
    job = sbatch(ssh, script)
    state, exit_code = wait_for(ssh, job)
    log = ssh(f"cat {d}/job.out", check=False).stdout
    assert (state, exit_code) == ("COMPLETED", "0:0"), log
    m = re.search(r"BANDMATH-OK \(16, 32\) (\d+) (\d+)", log)
    assert m and m.group(1) == m.group(2), log


def test_failing_job_is_failed_with_its_exit_code(ssh):
    job = sbatch(ssh, "#!/bin/bash\n#SBATCH -o /dev/null\necho about to fail\nexit 3")
    assert wait_for(ssh, job) == ("FAILED", "3:0")


def test_scancel_of_a_sleeping_job_is_cancelled(ssh):
    job = sbatch(ssh, "#!/bin/bash\n#SBATCH -o /dev/null\nsleep 300")
    wait_for(ssh, job, timeout=60, states=("RUNNING",))
    ssh(f"scancel {job}")
    state, _ = wait_for(ssh, job, timeout=60)
    assert state.startswith("CANCELLED"), state


def test_two_node_job_runs_on_both_compute_nodes(cluster, ssh):
    d = workdir(cluster, ssh)
    job = sbatch(ssh, f"#!/bin/bash\n#SBATCH -o {d}/job.out\nsrun hostname", "-N2", "--ntasks-per-node=1")
    assert wait_for(ssh, job) == ("COMPLETED", "0:0")
    hosts = sorted(ssh(f"cat {d}/job.out").stdout.split())
    assert hosts == sorted(cluster.get("compute_nodes", ["node1", "node2"]))
    nodelist = ssh(f"sacct -X -n -P -j {job} -o NNodes,NodeList").stdout.strip()
    assert nodelist.split("|")[0] == "2", nodelist


def test_cwl_tool_runs_under_cwltool_singularity_offline(cluster, ssh):
    d = workdir(cluster, ssh)
    tool = {
        "cwlVersion": "v1.2",
        "class": "CommandLineTool",
        "requirements": {"DockerRequirement": {"dockerPull": "python:3.11-slim"}},
        "baseCommand": ["python3", "-c"],
        "arguments": [
            {"position": 0, "valueFrom": "import sys, platform, numpy; count = int(sys.argv[1]); "
                                         "open('out.txt', 'w').write(f'{platform.python_version()} "
                                         "{int(numpy.arange(count).sum())}')"},
        ],
        "inputs": {"count": {"type": "int", "inputBinding": {"position": 1}}},
        "outputs": {"result": {"type": "File", "outputBinding": {"glob": "out.txt"}}},
    }
    ssh(f"cat > {d}/tool.cwl <<'HPGC_EOF'\n{json.dumps(tool, indent=1)}\nHPGC_EOF")
    script = f"""#!/bin/bash
#SBATCH -o {d}/job.out
set -euo pipefail
cd {d}
export CWL_SINGULARITY_CACHE={cluster['image_cache']}
cwltool --singularity --outdir {d}/out tool.cwl --count 10 > result.json
"""
    job = sbatch(ssh, script)
    state, exit_code = wait_for(ssh, job, timeout=240)
    log = ssh(f"cat {d}/job.out", check=False).stdout
    assert (state, exit_code) == ("COMPLETED", "0:0"), log
    result = json.loads(ssh(f"cat {d}/result.json").stdout)
    assert result["result"]["path"] == f"{d}/out/out.txt"
    version, total = ssh(f"cat {d}/out/out.txt").stdout.split()
    assert version.startswith("3.11.") and total == "45"
    # Served from the image cache, not pulled.
    assert "pull" not in log.lower() or "Using local copy" in log, log


def _run(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def _leftovers(cluster: dict) -> list[str]:
    """Whatever of the cluster still exists on the host."""
    netns, bridge = set(cluster["netns"]), cluster["bridge"]
    run_dir = Path(cluster["run_dir_on_host"])
    found = [f"netns {n}" for n in _run("ip", "netns", "list").stdout.split() if n in netns]
    links = {line.split(":")[1].strip().split("@")[0] for line in _run("ip", "-o", "link").stdout.splitlines()}
    found += [f"link {n}" for n in sorted(links & (netns | {bridge}))]
    found += [f"mount {m}" for m in _run("findmnt", "-rn", "-o", "TARGET").stdout.splitlines()
              if m.startswith(f"{run_dir}/") or m == str(run_dir)]
    for pid_file in run_dir.glob("nodes/*/unshare.pid"):
        if Path(f"/proc/{pid_file.read_text().strip()}").exists():
            found.append(f"process {pid_file}")
    ps = _run("ps", "-eo", "args").stdout
    found += [f"process {line}" for line in ps.splitlines() if "node/init.sh" in line and line.endswith(f" {run_dir}")]
    if run_dir.exists():
        found.append(f"dir {run_dir}")
    return found


# Restarting the cluster would pull it from under anyone else using it: on by default in CI only.
LIFECYCLE = os.environ.get("HPGC_CLUSTER_LIFECYCLE", "1" if os.environ.get("CI") else "0") == "1"


@pytest.mark.cluster_lifecycle
@pytest.mark.skipif(os.geteuid() != 0, reason="up/down need root")
@pytest.mark.skipif(not LIFECYCLE, reason="restarts the cluster: set HPGC_CLUSTER_LIFECYCLE=1 (.ci/test does)")
def test_up_is_idempotent_and_down_leaves_nothing_and_warm_up_is_fast(cluster, ssh):
    """Runs after every other test (tests/conftest.py) and leaves the cluster up again (with new keys and an
    empty queue)."""
    t = time.monotonic()
    again = _run(str(CLUSTER_DIR / "up"))
    assert again.returncode == 0 and "already up" in again.stderr, again.stderr
    assert time.monotonic() - t < 15
    assert _run(str(CLUSTER_DIR / "status")).returncode == 0

    down = _run(str(CLUSTER_DIR / "down"))
    assert down.returncode == 0, down.stderr
    assert _leftovers(cluster) == []
    assert _run(str(CLUSTER_DIR / "status")).returncode != 0

    t = time.monotonic()
    up = _run(str(CLUSTER_DIR / "up"))
    warm = time.monotonic() - t
    assert up.returncode == 0, up.stderr
    assert "building" not in up.stderr, "warm up rebuilt the root file system"
    assert warm < 60, f"warm up took {warm:.0f} s"
    assert ssh("sinfo -h -o %D").stdout.strip() == "2"
