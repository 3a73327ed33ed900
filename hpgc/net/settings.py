"""Settings of the guarded outbound client: one place that says where the server may connect for a user."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from hpgc.net.guard import UrlGuard


class OutboundSettings(BaseModel):
    """Every request the server makes on a user's behalf: callbacks, `href` inputs, `executionUnit.href`."""

    allowed_networks: list[str] = Field(
        default_factory=list,
        description="Networks (CIDR, e.g. '10.1.2.0/24' or '127.0.0.1/32') the server may reach for users "
        "although they are loopback, link-local, private or otherwise non-public: callbacks, href inputs and "
        "executionUnit.href alike. Everything else that is not public is refused.",
    )
    allow_private: bool = Field(
        default=False,
        description="Turn the address guard off: users may make the server reach any address, loopback and "
        "cloud metadata included. Only for closed test setups; prefer allowed_networks.",
    )
    connect_timeout_s: float = Field(
        default=10.0, gt=0, description="Time limit to open one connection (each redirect hop included)."
    )
    timeout_s: float = Field(
        default=300.0, gt=0,
        description="Time limit of one href input download, redirects and the whole body included.",
    )
    document_timeout_s: float = Field(
        default=30.0, gt=0,
        description="Time limit of fetching a small document, e.g. a CWL file named by executionUnit.href at "
        "deploy time (the deploy request waits for it).",
    )
    max_redirects: int = Field(
        default=5, ge=0, le=20,
        description="Redirects followed by a download, each hop checked like the first URL; 0: none. Callbacks "
        "never follow redirects.",
    )
    max_job_bytes: int = Field(
        default=10 * 1024**3, ge=1,
        description="Largest number of bytes all href inputs of one job may stage together (after content "
        "decoding); a job over it fails with a message naming this setting.",
    )
    max_connections: int = Field(
        default=100, ge=1, description="Outbound connections open at once, all users and purposes together."
    )

    @field_validator("allowed_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        UrlGuard(allowed_networks=value)  # raises ValueError with the bad network in the message
        return value
