"""Settings of SSH user certificates: how hpgc logs in as each mapped Unix user without holding their keys."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import BaseModel, Field, field_validator, model_validator

from hpgc.models.names import unix_user_error


class CertificateSettings(BaseModel):
    ca_key: Path | None = Field(
        default=None, description="Private key of the user CA that sshd trusts (TrustedUserCAKeys). It must be "
        "readable by the server's account only (mode 0600 or stricter). Exactly one of ca_key and "
        "signer_command.")
    signer_command: list[str] | None = Field(
        default=None, description="External signer instead of a CA key here (e.g. a vault or step-ca "
        "client), run without a shell: it reads an OpenSSH public key on stdin and prints its certificate "
        "on stdout; HPGC_CERT_PRINCIPAL, HPGC_CERT_VALIDITY_S, HPGC_CERT_KEY_ID and HPGC_CERT_SOURCE_ADDRESS "
        "(comma-separated, maybe empty) say what to sign.")
    ca_public_key: Path | None = Field(
        default=None, description="Public key of the CA (with signer_command): a certificate the signer "
        "returns that another key signed is refused. None: not checked here (sshd still checks it).")
    signer_timeout_s: float = Field(default=20.0, gt=0, description="Timeout of one signer_command run.")
    validity_minutes: float = Field(
        default=10.0, gt=0, le=24 * 60, description="How long a certificate is valid. Connections are re-opened "
        "with a fresh one before then, so this bounds how long a revoked CA or user keeps a session.")
    renew_before_s: float = Field(
        default=120.0, ge=0, description="A pooled connection is replaced (by one with a fresh certificate) "
        "this long before its certificate expires; commands under way finish on the old one.")
    clock_skew_s: int = Field(
        default=60, ge=0, le=600, description="Certificates are valid from this long before now, for a "
        "login node whose clock is behind.")
    source_address: list[str] | None = Field(
        default=None, description="CIDR blocks certificates are restricted to (their source-address "
        "option): the hpgc server's addresses as the login node sees them. None: no restriction.")
    principals: list[str] | None = Field(
        default=None, description="Unix users hpgc may sign certificates for. None: any user the identity "
        "mapping gives (it already refuses root and other forbidden names).")
    key_type: str = Field(default="ssh-ed25519", description="Type of the ephemeral keys (asyncssh name).")

    @model_validator(mode="after")
    def _one_signer(self) -> CertificateSettings:
        if (self.ca_key is None) == (self.signer_command is None):
            raise ValueError("certificates need exactly one of ca_key and signer_command")
        if self.signer_command is not None and not self.signer_command:
            raise ValueError("signer_command is empty")
        if self.renew_before_s >= self.validity_minutes * 60:
            raise ValueError("renew_before_s must be shorter than validity_minutes")
        return self

    @field_validator("source_address")
    @classmethod
    def _cidrs(cls, v: list[str] | None) -> list[str] | None:
        for block in v or []:
            try:
                ipaddress.ip_network(block, strict=False)
            except ValueError:
                raise ValueError(f"{block!r} is not an address or CIDR block") from None
        return v

    @field_validator("principals")
    @classmethod
    def _users(cls, v: list[str] | None) -> list[str] | None:
        for name in v or []:
            if (error := unix_user_error(name)) is not None:
                raise ValueError(f"{name!r} cannot be a Unix user name here: {error}")
        return v

    @property
    def validity_s(self) -> float:
        return self.validity_minutes * 60
