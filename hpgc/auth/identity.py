"""Verified token claims → Principal: the job owner from `sub`, permissions from scopes, the Unix account."""

from __future__ import annotations

import re
from typing import Any

from hpgc.auth.grants import claim, slurm_grant
from hpgc.auth.principal import InsufficientScope, InvalidToken, Principal, UnmappedUser
from hpgc.auth.settings import AuthSettings, IdentitySettings
from hpgc.models.names import unix_user_error


def claim_values(claims: dict[str, Any], path: str) -> list[str]:
    value = claim(claims, path)
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


TEMPLATE_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.:-]*)\}")


def _safe_unix(name: str, identity: IdentitySettings, why: str) -> str:
    # the name reaches SSH logins, sbatch lines and directory names: it passes only the rule the Slurm
    # backend checks too, so that a job accepted now can always be submitted later
    error = unix_user_error(name)
    if error is not None:
        shown = "".join(c if c.isprintable() else "?" for c in name[:40])
        raise UnmappedUser(f"{why} gives '{shown}', which cannot be a Unix account here: {error}")
    if name in identity.forbidden:
        raise UnmappedUser(f"{why} gives '{name}', which no token may act as")
    return name


def map_unix_user(claims: dict[str, Any], identity: IdentitySettings) -> str | None:
    """The Unix/Slurm account this token acts as; UnmappedUser (403) when there is none."""
    if identity.mode == "none":
        return None
    if identity.mode == "template":
        missing: list[str] = []

        def fill(match: re.Match[str]) -> str:
            value = claim(claims, match.group(1))
            if not isinstance(value, str) or not value:
                missing.append(match.group(1))
                return ""
            return value

        name = TEMPLATE_FIELD.sub(fill, identity.template)
        if missing:
            raise UnmappedUser(f"your token has no '{missing[0]}' claim, which names your Unix account here")
        return _safe_unix(name, identity, f"the template {identity.template}")
    value = claim(claims, identity.claim)
    if not isinstance(value, str):
        raise UnmappedUser(f"your token has no '{identity.claim}' claim, which names your Unix account here")
    if identity.mode == "table":
        if value not in identity.table:
            raise UnmappedUser(f"'{value}' has no Unix account on this server; ask an administrator to map it")
        return _safe_unix(identity.table[value], identity, f"the table entry of '{value}'")
    for rule in identity.rules:
        match = re.fullmatch(rule.pattern, value)
        if match:
            return _safe_unix(match.expand(rule.replacement), identity, f"the rule {rule.pattern}")
    raise UnmappedUser(f"'{value}' matches no identity rule of this server; ask an administrator to map it")


def owner_of(sub: str, subject_prefix: str, settings: AuthSettings) -> str:
    """The job owner `subject_prefix + sub`, refused when it lies in another issuer's namespace.

    Distinct prefixes alone do not keep owners apart: with prefixes "" and "dev:", the sub "dev:alice" of the
    first issuer would be the owner "dev:alice" of the second. An owner therefore belongs to the issuer with
    the longest prefix it starts with, and a token of any other issuer cannot produce it.
    """
    owner = subject_prefix + sub
    longer = [p for p in settings.subject_prefixes if len(p) > len(subject_prefix) and owner.startswith(p)]
    if longer:
        raise InvalidToken(f"the token's subject falls in the namespace of another issuer (subject_prefix "
                           f"'{longer[0]}'), so it cannot name a user here")
    return owner


def principal_from_claims(claims: dict[str, Any], issuer: str, subject_prefix: str,
                          settings: AuthSettings) -> Principal:
    # the owner comes from `sub` alone: another claim (username, email...) is a second namespace in which one
    # user's name can be another user's sub
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise InvalidToken("the token names no subject (sub): this server knows users by their sub claim only")
    owner = owner_of(sub, subject_prefix, settings)
    granted = {v for path in settings.permission_claims for v in claim_values(claims, path)}
    admin = bool(granted & set(settings.admin_scopes))
    can_execute = admin or bool(granted & set(settings.execute_scopes))
    if not can_execute:
        # every protected route reads or runs something: without this permission the token is no use here
        raise InsufficientScope(f"your token does not grant {' or '.join(settings.execute_scopes)}", "execute")
    name = next((v for c in settings.name_claims if isinstance(v := claim(claims, c), str) and v), sub)
    return Principal(
        subject=owner, name=name, issuer=issuer, scopes=frozenset(granted),
        unix_user=map_unix_user(claims, settings.identity), is_admin=admin,
        slurm=slurm_grant(claims, settings.identity.slurm),
        can_execute=can_execute,
        can_deploy=admin or bool(granted & set(settings.deploy_scopes)),
    )
