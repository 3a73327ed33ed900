"""Which S3 client streams best: obstore, aiobotocore, boto3, each in its own process against one moto server
on loopback, putting and getting one object of SIZE_MIB streamed in 1 MiB pieces (never whole in memory).
Prints MiB/s and the peak RSS above the process's RSS after imports. Used once to choose (docs/data.md).

    python bench/bench_s3_clients.py [SIZE_MIB]
"""

from __future__ import annotations

import asyncio
import json
import resource
import socket
import subprocess
import sys
import time

PART = 8 * 1024 * 1024
PIECE = b"\x5a" * (1 << 20)


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pieces(n: int):  # type: ignore[no-untyped-def]
    for _ in range(n):
        yield PIECE


async def apieces(n: int):  # type: ignore[no-untyped-def]
    for _ in range(n):
        yield PIECE


async def run_obstore(url: str, n: int) -> tuple[float, float]:
    import obstore
    from obstore.store import S3Store

    store = S3Store("bench", config={"endpoint": url, "region": "us-east-1", "access_key_id": "x",
                                     "secret_access_key": "y"}, client_options={"allow_http": True})
    t = time.perf_counter()
    await obstore.put_async(store, "o", apieces(n), chunk_size=PART, max_concurrency=4)
    put = time.perf_counter() - t
    t = time.perf_counter()
    got = await obstore.get_async(store, "o")
    total = 0
    async for chunk in got.stream(min_chunk_size=1 << 20):
        total += len(chunk)
    assert total == n << 20
    return put, time.perf_counter() - t


async def run_aiobotocore(url: str, n: int) -> tuple[float, float]:
    from aiobotocore.session import get_session

    async with get_session().create_client("s3", endpoint_url=url, region_name="us-east-1",
                                           aws_access_key_id="x", aws_secret_access_key="y") as s3:
        t = time.perf_counter()
        up = await s3.create_multipart_upload(Bucket="bench", Key="o")
        parts, buf, number = [], bytearray(), 1
        async for piece in apieces(n):
            buf += piece
            if len(buf) >= PART:
                r = await s3.upload_part(Bucket="bench", Key="o", UploadId=up["UploadId"], PartNumber=number,
                                         Body=bytes(buf))
                parts.append({"ETag": r["ETag"], "PartNumber": number})
                buf, number = bytearray(), number + 1
        if buf:
            r = await s3.upload_part(Bucket="bench", Key="o", UploadId=up["UploadId"], PartNumber=number,
                                     Body=bytes(buf))
            parts.append({"ETag": r["ETag"], "PartNumber": number})
        await s3.complete_multipart_upload(Bucket="bench", Key="o", UploadId=up["UploadId"],
                                           MultipartUpload={"Parts": parts})
        put = time.perf_counter() - t
        t = time.perf_counter()
        resp = await s3.get_object(Bucket="bench", Key="o")
        total = 0
        async for chunk in resp["Body"].iter_chunks(1 << 20):
            total += len(chunk)
        assert total == n << 20
        return put, time.perf_counter() - t


async def run_boto3(url: str, n: int) -> tuple[float, float]:
    import io

    import boto3
    from boto3.s3.transfer import TransferConfig

    s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="x",
                      aws_secret_access_key="y")

    class Reader(io.RawIOBase):
        def __init__(self) -> None:
            self.left = n << 20

        def readable(self) -> bool:
            return True

        def readinto(self, b):  # type: ignore[no-untyped-def]
            k = min(len(b), self.left)
            b[:k] = b"\x5a" * k
            self.left -= k
            return k

    t = time.perf_counter()
    await asyncio.to_thread(s3.upload_fileobj, io.BufferedReader(Reader(), 1 << 20), "bench", "o",
                            Config=TransferConfig(multipart_chunksize=PART, max_concurrency=4))
    put = time.perf_counter() - t
    t = time.perf_counter()

    def get() -> int:
        body = s3.get_object(Bucket="bench", Key="o")["Body"]
        return sum(len(c) for c in body.iter_chunks(1 << 20))

    assert await asyncio.to_thread(get) == n << 20
    return put, time.perf_counter() - t


def child(name: str, url: str, n: int) -> None:
    fn = {"obstore": run_obstore, "aiobotocore": run_aiobotocore, "boto3": run_boto3}[name]
    if name == "obstore":
        import obstore  # noqa: F401
    elif name == "aiobotocore":
        import aiobotocore.session  # noqa: F401
    else:
        import boto3  # noqa: F401
    base = rss_mib()
    put, get = asyncio.run(fn(url, n))
    print(json.dumps({"client": name, "put_mib_s": round(n / put, 1), "get_mib_s": round(n / get, 1),
                      "peak_rss_above_imports_mib": round(rss_mib() - base, 1)}))


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 256
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        import urllib.request
        for _ in range(100):
            try:
                urllib.request.urlopen(url + "/moto-api/").close()
                break
            except OSError:
                time.sleep(0.1)
        urllib.request.urlopen(urllib.request.Request(url + "/bench", method="PUT")).close()
        for name in ("obstore", "aiobotocore", "boto3"):
            subprocess.run([sys.executable, __file__, "--child", name, url, str(n)], check=True)
    finally:
        moto.terminate()
        moto.wait()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
