"""Object storage (S3-compatible: AWS, MinIO, Ceph RGW...): inputs read from `s3://bucket/key` and outputs
delivered to `s3://bucket/prefix/`, through endpoints and credentials the administrator configures per site and
optionally per user (docs/data.md). It sits beside hpgc/net at the bottom: backends stage inputs with it, the job
service delivers outputs with it."""

from hpgc.storage.s3 import ObjectStores, S3Url, StorageError

__all__ = ["ObjectStores", "S3Url", "StorageError"]
