"""Authentication settings: trusted issuers, the development issuer, permissions and identity mapping."""

from __future__ import annotations

import ipaddress
import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from hpgc.auth.grants import SlurmGrantSettings

# Symmetric algorithms would need a secret shared with the issuer, and they are what an attacker reaches
# for when a verifier lets the token's header pick the algorithm: they are never accepted.
ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
                         "EdDSA")
DEFAULT_AUDIENCE = "hpgc"


def _loopback(host: str | None) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def check_url(url: str, allow_http: bool = False) -> str:
    """Keys and introspection answers decide who gets in: fetch them over TLS unless on this machine."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname and (allow_http or _loopback(parts.hostname)):
        return url
    raise ValueError(f"'{url}' must be an https:// URL (http:// only for loopback addresses or with allow_http)")


class IssuerSettings(BaseModel):
    issuer: str = Field(description="The issuer identifier, exactly as in the tokens' `iss` claim "
                        "(Keycloak: https://HOST/realms/REALM).")
    audience: list[str] = Field(
        default_factory=lambda: [DEFAULT_AUDIENCE],
        description="Accepted `aud` values; a token must name one of them. Empty: audience not checked "
        "(only for issuers that mint tokens for this server alone).")
    algorithms: list[str] = Field(
        default_factory=lambda: ["RS256", "ES256", "PS256", "EdDSA"],
        description="Signature algorithms accepted; asymmetric ones only.")
    discovery_url: str | None = Field(
        default=None, description="OpenID discovery document; default {issuer}/.well-known/openid-configuration.")
    jwks_uri: str | None = Field(default=None, description="JWKS URL; default: the discovery document's jwks_uri.")
    introspection_endpoint: str | None = Field(
        default=None, description="RFC 7662 endpoint for opaque tokens; default: the discovery document's, "
        "when client_id is set.")
    client_id: str | None = Field(default=None, description="Client id hpgc introspects tokens with.")
    client_secret: SecretStr | None = Field(default=None, description="Secret of that client.")
    introspection_cache_s: float = Field(
        default=60.0, ge=0, le=600, description="How long an introspection answer is reused (never past the "
        "token's exp). Revoked tokens keep working at most this long.")
    jwks_refresh_min_s: float = Field(
        default=60.0, ge=0, description="Least time between two JWKS fetches triggered by an unknown kid "
        "(a flood of forged kids must not become a flood of requests to the issuer).")
    jwks_max_age_s: float = Field(default=3600.0, gt=0, description="Keys are re-fetched after this long.")
    subject_prefix: str = Field(
        default="", description="Prepended to `sub` to make the job owner: with several issuers, give each "
        "its own so that one issuer's subjects cannot collide with another's.")
    allow_http: bool = Field(default=False, description="Allow http:// issuer URLs off loopback (never in "
                             "production: keys fetched in clear can be replaced).")
    timeout_s: float = Field(default=10.0, gt=0, description="Timeout of requests to the issuer.")

    @field_validator("algorithms")
    @classmethod
    def _asymmetric(cls, value: list[str]) -> list[str]:
        bad = [a for a in value if a not in ASYMMETRIC_ALGORITHMS]
        if bad:
            raise ValueError(f"algorithm '{bad[0]}' is not accepted; choose from {', '.join(ASYMMETRIC_ALGORITHMS)}")
        if not value:
            raise ValueError("at least one algorithm is needed")
        return value

    @model_validator(mode="after")
    def _urls(self) -> IssuerSettings:
        for url in (self.issuer, self.discovery_url, self.jwks_uri, self.introspection_endpoint):
            if url is not None:
                check_url(url, self.allow_http)
        if self.client_id and self.client_secret is None:
            raise ValueError(f"issuer {self.issuer}: client_id needs client_secret")
        return self

    @property
    def introspects(self) -> bool:
        return self.client_id is not None


class RegexRule(BaseModel):
    pattern: str = Field(description="Regular expression the whole claim value must match.")
    replacement: str = Field(description=r"The Unix user, with \1 or \g<name> groups of the match.")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:  # not a ValueError: pydantic would let it out as a traceback, not a settings error
            raise ValueError(f"pattern does not compile: {exc}") from None
        return value


class IdentitySettings(BaseModel):
    mode: Literal["template", "regex", "table", "none"] = Field(
        default="template", description="How a token maps to a Unix/Slurm account: `template` fills "
        "`template` with claims; `regex` applies `rules` to `claim`; `table` looks `claim` up in `table`; "
        "`none` maps nobody (jobs run as the service account).")
    template: str = Field(default="{preferred_username}",
                          description="Template mode: claim names (dotted paths allowed) in braces.")
    claim: str = Field(default="sub", description="Regex and table modes: the claim to map.")
    rules: list[RegexRule] = Field(default_factory=list, description="Regex mode: first matching rule wins.")
    table: dict[str, str] = Field(default_factory=dict, description="Table mode: claim value → Unix user.")
    forbidden: list[str] = Field(default_factory=lambda: ["root"],
                                 description="Unix users no token may map to.")
    slurm: SlurmGrantSettings = Field(
        default_factory=SlurmGrantSettings, description="Slurm accounts, partitions and QOS from claims.")


class DevIssuerSettings(BaseModel):
    enabled: bool | None = Field(
        default=None, description="Run the built-in development issuer. None: only when no issuer is "
        "configured. Anyone who can read the data dir can mint tokens: never in production.")
    algorithm: Literal["ES256", "RS256"] = Field(default="ES256", description="Signing algorithm of its key.")
    subject_prefix: str = Field(
        default="dev:", description="Prepended to `sub` of its tokens (see issuers). Its own namespace, so "
        "that no configured issuer's user, now or later, can own the jobs of a development token's user.")


class AuthSettings(BaseModel):
    enabled: bool = Field(
        default=True, description="Require bearer tokens on every route but the public façade. False: no "
        "authentication at all, every caller is an administrator (trusted single-user setups only).")
    issuers: list[IssuerSettings] = Field(default_factory=list,
                                          description="Trusted OpenID Connect / OAuth2 issuers.")
    dev_issuer: DevIssuerSettings = Field(default_factory=DevIssuerSettings,
                                          description="Built-in development issuer.")
    realm: str = Field(default="hpgc", description="realm of the WWW-Authenticate challenge.")
    swagger_client_id: str | None = Field(
        default=None, description="OAuth2 client id (public client, PKCE) that Swagger UI's Authorize button "
        "uses with the issuer's authorization-code flow. None: paste a token instead.")
    deployed_process_visibility: Literal["everyone", "owner"] = Field(
        default="everyone", description="Who sees (lists, describes, executes) a deployed process: every "
        "authenticated user, or only its owner (and administrators). Built-in processes are seen by all.")
    leeway_s: int = Field(default=30, ge=0, le=300, description="Clock skew tolerated on exp, nbf and iat.")
    permission_claims: list[str] = Field(
        default_factory=lambda: ["scope", "scp"],
        description="Claims (dotted paths, e.g. realm_access.roles or groups) whose values grant permissions; "
        "a space-separated string or a list.")
    execute_scopes: list[str] = Field(default_factory=lambda: ["hpgc:execute"],
                                      description="Values granting read and execute.")
    deploy_scopes: list[str] = Field(default_factory=lambda: ["hpgc:deploy"],
                                     description="Values granting deploy, replace and undeploy.")
    admin_scopes: list[str] = Field(default_factory=lambda: ["hpgc:admin"],
                                    description="Values granting admin (every job; implies the others).")
    name_claims: list[str] = Field(default_factory=lambda: ["name", "preferred_username", "email"],
                                   description="Claims tried in turn for the display name.")
    identity: IdentitySettings = Field(default_factory=IdentitySettings, description="Unix/Slurm identity mapping.")

    @model_validator(mode="after")
    def _issuers_distinct(self) -> AuthSettings:
        names = [i.issuer for i in self.issuers]
        if len(set(names)) != len(names):
            raise ValueError("an issuer is configured twice")
        # the development issuer's prefix counts even while it is off: jobs its tokens created stay in the store
        prefixes = self.subject_prefixes
        if len(set(prefixes)) != len(prefixes):
            raise ValueError("issuers share a subject_prefix (the development issuer's, 'dev:' by default, "
                             "included): give each issuer its own, or two users of different issuers could "
                             "own the same jobs")
        # an opaque token says nothing of its issuer: sending it to several introspection endpoints
        # would hand one issuer's tokens to another
        if sum(i.introspects for i in self.issuers) > 1:
            raise ValueError("only one issuer may introspect opaque tokens (client_id set)")
        return self

    @property
    def subject_prefixes(self) -> list[str]:
        return [*(i.subject_prefix for i in self.issuers), self.dev_issuer.subject_prefix]

    @property
    def dev_issuer_active(self) -> bool:
        wanted = self.dev_issuer.enabled
        return self.enabled and (not self.issuers if wanted is None else wanted)
