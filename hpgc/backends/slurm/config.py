"""Settings of one Slurm cluster."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ClusterSettings(BaseModel):
    host: str = Field(description="SSH host of the cluster's login node.")
    port: int = Field(default=22, description="SSH port.")
