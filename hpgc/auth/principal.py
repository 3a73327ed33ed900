"""Who is calling (Principal), the refusals of authentication, and the permission checks handlers make."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from hpgc.errors import HpgcError, NotAllowed


class SlurmGrant(BaseModel):
    """What the token's claims allow on Slurm (hpgc/auth/grants.py); a list None: no restriction."""

    account: str | None = None  # charged when the request names none
    accounts: list[str] = []
    partitions: list[str] | None = None
    qos: list[str] | None = None


class Principal(BaseModel):
    model_config = ConfigDict(frozen=True)  # one object serves every request of a token (TokenVerifier.principal)

    subject: str
    name: str | None = None
    unix_user: str | None = None
    can_execute: bool = True
    can_deploy: bool = True
    is_admin: bool = False
    issuer: str | None = None
    scopes: frozenset[str] = frozenset()
    slurm: SlurmGrant | None = None  # None: the site grants nothing by identity (no restriction by hpgc)


ANONYMOUS = Principal(subject="anonymous", is_admin=True)


# errors -------------------------------------------------------------------------------------------------
class InvalidToken(HpgcError):
    """401: no usable token. The description goes to the client: it says why, never echoes the token."""

    status, type, title = 401, "about:blank", "Unauthorized"


class InsufficientScope(NotAllowed):
    """403: the token is good but does not grant this."""

    title = "Insufficient scope"

    def __init__(self, detail: str, permission: Literal["execute", "deploy", "admin"]) -> None:
        super().__init__(detail)
        self.permission = permission


class UnmappedUser(NotAllowed):
    title = "No Unix account for this user"


class AuthUnavailable(HpgcError):
    """503: the issuer cannot be reached, so no token of it can be checked (not the client's fault)."""

    status, type, title = 503, "about:blank", "Authentication unavailable"


def require_deploy(principal: Principal) -> None:
    """For deploy/replace/undeploy handlers."""
    if not principal.can_deploy:
        raise InsufficientScope("your token does not allow deploying, replacing or undeploying processes",
                                "deploy")


def require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise InsufficientScope("this needs an administrator's token", "admin")
