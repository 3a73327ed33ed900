"""Which Slurm accounts, partitions and QOS a token may use, from its claims (e.g. a group claim looked up in a
table, or an account template), and the check of a job's `hpgc:resources` against them: a 403 naming what
the user may not use. Slurm still has the last word (its associations); this refuses early and clearly."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field, field_validator

from hpgc.auth.principal import Principal, SlurmGrant, UnmappedUser
from hpgc.errors import NotAllowed
from hpgc.models.resources import PARTITION, ResourceRequest

_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.:-]*)\}")


def _names(v: list[str] | None) -> list[str] | None:
    for name in v or []:
        if not PARTITION.match(name):
            raise ValueError(f"{name!r} is not a Slurm name (1 to 64 letters, digits and _.-)")
    return v


class GroupGrant(BaseModel):
    account: str | None = Field(default=None, description="Slurm account members of this group charge.")
    partitions: list[str] | None = Field(default=None, description="Partitions they may ask for; None: any.")
    qos: list[str] | None = Field(default=None, description="QOS they may ask for; None: any.")

    @field_validator("partitions", "qos")
    @classmethod
    def _lists(cls, v: list[str] | None) -> list[str] | None:
        return _names(v)

    @field_validator("account")
    @classmethod
    def _account(cls, v: str | None) -> str | None:
        _names([v] if v is not None else None)
        return v


class SlurmGrantSettings(BaseModel):
    claim: str | None = Field(
        default=None, description="Claim (dotted path; a list or a space-separated string) whose values are "
        "looked up in `groups`, e.g. 'groups'. None: no group grants.")
    groups: dict[str, GroupGrant] = Field(
        default_factory=dict, description="Claim value → its account, partitions and QOS. A user gets the "
        "union of their groups' grants; the first group (in the claim's order) with an account is the default.")
    account_template: str | None = Field(
        default=None, description="The account from claims, e.g. '{project}' (when no group names one).")
    required: bool = Field(
        default=False, description="Refuse (403) a token whose claims give no account at all.")

    @property
    def active(self) -> bool:
        return self.claim is not None or self.account_template is not None


def claim(claims: dict[str, Any], path: str) -> Any:
    """The value at a dotted `path` of the token's claims; None where the path leads nowhere."""
    node: Any = claims
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _union(lists: list[list[str] | None]) -> list[str] | None:
    if any(v is None for v in lists):
        return None
    return list(dict.fromkeys(x for v in lists for x in v or []))


def slurm_grant(claims: dict[str, Any], s: SlurmGrantSettings) -> SlurmGrant | None:
    """The grant of these claims; None when the site grants nothing by identity (no restriction here)."""
    if not s.active:
        return None
    values = claim(claims, s.claim) if s.claim else None
    values = values.split() if isinstance(values, str) else values if isinstance(values, list) else []
    matched = [s.groups[v] for v in values if isinstance(v, str) and v in s.groups]
    accounts = [g.account for g in matched if g.account]
    if s.account_template:
        filled = _FIELD.sub(lambda m: v if isinstance(v := claim(claims, m.group(1)), str) else "", s.account_template)
        if filled and PARTITION.match(filled):
            accounts.append(filled)
    accounts = list(dict.fromkeys(accounts))
    if s.required and not accounts:
        raise UnmappedUser("your token gives no Slurm account on this server (no group or claim maps to one); "
                           "ask an administrator")
    return SlurmGrant(account=accounts[0] if accounts else None, accounts=accounts,
                      partitions=_union([g.partitions for g in matched]) if matched else [],
                      qos=_union([g.qos for g in matched]) if matched else [])


def authorize_resources(principal: Principal, request: ResourceRequest | None) -> ResourceRequest | None:
    """The request with the identity's own account filled in; NotAllowed (403) naming an account, partition
    or QOS the user may not use."""
    grant = principal.slurm
    if grant is None:
        return request
    asked = request or ResourceRequest()
    for what, value, allowed in (("account", asked.account, grant.accounts),
                                 ("partition", asked.partition, grant.partitions),
                                 ("QOS", asked.qos, grant.qos)):
        if value is not None and allowed is not None and value not in allowed:
            raise NotAllowed(f"hpgc:resources: {what} '{value}' is not one you may use here; yours: "
                             f"{', '.join(allowed) or 'none'}")
    if asked.account is None and grant.account is not None:
        return asked.model_copy(update={"account": grant.account})
    return request
