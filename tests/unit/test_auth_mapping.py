"""Claims → permissions and Unix identity; the settings' own safety checks."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from hpgc.auth.identity import map_unix_user, principal_from_claims
from hpgc.auth.principal import (
    ANONYMOUS,
    InsufficientScope,
    InvalidToken,
    Principal,
    UnmappedUser,
    require_admin,
    require_deploy,
)
from hpgc.auth.settings import AuthSettings, IdentitySettings, IssuerSettings, RegexRule

ISS = "https://id.example.org/realms/hpc"


def who(claims: dict[str, Any], **settings: Any) -> Principal:
    base = {"sub": "u-1", "preferred_username": "alice", **claims}
    return principal_from_claims(base, ISS, "", AuthSettings(**settings))


def test_scope_string_grants_permissions() -> None:
    p = who({"scope": "openid hpgc:execute"})
    assert (p.can_execute, p.can_deploy, p.is_admin) == (True, False, False)
    assert p.subject == "u-1" and p.unix_user == "alice" and p.issuer == ISS
    assert "hpgc:execute" in p.scopes
    p = who({"scope": "hpgc:execute hpgc:deploy"})
    assert (p.can_execute, p.can_deploy, p.is_admin) == (True, True, False)


def test_admin_implies_the_rest_and_scp_lists_count() -> None:
    p = who({"scp": ["hpgc:admin"]})
    assert (p.can_execute, p.can_deploy, p.is_admin) == (True, True, True)


def test_no_execute_permission_is_insufficient_scope() -> None:
    for claims in ({}, {"scope": "openid profile"}, {"scope": "hpgc:deploy"}, {"scope": "hpgc:executeX"},
                   {"scope": "HPGC:EXECUTE"}, {"realm_access": {"roles": ["hpgc:execute"]}}):
        with pytest.raises(InsufficientScope) as err:
            who(claims)
        assert err.value.permission == "execute" and err.value.status == 403


def test_keycloak_roles_and_groups_by_configured_claims() -> None:
    claims = {"realm_access": {"roles": ["offline_access", "hpc-user"]}, "groups": ["/staff", "/hpc-admins"]}
    settings = {"permission_claims": ["realm_access.roles", "groups"], "execute_scopes": ["hpc-user"],
                "admin_scopes": ["/hpc-admins"]}
    p = who(claims, **settings)
    assert p.can_execute and p.is_admin
    p = who({"realm_access": {"roles": ["hpc-user"]}}, **settings)
    assert p.can_execute and not p.is_admin and not p.can_deploy
    # the default claims do not look at roles: the same token grants nothing there
    with pytest.raises(InsufficientScope):
        who(claims)


def test_subject_prefix_and_display_name() -> None:
    p = principal_from_claims({"sub": "42", "scope": "hpgc:execute", "preferred_username": "bob", "name": "Bob B."},
                              ISS, "uni:", AuthSettings())
    assert p.subject == "uni:42" and p.name == "Bob B."
    with pytest.raises(InvalidToken, match="subject"):
        principal_from_claims({"scope": "hpgc:execute"}, ISS, "", AuthSettings())


@pytest.mark.parametrize("claims", [
    {"username": "u-1"},                    # RFC 7662's username is another namespace: never the owner
    {"preferred_username": "alice"},
    {"sub": ""}, {"sub": 42}, {"sub": ["u-1"]}, {"sub": None, "username": "u-1"},
])
def test_the_owner_comes_from_sub_only(claims: dict[str, Any]) -> None:
    base = {"scope": "hpgc:execute", "preferred_username": "alice"}
    with pytest.raises(InvalidToken) as err:
        principal_from_claims({**base, **claims}, ISS, "", AuthSettings())
    assert err.value.detail == "the token names no subject (sub): this server knows users by their sub claim only"
    assert err.value.status == 401


def test_owners_of_different_issuers_never_meet() -> None:
    a, b = "https://a.example", "https://b.example"
    settings = AuthSettings(issuers=[IssuerSettings(issuer=a), IssuerSettings(issuer=b, subject_prefix="b:")])
    claims = {"scope": "hpgc:execute", "preferred_username": "alice"}
    assert principal_from_claims({**claims, "sub": "x"}, b, "b:", settings).subject == "b:x"
    assert principal_from_claims({**claims, "sub": "x"}, a, "", settings).subject == "x"
    # issuer a's user "b:x" would be issuer b's user "x", and "dev:alice" the development issuer's alice
    for sub, prefix in (("b:x", "b:"), ("dev:alice", "dev:")):
        with pytest.raises(InvalidToken) as err:
            principal_from_claims({**claims, "sub": sub}, a, "", settings)
        assert err.value.detail == (f"the token's subject falls in the namespace of another issuer "
                                    f"(subject_prefix '{prefix}'), so it cannot name a user here")
    assert AuthSettings().dev_issuer.subject_prefix == "dev:"


@pytest.mark.parametrize("name, accepted", [
    ("alice", True), ("_svc", True), ("jane.doe", True), ("a-b_c9", True), ("a" * 32, True),
    ("Alice", False), ("ALICE", False), ("a" * 33, False), ("9lives", False), ("-oProxyCommand", False),
    (".hidden", False), ("alice$", False), ("alice\n", False), ("al ice", False), ("", False), ("é", False),
])
def test_one_unix_name_rule_for_auth_and_the_slurm_script(name: str, accepted: bool) -> None:
    from hpgc.backends.base import BackendError
    from hpgc.backends.slurm.config import ClusterSettings
    from hpgc.backends.slurm.jobdir import job_dir

    ident = IdentitySettings(template="{preferred_username}")
    cluster = ClusterSettings(host="login", known_hosts="/k", user="svc", work_root="/w")
    if accepted:
        assert map_unix_user({"preferred_username": name}, ident) == name
        assert job_dir(cluster, "j1", name) == f"/w/{name}/j1"
        return
    with pytest.raises(UnmappedUser) as err:
        map_unix_user({"preferred_username": name}, ident)
    assert err.value.status == 403
    assert ("cannot be a Unix account here" if name else "has no 'preferred_username' claim") in err.value.detail
    if name:  # no name at all means the cluster's own account
        with pytest.raises(BackendError):
            job_dir(cluster, "j1", name)
    with pytest.raises(ValidationError):
        ClusterSettings(host="login", known_hosts="/k", user=name, work_root="/w")


def test_a_capitalised_name_is_refused_saying_why() -> None:
    with pytest.raises(UnmappedUser) as err:
        map_unix_user({"preferred_username": "Alice"}, IdentitySettings())
    assert err.value.detail == (
        "the template {preferred_username} gives 'Alice', which cannot be a Unix account here: a Unix user "
        "name here has only lowercase letters, digits, '_', '.' and '-', starting with a letter or '_', at "
        "most 32 characters")


def test_template_mapping_and_unsafe_names() -> None:
    ident = IdentitySettings(template="{preferred_username}")
    assert map_unix_user({"preferred_username": "alice"}, ident) == "alice"
    assert map_unix_user({"a": {"b": "x"}, "c": "y"}, IdentitySettings(template="{a.b}_{c}")) == "x_y"
    for bad in ("alice; rm -rf /", "../etc", "-oProxyCommand=x", "a b", "al$ice", "é", "x" * 40, ""):
        with pytest.raises(UnmappedUser):
            map_unix_user({"preferred_username": bad}, ident)
    with pytest.raises(UnmappedUser, match=r"no Unix account|no 'preferred_username'"):
        map_unix_user({"sub": "x"}, ident)
    with pytest.raises(UnmappedUser, match="no token may act as"):
        map_unix_user({"preferred_username": "root"}, ident)


def test_regex_mapping() -> None:
    ident = IdentitySettings(mode="regex", claim="email", rules=[
        RegexRule(pattern=r"(?P<u>[a-z0-9]+)@uni\.example", replacement=r"\g<u>"),
        RegexRule(pattern=r"([a-z]+)\.([a-z]+)@partner\.example", replacement=r"p_\1\2"),
    ])
    assert map_unix_user({"email": "jdoe@uni.example"}, ident) == "jdoe"
    assert map_unix_user({"email": "jane.doe@partner.example"}, ident) == "p_janedoe"
    with pytest.raises(UnmappedUser, match="matches no identity rule"):
        map_unix_user({"email": "jdoe@uni.example.evil.org"}, ident)  # the whole value must match


def test_table_mapping_and_none() -> None:
    ident = IdentitySettings(mode="table", table={"u-1": "alice", "u-2": "root"})
    assert map_unix_user({"sub": "u-1"}, ident) == "alice"
    with pytest.raises(UnmappedUser, match="has no Unix account"):
        map_unix_user({"sub": "u-3"}, ident)
    with pytest.raises(UnmappedUser):
        map_unix_user({"sub": "u-2"}, ident)
    assert map_unix_user({"sub": "u-3"}, IdentitySettings(mode="none")) is None


def test_unmapped_user_is_refused_when_building_the_principal() -> None:
    with pytest.raises(UnmappedUser):
        who({"scope": "hpgc:execute", "preferred_username": None})


def test_require_deploy_and_admin() -> None:
    require_deploy(ANONYMOUS)
    require_admin(ANONYMOUS)
    user = Principal(subject="a", can_deploy=False)
    with pytest.raises(InsufficientScope) as err:
        require_deploy(user)
    assert err.value.status == 403 and err.value.permission == "deploy"
    with pytest.raises(InsufficientScope):
        require_admin(user)


def test_settings_defaults_and_dev_issuer_switch() -> None:
    s = AuthSettings()
    assert s.enabled and s.dev_issuer_active
    s = AuthSettings(issuers=[IssuerSettings(issuer=ISS)])
    assert not s.dev_issuer_active
    assert AuthSettings(issuers=[IssuerSettings(issuer=ISS)], dev_issuer={"enabled": True,
                                                                          "subject_prefix": "dev:"}).dev_issuer_active
    assert not AuthSettings(enabled=False).dev_issuer_active


@pytest.mark.parametrize("kwargs, message", [
    ({"issuer": ISS, "algorithms": ["none"]}, "not accepted"),
    ({"issuer": ISS, "algorithms": ["HS256"]}, "not accepted"),
    ({"issuer": ISS, "algorithms": []}, "at least one"),
    ({"issuer": "http://id.example.org/realms/hpc"}, "https"),
    ({"issuer": ISS, "jwks_uri": "http://id.example.org/certs"}, "https"),
    ({"issuer": ISS, "client_id": "hpgc"}, "client_secret"),
    ({"issuer": "ftp://127.0.0.1/x"}, "https"),
])
def test_issuer_settings_refuse_unsafe_configurations(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        IssuerSettings(**kwargs)


def test_issuer_settings_allow_loopback_http_and_explicit_http() -> None:
    IssuerSettings(issuer="http://127.0.0.1:8080/realms/x")
    IssuerSettings(issuer="http://localhost:8080/realms/x")
    IssuerSettings(issuer="http://keycloak:8080/realms/x", allow_http=True)


def test_several_issuers_need_distinct_subject_prefixes_and_one_introspection() -> None:
    a, b = "https://a.example", "https://b.example"
    with pytest.raises(ValidationError, match="subject_prefix"):
        AuthSettings(issuers=[IssuerSettings(issuer=a), IssuerSettings(issuer=b)])
    # the development issuer has its own prefix ('dev:') by default, so it may run beside a configured one...
    AuthSettings(issuers=[IssuerSettings(issuer=a)], dev_issuer={"enabled": True})
    # ...but not with the same prefix, on or off: the jobs its tokens created are still in the store
    for enabled in (True, False):
        with pytest.raises(ValidationError, match="subject_prefix"):
            AuthSettings(issuers=[IssuerSettings(issuer=a, subject_prefix="dev:")], dev_issuer={"enabled": enabled})
    with pytest.raises(ValidationError, match="twice"):
        AuthSettings(issuers=[IssuerSettings(issuer=a), IssuerSettings(issuer=a, subject_prefix="x")])
    with pytest.raises(ValidationError, match="introspect"):
        AuthSettings(issuers=[IssuerSettings(issuer=a, client_id="c", client_secret="s"),
                              IssuerSettings(issuer=b, subject_prefix="b:", client_id="c", client_secret="s")])
    AuthSettings(issuers=[IssuerSettings(issuer=a), IssuerSettings(issuer=b, subject_prefix="b:")])


def test_auth_settings_from_toml(tmp_path: Any) -> None:
    from hpgc.config import load_settings

    cfg = tmp_path / "hpgc.toml"
    cfg.write_text(f"""
[auth]
permission_claims = ["scope", "realm_access.roles"]

[[auth.issuers]]
issuer = "{ISS}"
audience = ["hpgc", "account"]
client_id = "hpgc"
client_secret = "s3cret"

[auth.identity]
mode = "regex"
claim = "email"
rules = [{{ pattern = '(?P<u>[a-z]+)@uni\\.example', replacement = '\\g<u>' }}]
""")
    settings = load_settings(cfg)
    assert settings.auth.issuers[0].audience == ["hpgc", "account"]
    assert settings.auth.issuers[0].client_secret.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)
    assert settings.auth.identity.rules[0].replacement == r"\g<u>"
    assert not settings.auth.dev_issuer_active
