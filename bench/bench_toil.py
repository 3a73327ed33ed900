"""CWL under Toil (each step its own Slurm job) against cwltool (the whole workflow in one job), same run, on the
test cluster (slurm-test-cluster up, with Toil: recipe/toil.sh).

Two workflows, each run once under each runner through SlurmBackend (submit → successful, polled every 0.5 s):
1. dnbr: the notebooks' dNBR over N generated tile pairs (tests/data/toil/dnbr_tiles.cwl; 3N short tool runs in
   the OTB image): what a real scatter of short steps costs.
2. burn: a scatter of N tool runs that each keep one CPU busy for S seconds (python image): CPU-bound steps,
   where Toil's spread over both nodes should pay.
Reports wall time from submit to successful and the nodes used (sacct of the job and of its step jobs).

    .venv/bin/python bench/bench_toil.py [--tiles 8] [--size 512] [--burn 20]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import time
import uuid
from pathlib import Path

import asyncssh
import numpy as np
import tifffile

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hpgc.backends.slurm.backend import SlurmBackend  # noqa: E402
from hpgc.backends.slurm.config import ClusterSettings  # noqa: E402
from hpgc.models.run import JobRef, Resources, RunSpec, StagedFile  # noqa: E402
from hpgc.packages.cwl import pack_text  # noqa: E402

TOIL = "/usr/local/bin/toil-cwl-runner"
BURN = """cwlVersion: v1.2
$graph:
  - id: spin
    class: CommandLineTool
    requirements:
      DockerRequirement: {dockerPull: "python:3.11-slim"}
      ResourceRequirement: {coresMin: 1, ramMin: 128}
    baseCommand:
      - python3
      - -c
      - |
        import sys, time
        t = time.process_time()
        while time.process_time() - t < float(sys.argv[1]): pass
        print(sys.argv[2])
    inputs:
      seconds: {type: float, inputBinding: {position: 1}}
      n: {type: int, inputBinding: {position: 2}}
    stdout: out.txt
    outputs:
      out: {type: stdout}
  - id: burn
    class: Workflow
    requirements: {ScatterFeatureRequirement: {}}
    inputs:
      seconds: float
      ns: int[]
    outputs:
      outs: {type: 'File[]', outputSource: spin/out}
    steps:
      spin:
        run: "#spin"
        scatter: n
        in: {seconds: seconds, n: ns}
        out: [out]
"""


def settings(c: dict, toil: bool) -> ClusterSettings:
    return ClusterSettings(host=c["host"], port=c["port"], known_hosts=c["known_hosts"], user="alice",
                           key_file=c["users"]["alice"], work_root=c["work_root"], image_cache=c["image_cache"],
                           container_runtime="apptainer", partition=c.get("partition"), account=c.get("account"),
                           poll_min_s=0.5, poll_max_s=0.5, toil_cwl_runner=TOIL if toil else None,
                           toil_leader_memory_mb=512)


def geotiff(rng: np.random.Generator, lo: int, hi: int, size: int) -> bytes:
    buf = io.BytesIO()
    bands = np.stack([rng.integers(lo, hi, (size, size), dtype=np.uint16) for _ in range(2)])
    tifffile.imwrite(buf, bands, planarconfig="separate", photometric="minisblack")
    return buf.getvalue()


def dnbr_spec(job_id: str, tiles: int, size: int) -> RunSpec:
    rng = np.random.default_rng(14)
    files, job = [], {"pre_fire": [], "post_fire": []}
    for i in range(tiles):
        for key, lo, hi in (("pre", 100, 200), ("post", 1, 100)):
            path = f"inputs/{key}{i}.tif"
            files.append(StagedFile(path=path, content=geotiff(rng, lo, hi, size)))
            job[f"{key}_fire"].append({"class": "File", "path": path})
    wf = (REPO / "tests/data/toil/dnbr_tiles.cwl").read_text()
    return RunSpec(job_id=job_id, process_id="dnbr_tiles", kind="cwl", cwl_workflow=True,
                   resources=Resources(cpus=1, time_limit_s=3600), files=[
                       *files, StagedFile(path="tool.cwl", content=json.dumps(pack_text(wf, "dnbr_tiles")).encode()),
                       StagedFile(path="job.json", content=json.dumps(job).encode())])


def burn_spec(job_id: str, n: int, seconds: float) -> RunSpec:
    job = {"seconds": seconds, "ns": list(range(n))}
    return RunSpec(job_id=job_id, process_id="burn", kind="cwl", cwl_workflow=True,
                   resources=Resources(cpus=1, time_limit_s=3600), files=[
                       StagedFile(path="tool.cwl", content=json.dumps(pack_text(BURN, "burn")).encode()),
                       StagedFile(path="job.json", content=json.dumps(job).encode())])


async def run(c: dict, conn: asyncssh.SSHClientConnection, spec: RunSpec, toil: bool) -> dict:
    backend = SlurmBackend({"test": settings(c, toil)})
    t0 = time.monotonic()
    ref = JobRef(job_id=spec.job_id, external_id=await backend.submit(spec))
    try:
        while True:
            st = (await backend.poll([ref])).get(spec.job_id)
            if st is not None and st.status.terminal:
                break
            await asyncio.sleep(0.5)
        wall = time.monotonic() - t0
    finally:
        await backend.close()
    names = f"hpgc-{spec.job_id},hpgc-{spec.job_id}.step"
    rows = (await conn.run(f"sacct -X -n -P -S now-3hours --name={names} -o JobName,NodeList,Elapsed",
                           check=True)).stdout.split()
    nodes = sorted({r.split("|")[1] for r in rows if r.split("|")[0].endswith(".step")} or
                   {r.split("|")[1] for r in rows})
    return {"runner": "toil" if toil else "cwltool", "status": st.status.value, "wall_s": round(wall, 1),
            "slurm_jobs": len(rows), "nodes": nodes, "message": (st.message or "")[:200]}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiles", type=int, default=8)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--burn", type=float, default=20.0, help="CPU seconds per step of the burn workflow (0: skip)")
    args = ap.parse_args()
    c = json.loads((REPO / "slurm-test-cluster/.state/cluster.json").read_text())
    async with asyncssh.connect(c["host"], port=c["port"], username="alice", client_keys=[c["users"]["alice"]],
                                known_hosts=c["known_hosts"]) as conn:
        results = []
        for toil in (True, False):
            tag = uuid.uuid4().hex[:8]
            results.append({"workflow": f"dnbr {args.tiles} tiles {args.size}²",
                            **await run(c, conn, dnbr_spec(f"bench-dnbr-{tag}", args.tiles, args.size), toil)})
            print(json.dumps(results[-1]), flush=True)
            if args.burn:
                results.append({"workflow": f"burn {args.tiles}×{args.burn:g} CPU s",
                                **await run(c, conn, burn_spec(f"bench-burn-{tag}", args.tiles, args.burn), toil)})
                print(json.dumps(results[-1]), flush=True)
    print("\n| workflow | runner | status | wall (s) | Slurm jobs | nodes |\n|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['workflow']} | {r['runner']} | {r['status']} | {r['wall_s']} | {r['slurm_jobs']} | "
              f"{', '.join(r['nodes'])} |")


if __name__ == "__main__":
    asyncio.run(main())
