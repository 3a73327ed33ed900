"""S3-compatible object storage through obstore (Rust's object_store: streamed gets, multipart puts with bounded
memory, presigned URLs). Endpoints come from the configuration only: a user names a bucket and a key, never a
host, so an `s3://` URL cannot reach anything the administrator did not configure (the SSRF guard of hpgc/net
is for user-given hosts). Credentials never reach a log or an error message."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from hpgc.storage.settings import S3Endpoint, StorageSettings

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
CHUNK = 1024 * 1024


class StorageError(Exception):
    """An object could not be read or written; the message is meant for the user (no credentials in it)."""


@dataclass(frozen=True)
class S3Url:
    bucket: str
    key: str

    @classmethod
    def parse(cls, url: str, prefix: bool = False) -> S3Url:
        """`s3://bucket/key` (a `prefix` may be empty or end with '/'); StorageError saying what is wrong."""
        if not url.startswith("s3://"):
            raise StorageError("not an s3:// URL")
        bucket, _, key = url[5:].partition("/")
        if not _BUCKET.match(bucket) or ".." in bucket:
            raise StorageError(f"{bucket[:70]!r} is not a bucket name")
        if not prefix and not key:
            raise StorageError("the URL names no object (s3://bucket/key)")
        if len(key) > 1024 or any(not c.isprintable() for c in key) or "\\" in key:
            raise StorageError("the key is longer than 1024 characters or holds control characters")
        if any(part in (".", "..") for part in key.split("/")):
            raise StorageError("the key has a '.' or '..' segment")
        return cls(bucket, key)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def _why(exc: Exception) -> str:
    """obstore's error, in words a user can act on, without the request it made (signed headers, URLs)."""
    name = type(exc).__name__
    if isinstance(exc, FileNotFoundError):  # obstore's NotFound (a missing object, or bucket)
        return "no such object or bucket"
    if isinstance(exc, PermissionError):
        return "access denied"
    return {"NotFoundError": "no such object", "PermissionDeniedError": "access denied",
            "UnauthenticatedError": "the credentials were refused", "AlreadyExistsError": "the object exists"}.get(
        name, f"the object store answered with an error ({name})")


class ObjectStores:
    """The configured endpoints; one obstore client per (endpoint, bucket, credentials), made on first use."""

    def __init__(self, settings: StorageSettings | None = None) -> None:
        self.settings = settings or StorageSettings()
        self._stores: dict[tuple[str, str, str | None], Any] = {}

    def endpoint_for(self, bucket: str) -> tuple[str, S3Endpoint]:
        for name, ep in self.settings.s3.items():
            if bucket in ep.buckets or "*" in ep.buckets:
                return name, ep
        raise StorageError(f"no S3 endpoint of this server serves the bucket {bucket!r} (storage.s3.*.buckets)")

    def check(self, url: str, prefix: bool = False) -> S3Url:
        """The parsed URL, if an endpoint serves its bucket (a 400 at submission, not a failed job later)."""
        parsed = S3Url.parse(url, prefix)
        self.endpoint_for(parsed.bucket)
        return parsed

    def _store(self, bucket: str, unix_user: str | None) -> Any:
        from obstore.store import S3Store  # imported on first use: a server without S3 never loads it

        name, ep = self.endpoint_for(bucket)
        user = unix_user if unix_user in ep.users else None
        key = (name, bucket, user)
        if key not in self._stores:
            creds = ep.users[user] if user else ep
            config: dict[str, Any] = {"region": ep.region, "virtual_hosted_style_request": ep.virtual_hosted_style}
            if ep.endpoint:
                config["endpoint"] = ep.endpoint
            if creds.access_key_id is not None and creds.secret_access_key is not None:
                config["access_key_id"] = creds.access_key_id.get_secret_value()
                config["secret_access_key"] = creds.secret_access_key.get_secret_value()
            else:
                config["skip_signature"] = True
            self._stores[key] = S3Store(bucket, config=config, client_options={
                "allow_http": ep.allow_http, "connect_timeout": "10s", "timeout": "600s"})
        return self._stores[key]

    async def size(self, url: str, unix_user: str | None = None) -> int:
        import obstore

        parsed = S3Url.parse(url)
        try:
            meta = await obstore.head_async(self._store(parsed.bucket, unix_user), parsed.key)
        except Exception as exc:
            raise StorageError(f"{parsed}: {_why(exc)}") from None
        return int(meta["size"])

    async def read(self, url: str, max_bytes: int, unix_user: str | None = None) -> AsyncIterator[bytes]:
        """The object's bytes as they arrive; StorageError past `max_bytes` (checked on the announced size first)."""
        import obstore

        parsed = S3Url.parse(url)
        try:
            got = await obstore.get_async(self._store(parsed.bucket, unix_user), parsed.key)
            if got.meta["size"] > max_bytes:
                raise StorageError(f"{parsed} is {got.meta['size']} bytes, more than the {max_bytes} allowed")
            async for chunk in got.stream(min_chunk_size=CHUNK):
                yield bytes(chunk)
        except StorageError:
            raise
        except Exception as exc:
            raise StorageError(f"{parsed}: {_why(exc)}") from None

    async def write(self, url: str, chunks: AsyncIterator[bytes], unix_user: str | None = None,
                    media_type: str | None = None) -> tuple[int, str]:
        """Put an object from `chunks` (multipart past one part: memory about part_bytes × concurrency); the
        object appears only when complete. Returns (size, SHA-256 hex of the bytes sent)."""
        import obstore

        parsed = S3Url.parse(url)
        digest, size = hashlib.sha256(), [0]
        source_error: list[BaseException] = []

        async def counted() -> AsyncIterator[bytes]:
            # pieces of at least CHUNK: each one handed to obstore crosses into Rust, and sources read 64 KiB
            buffer = bytearray()
            try:
                async for chunk in chunks:
                    digest.update(chunk)
                    size[0] += len(chunk)
                    buffer += chunk
                    if len(buffer) >= CHUNK:
                        yield bytes(buffer)
                        buffer.clear()
                if buffer:
                    yield bytes(buffer)
            except BaseException as exc:
                source_error.append(exc)  # the source broke (a cluster connection): said by its own error
                raise

        attributes = {"Content-Type": media_type} if media_type else None
        try:
            await obstore.put_async(self._store(parsed.bucket, unix_user), parsed.key, counted(),
                                    chunk_size=self.settings.part_bytes, max_concurrency=self.settings.concurrency,
                                    attributes=attributes)
        except Exception as exc:
            if source_error:
                raise source_error[0] from None
            raise StorageError(f"{parsed}: {_why(exc)}") from None
        return size[0], digest.hexdigest()

    async def signed_get(self, url: str, unix_user: str | None = None) -> str:
        """A presigned GET URL (a Slurm job downloads its input with it: no credentials in the job)."""
        import obstore

        parsed = S3Url.parse(url)
        _, ep = self.endpoint_for(parsed.bucket)
        try:
            return str(await obstore.sign_async(self._store(parsed.bucket, unix_user), "GET", parsed.key,
                                                timedelta(seconds=ep.presign_s)))
        except Exception as exc:
            raise StorageError(f"{parsed}: {_why(exc)}") from None

    async def delete(self, url: str, unix_user: str | None = None) -> None:
        import obstore

        parsed = S3Url.parse(url)
        try:
            await obstore.delete_async(self._store(parsed.bucket, unix_user), parsed.key)
        except Exception as exc:
            raise StorageError(f"{parsed}: {_why(exc)}") from None
