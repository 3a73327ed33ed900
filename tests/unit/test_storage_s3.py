"""hpgc/storage against a real S3 endpoint on loopback (moto's server): streamed reads and writes with their
checksum and limits, signed URLs, and the refusals of URLs no endpoint serves or that try to leave their key."""

from __future__ import annotations

import hashlib
import urllib.request
from collections.abc import AsyncIterator

import pytest

from hpgc.storage import ObjectStores, S3Url, StorageError
from hpgc.storage.settings import S3Credentials
from tests.s3_server import SECRET, S3Server


@pytest.mark.parametrize("url, why", [
    ("s3://", "is not a bucket name"), ("s3://A_B/k", "is not a bucket name"), ("s3://bbb/", "names no object"),
    ("s3://ok-bucket/a/../b", "'..' segment"), ("s3://ok-bucket/./b", "or '..' segment"),
    ("s3://ok-bucket/a\nb", "control characters"), ("s3://ok-bucket/" + "k" * 1025, "longer than 1024"),
    ("s3://a..b/k", "is not a bucket name"), ("http://ok-bucket/k", "not an s3:// URL"),
])
def test_bad_urls_are_refused_saying_why(url: str, why: str) -> None:
    with pytest.raises(StorageError, match=why):
        S3Url.parse(url)


def test_a_prefix_may_be_empty_and_buckets_must_be_configured(s3: S3Server) -> None:
    stores = ObjectStores(s3.settings(["served"]))
    assert stores.check("s3://served/", prefix=True) == S3Url("served", "")
    with pytest.raises(StorageError, match="no S3 endpoint of this server serves the bucket 'other'"):
        stores.check("s3://other/key")


async def pieces(n: int, size: int = 1 << 20) -> AsyncIterator[bytes]:
    for i in range(n):
        yield bytes([i % 256]) * size


async def test_write_then_read_streams_with_its_checksum(s3: S3Server) -> None:
    s3.make_bucket("rw-bucket")
    stores = ObjectStores(s3.settings(["rw-bucket"], ))
    stores.settings.part_bytes = 5 * 1024 * 1024
    expected = b"".join([bytes([i % 256]) * (1 << 20) for i in range(12)])  # 12 MiB: a multipart upload
    size, sha = await stores.write("s3://rw-bucket/out/x.tif", pieces(12), media_type="image/tiff")
    assert (size, sha) == (len(expected), hashlib.sha256(expected).hexdigest())
    assert s3.get("rw-bucket", "out/x.tif") == expected
    got = b"".join([c async for c in stores.read("s3://rw-bucket/out/x.tif", len(expected))])
    assert got == expected and await stores.size("s3://rw-bucket/out/x.tif") == len(expected)
    with pytest.raises(StorageError, match="more than the 1000 allowed"):
        _ = [c async for c in stores.read("s3://rw-bucket/out/x.tif", 1000)]
    with pytest.raises(StorageError, match="s3://rw-bucket/missing: no such object or bucket"):
        _ = [c async for c in stores.read("s3://rw-bucket/missing", 1000)]
    signed = await stores.signed_get("s3://rw-bucket/out/x.tif")
    assert "X-Amz-Signature" in signed and SECRET not in signed
    with urllib.request.urlopen(signed) as resp:
        assert resp.read() == expected


async def test_errors_never_carry_credentials(s3: S3Server) -> None:
    stores = ObjectStores(s3.settings(["no-such-bucket-here"]))
    with pytest.raises(StorageError) as caught:
        await stores.write("s3://no-such-bucket-here/k", pieces(1))
    assert SECRET not in str(caught.value) and "hpgc-test-key" not in str(caught.value)
    assert str(caught.value).startswith("s3://no-such-bucket-here/k: ")


async def test_a_user_with_own_credentials_uses_them(s3: S3Server) -> None:
    s3.make_bucket("per-user")
    users = {"alice": S3Credentials(access_key_id="alice-key", secret_access_key="alice-secret")}
    stores = ObjectStores(s3.settings(["per-user"], users=users))
    await stores.write("s3://per-user/a", pieces(1, 10), unix_user="alice")
    await stores.write("s3://per-user/b", pieces(1, 10), unix_user="bob")
    assert stores._stores.keys() == {("test", "per-user", "alice"), ("test", "per-user", None)}


async def test_a_source_cut_midway_leaves_no_object(s3: S3Server) -> None:
    s3.make_bucket("cut-bucket")
    stores = ObjectStores(s3.settings(["cut-bucket"]))
    stores.settings.part_bytes = 5 * 1024 * 1024

    async def cut() -> AsyncIterator[bytes]:
        async for chunk in pieces(7):
            yield chunk
        raise ConnectionResetError("the cluster connection broke")

    with pytest.raises(ConnectionResetError, match="the cluster connection broke"):
        await stores.write("s3://cut-bucket/half.tif", cut())
    with pytest.raises(StorageError, match="no such object"):
        await stores.size("s3://cut-bucket/half.tif")


async def test_a_job_that_stages_itself_gets_a_signed_url_not_credentials(s3: S3Server) -> None:
    """stage_in = "job": the script curls a presigned URL of that one object; no key or secret reaches it."""
    from hpgc.backends.slurm.config import ClusterSettings
    from hpgc.backends.slurm.script import render
    from hpgc.backends.slurm.stage_in import sign_s3_inputs
    from hpgc.models.run import RunSpec, StagedFile

    s3.make_bucket("signed")
    s3.put("signed", "in/a.tif", b"signed bytes")
    stores = ObjectStores(s3.settings(["signed"]))
    spec = RunSpec(job_id="j1", process_id="p", kind="command", argv=["cat", "inputs/a.tif"],
                   files=[StagedFile(path="inputs/a.tif", href="s3://signed/in/a.tif")])
    signed = await sign_s3_inputs(spec, stores)
    url = signed.files[0].href or ""
    with urllib.request.urlopen(url) as resp:
        assert resp.read() == b"signed bytes"
    cluster = ClusterSettings(host="h", known_hosts="/k", user="alice", work_root="/w", stage_in="job")
    script = render(signed, cluster, "/w/alice/j1")
    assert "curl -fsSL --proto =http,https" in script and "X-Amz-Signature" in script
    assert SECRET not in script  # (the access key id is part of any SigV4 signed URL; the secret never is)
