"""Settings of what browsers need beyond bearer tokens: signed result links, CORS and sign-in sessions."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr, field_validator


class WebSettings(BaseModel):
    link_expiry_s: int = Field(
        default=24 * 3600, ge=60, le=90 * 24 * 3600,
        description="How long a signed result link (the href of a file in a results document) works without a "
        "bearer token. Dismissing the job revokes its links at once.")
    link_secret: SecretStr | None = Field(
        default=None,
        description="Key of the HMAC that signs result links (at least 32 characters). None: a random key kept "
        "in DATA_DIR/auth/link-secret (0600). Changing it revokes every link given out.")
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Origins (scheme://host[:port]) whose pages may call the API from a browser (CORS), e.g. "
        "a JupyterLite or a web map. ['*']: any origin, never with credentials. Empty: none.")
    session_ttl_s: int = Field(
        default=8 * 3600, ge=60,
        description="Longest life of a browser sign-in session; it also ends when its access token expires.")
    max_sessions: int = Field(default=10000, ge=1, description="Browser sessions kept at most (oldest go first).")
    client_id: str | None = Field(
        default=None,
        description="OAuth2 client id the web pages sign in with at the first configured issuer (authorization "
        "code flow with PKCE; register {base_url}/ui/callback as its redirect URI). None: browser sign-in only "
        "with the development issuer.")
    client_secret: SecretStr | None = Field(
        default=None, description="Secret of that client, for a confidential client; None: a public client.")
    scope: str = Field(default="openid hpgc:execute hpgc:deploy",
                       description="Scopes the web pages ask for at sign-in.")

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        import re

        for origin in origins:
            if origin != "*" and not re.fullmatch(r"https?://[A-Za-z0-9_.\-\[\]:]+", origin):
                raise ValueError(f"{origin!r} is not an origin (scheme://host[:port], no path) nor '*'")
        if "*" in origins and len(origins) > 1:
            raise ValueError("'*' stands alone: it means any origin")
        return [o.rstrip("/").lower() for o in origins]

    @field_validator("link_secret")
    @classmethod
    def _long_enough(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None and len(secret.get_secret_value()) < 32:
            raise ValueError("the link secret must be at least 32 characters")
        return secret
