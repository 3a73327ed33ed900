"""Where `s3://` URLs go: named endpoints, each serving some buckets, with the site's credentials and optionally
a user's own."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr


class S3Credentials(BaseModel):
    access_key_id: SecretStr = Field(description="The access key id.")
    secret_access_key: SecretStr = Field(description="The secret access key.")


class S3Endpoint(BaseModel):
    endpoint: str | None = Field(
        default=None, description="The endpoint URL (e.g. https://s3.example.org, http://minio:9000); None: AWS.")
    region: str = Field(default="us-east-1", description="The region the endpoint signs for.")
    buckets: list[str] = Field(
        default_factory=list, description="Buckets served by this endpoint (exact names, or '*' for any); a URL "
        "goes to the first endpoint naming its bucket.")
    access_key_id: SecretStr | None = Field(default=None, description="The site's access key id (None: anonymous).")
    secret_access_key: SecretStr | None = Field(default=None, description="The site's secret access key.")
    users: dict[str, S3Credentials] = Field(
        default_factory=dict, description="Per-user credentials by Unix user name (the mapped account): used "
        "instead of the site's for that user's inputs and outputs.")
    virtual_hosted_style: bool = Field(
        default=False, description="bucket.endpoint URLs instead of endpoint/bucket (path style, MinIO/Ceph's).")
    allow_http: bool = Field(default=False, description="Allow a plain http:// endpoint (a closed network only).")
    presign_s: int = Field(
        default=7 * 86400, ge=60, le=7 * 86400,
        description="Lifetime of the signed GET URLs a Slurm job downloads its s3:// inputs with "
        "(stage_in = 'job'); SigV4 allows at most 7 days.")


class StorageSettings(BaseModel):
    s3: dict[str, S3Endpoint] = Field(
        default_factory=dict, description="S3-compatible endpoints by name; none: s3:// inputs and destinations are "
        "refused (400).")
    part_bytes: int = Field(default=8 * 1024 * 1024, ge=5 * 1024 * 1024,
                            description="Part size of multipart uploads (outputs); memory is about part_bytes × "
                            "concurrency per delivery.")
    concurrency: int = Field(default=4, ge=1, le=32, description="Parts of one object uploaded at once.")
