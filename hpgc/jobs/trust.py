"""Who may deploy where: on a backend whose jobs run as the server's own account, deploying is an admin's
decision unless the administrator opted in (docs/security.md)."""

from __future__ import annotations

from hpgc.auth.principal import InsufficientScope, Principal
from hpgc.backends.base import Backend


def check_deploy_target(principal: Principal, backend_name: str, backend: Backend | None) -> None:
    """Refuse (403) a non-admin deploy or replace of a package that would run on `backend` when its jobs
    run as the server's account (the local backend) and the administrator has not opted in."""
    if principal.is_admin or backend is None or not backend.deploy_needs_admin:
        return
    raise InsufficientScope(
        f"deployed processes run on the '{backend_name}' backend here, as the server's own account (they could "
        "read its database and keys), so deploying or replacing them needs an administrator's token; an "
        "administrator may let every deployer do it with the setting local.allow_user_deploy = true "
        "(HPGC_LOCAL__ALLOW_USER_DEPLOY=true)", "admin")
