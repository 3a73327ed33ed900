from __future__ import annotations

from pathlib import Path

from hpgc.backends.slurm.backend import SlurmBackend
from hpgc.backends.slurm.config import ClusterSettings
from hpgc.models.run import JobRef


def _backend(tmp_path: Path, prefix: str | None) -> SlurmBackend:
    known = tmp_path / "known_hosts"
    known.write_text("")
    cluster = ClusterSettings(host="login.example", known_hosts=known, user="svc", work_root="/scratch/hpgc",
                              public_url_prefix=prefix)
    return SlurmBackend({"c1": cluster})


def test_results_link_to_the_sites_own_server(tmp_path: Path) -> None:
    backend = _backend(tmp_path, "https://data.example.org/hpgc/")
    ref = JobRef(job_id="j1", external_id="c1:42", unix_user="alice")
    url = backend.public_url(ref, "/scratch/hpgc/alice/j1/outputs/out put.tif")
    assert url == "https://data.example.org/hpgc/alice/j1/outputs/out%20put.tif"
    assert backend.public_url(ref, "outputs/x.tif") == "https://data.example.org/hpgc/alice/j1/outputs/x.tif"
    assert backend.public_url(ref, "/scratch/hpgc/bob/j2/secret.tif") is None  # another job's file: never
    assert backend.public_url(ref, "/scratch/hpgc/alice/j1/../../bob/x") is None


def test_no_prefix_means_hpgc_streams(tmp_path: Path) -> None:
    backend = _backend(tmp_path, None)
    assert backend.public_url(JobRef(job_id="j1", external_id="c1:42"), "outputs/x.tif") is None


def test_the_cluster_in_the_backend_id_wins(tmp_path: Path) -> None:
    """A job's cluster is the one its Slurm id was given on (jobid.parse_external_id), whatever else says."""
    known = tmp_path / "known_hosts"
    known.write_text("")
    clusters = {name: ClusterSettings(host="login.example", known_hosts=known, user="svc", work_root=f"/{name}",
                                      public_url_prefix=f"https://{name}.example/") for name in ("c1", "c2")}
    backend = SlurmBackend(clusters)
    assert backend.public_url(JobRef(job_id="j1", external_id="c2:7_3", cluster="c1", unix_user="alice"),
                              "out.tif") == "https://c2.example/alice/j1/out.tif"
    assert backend.public_url(JobRef(job_id="j1", cluster="c2", unix_user="alice"),
                              "out.tif") == "https://c2.example/alice/j1/out.tif"  # not submitted yet
    assert backend.public_url(JobRef(job_id="j1", unix_user="alice"), "out.tif") == "https://c1.example/alice/j1/out.tif"
