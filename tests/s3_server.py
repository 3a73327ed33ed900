"""A real S3 HTTP endpoint on loopback for tests: moto's standalone server (`moto[server]`, the `test` extra),
started on a free port as its own process, in memory, gone with the test session."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from hpgc.storage.settings import S3Endpoint, StorageSettings

KEY_ID, SECRET = "hpgc-test-key", "hpgc-test-secret-do-not-log"


@dataclass(frozen=True)
class S3Server:
    url: str

    def endpoint(self, buckets: list[str], **kw: object) -> S3Endpoint:
        return S3Endpoint(endpoint=self.url, buckets=buckets, access_key_id=KEY_ID, secret_access_key=SECRET,
                          allow_http=True, **kw)  # type: ignore[arg-type]

    def settings(self, buckets: list[str], **kw: object) -> StorageSettings:
        return StorageSettings(s3={"test": self.endpoint(buckets, **kw)})

    def make_bucket(self, bucket: str) -> None:
        urllib.request.urlopen(urllib.request.Request(f"{self.url}/{bucket}", method="PUT")).close()

    def put(self, bucket: str, key: str, data: bytes) -> None:
        # a Content-Type of its own: urllib's default (a form) makes moto's web server parse the body as one
        urllib.request.urlopen(urllib.request.Request(f"{self.url}/{bucket}/{key}", data=data, method="PUT",
                                                      headers={"Content-Type": "application/octet-stream"})).close()

    def get(self, bucket: str, key: str) -> bytes:
        with urllib.request.urlopen(f"{self.url}/{bucket}/{key}") as resp:
            return bytes(resp.read())


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextmanager
def moto_server(host: str = "127.0.0.1") -> Iterator[S3Server]:
    """moto's S3 on HOST (loopback; the test cluster's bridge address for jobs on its nodes)."""
    port = free_port(host)
    env = {**os.environ, "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET}
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    server = S3Server(f"http://{host}:{port}")
    try:
        deadline = time.monotonic() + 60
        while True:  # the outcome (an answer on the port) ends the wait, the sleep only spaces the questions
            try:
                urllib.request.urlopen(f"{server.url}/moto-api/", timeout=5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto's server did not start") from None
                time.sleep(0.1)
        yield server
    finally:
        proc.terminate()
        proc.wait(10)
