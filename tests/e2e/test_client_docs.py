"""docs/clients.md's notebook flow with hpgc.client, run as written against a real `hpgc serve`."""

from __future__ import annotations

import functools
import http.server
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

from tests.e2e.conftest import REPO, start_server
from tests.e2e.test_auth_e2e import hpgc_token


def flow_block() -> str:
    text = (REPO / "docs/clients.md").read_text()
    section = text[text.index("### The HPGC notebooks' flow"):]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the notebook flow's code block is gone from docs/clients.md"
    return match.group(1)


def test_the_notebook_flow_of_the_docs_runs(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for name in ("sentinel2-subset.tif", "pre.tif", "post.tif"):
        (images / name).write_bytes(b"II*\x00" + name.encode())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(images))
    files = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=files.serve_forever, daemon=True).start()
    server = start_server(tmp_path / "data", env={"HPGC_AUTH__ENABLED": "true",
                                                   "HPGC_OUTBOUND__ALLOWED_NETWORKS": '["127.0.0.1/32"]'})
    try:
        work = tmp_path / "work"
        work.mkdir()
        (work / "appkgs").symlink_to(REPO / "appkgs")
        (work / "flow.py").write_text(flow_block())
        env = {k: v for k, v in os.environ.items() if not k.startswith("HPGC_")}
        env.update(HPGC_URL=server.url, DATA_URL=f"http://127.0.0.1:{files.server_port}",
                   HPGC_TOKEN=hpgc_token(str(server.data_dir), "alice", "hpgc:execute hpgc:deploy hpgc:admin"),
                   XDG_CONFIG_HOME=str(tmp_path / "cfg"), PYTHONPATH=str(REPO))
        for attempt in (1, 2):  # the second run replaces what the first deployed
            run = subprocess.run([sys.executable, "flow.py"], cwd=work, env=env, capture_output=True, text=True,
                                 timeout=300)
            print(run.stdout, run.stderr)
            assert run.returncode == 0, run.stderr
            verb = "deployed" if attempt == 1 else "replaced"
            assert f"{verb} BandMath\n{verb} dnbr\n" in run.stdout
            for name in ("BandMath", "dnbr"):
                # on the local backend without Apptainer and the OTB image a job cannot succeed: each step
                # reports clearly (on Slurm the same block downloads the results: the cluster suite)
                ended = re.search(rf"^{name} (not started: |failed: job \S+ failed|results: )", run.stdout, re.M)
                assert ended, run.stdout
    finally:
        files.shutdown()
        server.stop()
