"""hpgc/auth/ (settings, identity) rule by rule, with every expected value written out: URL checks for issuers, the
settings' defaults and limits, claims lookup, scope matching, identity mapping messages, owners across issuers."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from hpgc.auth.identity import claim, claim_values, map_unix_user, owner_of, principal_from_claims
from hpgc.auth.principal import ANONYMOUS, AuthUnavailable, InsufficientScope, InvalidToken, UnmappedUser
from hpgc.auth.settings import AuthSettings, DevIssuerSettings, IdentitySettings, IssuerSettings, RegexRule, check_url

ISS = "https://id.example.org/realms/hpc"


@pytest.mark.parametrize("url, allow_http, ok", [
    ("https://id.example.org/x", False, True),
    ("https://10.0.0.1/x", False, True),
    ("http://127.0.0.1:8080/x", False, True),
    ("http://127.1.2.3/x", False, True),
    ("http://[::1]:8080/x", False, True),
    ("http://localhost/x", False, True),
    ("http://localhost.example.org/x", False, False),
    ("http://10.0.0.1/x", False, False),
    ("http://id.example.org/x", False, False),
    ("http://id.example.org/x", True, True),
    ("https:///x", False, False),
    ("http:///x", True, False),
    ("ftp://127.0.0.1/x", True, False),
    ("id.example.org", True, False),
])
def test_issuer_urls_need_tls_unless_loopback_or_allowed(url: str, allow_http: bool, ok: bool) -> None:
    if ok:
        assert check_url(url, allow_http) == url
        return
    with pytest.raises(ValueError) as err:
        check_url(url, allow_http)
    assert str(err.value) == (f"'{url}' must be an https:// URL (http:// only for loopback addresses or with "
                              "allow_http)")


def test_check_url_refuses_plain_http_by_default() -> None:
    with pytest.raises(ValueError):
        check_url("http://id.example.org/x")


def test_issuer_settings_defaults() -> None:
    s = IssuerSettings(issuer=ISS)
    assert s.audience == ["hpgc"]
    assert s.algorithms == ["RS256", "ES256", "PS256", "EdDSA"]
    assert (s.discovery_url, s.jwks_uri, s.introspection_endpoint, s.client_id, s.client_secret) == (None,) * 5
    assert (s.introspection_cache_s, s.jwks_refresh_min_s, s.jwks_max_age_s, s.timeout_s) == (60.0, 60.0, 3600.0,
                                                                                               10.0)
    assert s.subject_prefix == "" and s.allow_http is False and s.introspects is False
    assert IssuerSettings(issuer=ISS, client_id="c", client_secret="s").introspects is True


@pytest.mark.parametrize("field, good, bad", [
    ("introspection_cache_s", [0, 600], [-0.1, 600.1]),
    ("jwks_refresh_min_s", [0], [-1]),
    ("jwks_max_age_s", [0.1], [0]),
    ("timeout_s", [0.1], [0]),
])
def test_issuer_settings_limits(field: str, good: list[float], bad: list[float]) -> None:
    for value in good:
        assert getattr(IssuerSettings(issuer=ISS, **{field: value}), field) == value
    for value in bad:
        with pytest.raises(ValidationError):
            IssuerSettings(issuer=ISS, **{field: value})


def test_every_asymmetric_algorithm_and_only_those() -> None:
    algs = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
    assert IssuerSettings(issuer=ISS, algorithms=algs).algorithms == algs
    with pytest.raises(ValidationError) as err:
        IssuerSettings(issuer=ISS, algorithms=["RS256", "HS512", "none"])
    assert ("algorithm 'HS512' is not accepted; choose from RS256, RS384, RS512, PS256, PS384, PS512, ES256, "
            "ES384, ES512, EdDSA") in str(err.value)
    with pytest.raises(ValidationError, match="at least one algorithm is needed"):
        IssuerSettings(issuer=ISS, algorithms=[])


def test_every_issuer_url_is_checked() -> None:
    for field in ("discovery_url", "jwks_uri", "introspection_endpoint"):
        with pytest.raises(ValidationError, match="must be an https:// URL"):
            IssuerSettings(issuer=ISS, **{field: "http://id.example.org/x"})
        assert getattr(IssuerSettings(issuer=ISS, allow_http=True, **{field: "http://id.example.org/x"}),
                       field) == "http://id.example.org/x"
    with pytest.raises(ValidationError, match=f"issuer {ISS}: client_id needs client_secret"):
        IssuerSettings(issuer=ISS, client_id="c")


def test_auth_and_identity_defaults() -> None:
    a = AuthSettings()
    assert a.enabled is True and a.issuers == [] and a.realm == "hpgc" and a.swagger_client_id is None
    assert a.deployed_process_visibility == "everyone" and a.leeway_s == 30
    assert a.permission_claims == ["scope", "scp"]
    assert (a.execute_scopes, a.deploy_scopes, a.admin_scopes) == (["hpgc:execute"], ["hpgc:deploy"], ["hpgc:admin"])
    assert a.name_claims == ["name", "preferred_username", "email"]
    i = a.identity
    assert (i.mode, i.template, i.claim, i.rules, i.table, i.forbidden) == (
        "template", "{preferred_username}", "sub", [], {}, ["root"])
    d = DevIssuerSettings()
    assert (d.enabled, d.algorithm, d.subject_prefix) == (None, "ES256", "dev:")
    assert AuthSettings(leeway_s=0).leeway_s == 0 and AuthSettings(leeway_s=300).leeway_s == 300
    for bad in (-1, 301):
        with pytest.raises(ValidationError):
            AuthSettings(leeway_s=bad)


@pytest.mark.parametrize("enabled, issuers, dev, active", [
    (True, 0, None, True), (True, 1, None, False), (True, 1, True, True), (True, 0, False, False),
    (True, 1, False, False), (False, 0, None, False), (False, 0, True, False), (False, 1, True, False),
])
def test_when_the_development_issuer_runs(enabled: bool, issuers: int, dev: bool | None, active: bool) -> None:
    s = AuthSettings(enabled=enabled, issuers=[IssuerSettings(issuer=ISS)] * issuers, dev_issuer={"enabled": dev})
    assert s.dev_issuer_active is active


def test_subject_prefixes_list_the_issuers_then_the_development_one() -> None:
    s = AuthSettings(issuers=[IssuerSettings(issuer=ISS, subject_prefix="a:"),
                              IssuerSettings(issuer="https://b.example", subject_prefix="b:")],
                     dev_issuer={"subject_prefix": "d:"})
    assert s.subject_prefixes == ["a:", "b:", "d:"]
    with pytest.raises(ValidationError, match="an issuer is configured twice"):
        AuthSettings(issuers=[IssuerSettings(issuer=ISS, subject_prefix="a:"),
                              IssuerSettings(issuer=ISS, subject_prefix="b:")])
    with pytest.raises(ValidationError, match="only one issuer may introspect opaque tokens"):
        AuthSettings(issuers=[IssuerSettings(issuer=ISS, client_id="c", client_secret="s"),
                              IssuerSettings(issuer="https://b.example", subject_prefix="b:", client_id="c",
                                             client_secret="s")])


def test_a_regex_rule_that_does_not_compile_is_a_settings_error() -> None:
    # a settings error names the field (it was a bare re.error out of the settings loader)
    with pytest.raises(ValidationError, match="pattern does not compile: missing \\), unterminated subpattern"):
        RegexRule(pattern="(unclosed", replacement="x")


def test_error_statuses() -> None:
    assert (InvalidToken("x").status, InvalidToken("x").title) == (401, "Unauthorized")
    assert (AuthUnavailable("x").status, AuthUnavailable("x").title) == (503, "Authentication unavailable")
    assert UnmappedUser("x").status == 403 and UnmappedUser("x").title == "No Unix account for this user"
    assert InsufficientScope("x", "deploy").title == "Insufficient scope"
    assert ANONYMOUS.subject == "anonymous" and ANONYMOUS.is_admin and ANONYMOUS.can_deploy


# claims -------------------------------------------------------------------------------------------------
CLAIMS = {"sub": "s", "scope": "a  b\tc", "scp": ["x", 7, "y", None], "realm_access": {"roles": ["r1", "r2"]},
          "n": 5, "deep": {"a": {"b": "c"}}, "flat.dotted": "v"}


@pytest.mark.parametrize("path, expected", [
    ("sub", "s"), ("deep.a.b", "c"), ("deep.a", {"b": "c"}), ("realm_access.roles", ["r1", "r2"]),
    ("missing", None), ("deep.x", None), ("deep.a.b.c", None), ("sub.x", None), ("flat.dotted", None),
])
def test_claim_paths(path: str, expected: Any) -> None:
    assert claim(CLAIMS, path) == expected


@pytest.mark.parametrize("path, expected", [
    ("scope", ["a", "b", "c"]), ("scp", ["x", "y"]), ("realm_access.roles", ["r1", "r2"]), ("n", []),
    ("deep", []), ("missing", []),
])
def test_claim_values(path: str, expected: list[str]) -> None:
    assert claim_values(CLAIMS, path) == expected


# scopes -------------------------------------------------------------------------------------------------
def principal(claims: dict[str, Any], prefix: str = "", **settings: Any) -> Any:
    return principal_from_claims({"sub": "u-1", "preferred_username": "alice", **claims}, ISS, prefix,
                                 AuthSettings(**settings))


@pytest.mark.parametrize("claims, execute, deploy, admin", [
    ({"scope": "hpgc:execute"}, True, False, False),
    ({"scope": "hpgc:deploy hpgc:execute"}, True, True, False),
    ({"scope": "hpgc:admin"}, True, True, True),
    ({"scp": ["hpgc:execute", "hpgc:deploy"]}, True, True, False),
    ({"scope": "openid", "scp": "hpgc:execute"}, True, False, False),   # each configured claim counts
    ({"scope": "hpgc:execute", "scp": ["hpgc:admin"]}, True, True, True),
])
def test_scope_table(claims: dict[str, Any], execute: bool, deploy: bool, admin: bool) -> None:
    p = principal(claims)
    assert (p.can_execute, p.can_deploy, p.is_admin) == (execute, deploy, admin)


@pytest.mark.parametrize("claims", [
    {}, {"scope": "hpgc:deploy"}, {"scope": "hpgc:execute2"}, {"scope": "xhpgc:execute"}, {"scope": "hpgc"},
    {"scope": 5, "scp": {"hpgc:admin": 1}}, {"roles": ["hpgc:execute"]},
])
def test_no_execute_no_entry(claims: dict[str, Any]) -> None:
    with pytest.raises(InsufficientScope) as err:
        principal(claims)
    assert err.value.detail == "your token does not grant hpgc:execute" and err.value.permission == "execute"


def test_several_execute_values_are_named_in_the_refusal() -> None:
    with pytest.raises(InsufficientScope) as err:
        principal({}, execute_scopes=["run", "use"])
    assert err.value.detail == "your token does not grant run or use"
    p = principal({"scope": "use"}, execute_scopes=["run", "use"], deploy_scopes=["put"], admin_scopes=["boss"])
    assert (p.can_execute, p.can_deploy, p.is_admin) == (True, False, False)
    p = principal({"scope": "boss"}, execute_scopes=["run", "use"], deploy_scopes=["put"], admin_scopes=["boss"])
    assert (p.can_execute, p.can_deploy, p.is_admin) == (True, True, True)
    p = principal({"scope": "run put"}, execute_scopes=["run", "use"], deploy_scopes=["put"], admin_scopes=["boss"])
    assert (p.can_execute, p.can_deploy, p.is_admin) == (True, True, False)


def test_the_principal_carries_owner_name_issuer_scopes_and_account() -> None:
    p = principal({"scope": "openid hpgc:execute", "scp": ["x"], "name": "Alice A."}, prefix="kc:")
    assert p.subject == "kc:u-1" and p.issuer == ISS and p.unix_user == "alice"
    assert p.name == "Alice A." and p.scopes == frozenset({"openid", "hpgc:execute", "x"})


@pytest.mark.parametrize("claims, name", [
    ({"name": "N", "email": "e@x"}, "N"),
    ({"name": "", "email": "e@x"}, "alice"),         # empty: the next claim (preferred_username here)
    ({"name": 7, "email": "e@x"}, "alice"),
    ({"preferred_username": None, "email": "e@x"}, "e@x"),
    ({"preferred_username": None}, "u-1"),          # nothing: the sub
])
def test_display_name(claims: dict[str, Any], name: str) -> None:
    p = principal_from_claims({"sub": "u-1", "scope": "hpgc:execute", "preferred_username": "alice", **claims},
                              ISS, "", AuthSettings(identity=IdentitySettings(mode="none")))
    assert p.name == name


@pytest.mark.parametrize("sub", [None, "", 5, ["a"]])
def test_a_token_without_a_usable_sub_is_invalid(sub: Any) -> None:
    claims = {"scope": "hpgc:execute", "preferred_username": "alice"}
    if sub is not None:
        claims["sub"] = sub
    with pytest.raises(InvalidToken) as err:
        principal_from_claims(claims, ISS, "", AuthSettings())
    assert err.value.detail == "the token names no subject (sub): this server knows users by their sub claim only"


def test_owner_of_refuses_only_a_longer_prefix_it_starts_with() -> None:
    s = AuthSettings(issuers=[IssuerSettings(issuer=ISS), IssuerSettings(issuer="https://b.example",
                                                                         subject_prefix="b:")])
    assert owner_of("alice", "", s) == "alice"
    assert owner_of("alice", "b:", s) == "b:alice"
    assert owner_of("b:alice", "b:", s) == "b:b:alice", "the same prefix again is its own issuer's"
    assert owner_of("dev", "", s) == "dev", "'dev' does not start with 'dev:'"
    assert owner_of("", "", s) == ""
    with pytest.raises(InvalidToken) as err:
        owner_of("b:alice", "", s)
    assert err.value.detail == ("the token's subject falls in the namespace of another issuer (subject_prefix "
                                "'b:'), so it cannot name a user here")
    with pytest.raises(InvalidToken, match="'dev:'"):
        owner_of("dev:x", "", s)


# identity -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("identity, claims, expected", [
    (IdentitySettings(), {"preferred_username": "alice"}, "alice"),
    (IdentitySettings(template="hpc_{a.b}"), {"a": {"b": "x"}}, "hpc_x"),
    (IdentitySettings(template="{c:d}-{e-f}"), {"c:d": "p", "e-f": "q"}, "p-q"),
    (IdentitySettings(template="fixed"), {}, "fixed"),
    (IdentitySettings(mode="table", claim="email", table={"a@x": "alice"}), {"email": "a@x"}, "alice"),
    (IdentitySettings(mode="regex", rules=[RegexRule(pattern="([a-z]+)-1", replacement=r"\1"),
                                           RegexRule(pattern="(.*)", replacement="never")]), {"sub": "bob-1"}, "bob"),
    (IdentitySettings(mode="regex", rules=[RegexRule(pattern="x", replacement="first"),
                                           RegexRule(pattern="(.*)", replacement=r"u_\1")]), {"sub": "y"}, "u_y"),
    (IdentitySettings(mode="none"), {}, None),
])
def test_identity_modes(identity: IdentitySettings, claims: dict[str, Any], expected: str | None) -> None:
    assert map_unix_user(claims, identity) == expected


@pytest.mark.parametrize("identity, claims, message", [
    (IdentitySettings(), {}, "your token has no 'preferred_username' claim, which names your Unix account here"),
    (IdentitySettings(), {"preferred_username": ""},
     "your token has no 'preferred_username' claim, which names your Unix account here"),
    (IdentitySettings(), {"preferred_username": 5},
     "your token has no 'preferred_username' claim, which names your Unix account here"),
    (IdentitySettings(template="{a}{b}"), {"b": "x"}, "your token has no 'a' claim, which names your Unix account "
                                                      "here"),
    (IdentitySettings(template="{a}{b}"), {}, "your token has no 'a' claim, which names your Unix account here"),
    (IdentitySettings(), {"preferred_username": "root"}, "the template {preferred_username} gives 'root', which "
                                                         "no token may act as"),
    (IdentitySettings(forbidden=["admin"]), {"preferred_username": "admin"},
     "the template {preferred_username} gives 'admin', which no token may act as"),
    (IdentitySettings(), {"preferred_username": "a\nb"},
     "the template {preferred_username} gives 'a?b', which cannot be a Unix account here: a Unix user name here "
     "has only lowercase letters, digits, '_', '.' and '-', starting with a letter or '_', at most 32 characters"),
    (IdentitySettings(), {"preferred_username": "a" * 50},
     f"the template {{preferred_username}} gives '{'a' * 40}', which cannot be a Unix account here: it is longer "
     "than 32 characters"),
    (IdentitySettings(template="x{a}"), {"a": "\x00"}, "the template x{a} gives 'x?', which cannot be a Unix account "
     "here: a Unix user name here has only lowercase letters, digits, '_', '.' and '-', starting with a letter or "
     "'_', at most 32 characters"),
    (IdentitySettings(mode="table", table={"u": "root"}), {"sub": "u"},
     "the table entry of 'u' gives 'root', which no token may act as"),
    (IdentitySettings(mode="table", table={"u": "x"}), {"sub": "v"},
     "'v' has no Unix account on this server; ask an administrator to map it"),
    (IdentitySettings(mode="table", claim="email"), {"sub": "v"},
     "your token has no 'email' claim, which names your Unix account here"),
    (IdentitySettings(mode="regex", claim="email"), {"email": ["a"]},
     "your token has no 'email' claim, which names your Unix account here"),
    (IdentitySettings(mode="regex", rules=[RegexRule(pattern="a", replacement="b")]), {"sub": "ab"},
     "'ab' matches no identity rule of this server; ask an administrator to map it"),
    (IdentitySettings(mode="regex", rules=[RegexRule(pattern="(.*)", replacement=r"\1")]), {"sub": "Bob"},
     "the rule (.*) gives 'Bob', which cannot be a Unix account here: a Unix user name here has only lowercase "
     "letters, digits, '_', '.' and '-', starting with a letter or '_', at most 32 characters"),
])
def test_identity_refusals(identity: IdentitySettings, claims: dict[str, Any], message: str) -> None:
    with pytest.raises(UnmappedUser) as err:
        map_unix_user(claims, identity)
    assert err.value.detail == message


def test_require_deploy_and_admin_say_what_is_missing() -> None:
    from hpgc.auth.principal import Principal, require_admin, require_deploy

    user = Principal(subject="a", can_deploy=False, is_admin=False)
    with pytest.raises(InsufficientScope) as err:
        require_deploy(user)
    assert (err.value.detail, err.value.permission) == (
        "your token does not allow deploying, replacing or undeploying processes", "deploy")
    with pytest.raises(InsufficientScope) as err:
        require_admin(user)
    assert (err.value.detail, err.value.permission) == ("this needs an administrator's token", "admin")
    require_deploy(Principal(subject="a", can_deploy=True))
    require_admin(Principal(subject="a", is_admin=True))
