"""Settings of uploaded files (POST /files): how big, how much per user, how long they are kept."""

from __future__ import annotations

from pydantic import BaseModel, Field


class UploadSettings(BaseModel):
    max_bytes: int = Field(
        default=20 * 1024**3, ge=0,
        description="Largest file one upload may be (bytes); a bigger one is refused with 413, before a byte is "
        "stored when the client announces its length, else when the limit is passed (nothing is kept). 0: uploads "
        "are off (POST /files answers 403).")
    quota_bytes: int = Field(
        default=100 * 1024**3, ge=0,
        description="Bytes of uploaded files one user may hold at once (uploads in progress count with what they "
        "may still grow to); one more upload → 413 naming the setting. 0: no quota.")
    expire_s: float = Field(
        default=7 * 86400.0, gt=0,
        description="Seconds an uploaded file is kept after its upload or its last use by a job; it is never "
        "deleted while a job that was given it is accepted or running (its job keeps its own link then).")
    sweep_interval_s: float = Field(
        default=600.0, gt=0, description="Seconds between two sweeps that delete expired uploads.")
