"""Settings of subscriber callbacks (`[callbacks]`, HPGC_CALLBACKS__*)."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr


class CallbackSettings(BaseModel):
    """Subscriber callbacks (`subscriber` in execute requests): delivery and retries. Where they may go is
    `outbound.allowed_networks`, shared with every other request the server makes for a user."""

    secret: SecretStr | None = Field(
        default=None,
        description="Sign every callback body: header X-Hpgc-Signature: sha256=<hex HMAC-SHA256 of the body "
        "with this secret>. None: callbacks are not signed.",
    )
    attempt_timeout_s: float = Field(
        default=10.0, gt=0, description="Time limit of one delivery attempt (connect, send, answer)."
    )
    backoff_initial_s: float = Field(
        default=2.0, gt=0, description="Wait before the first retry; doubled after each failed attempt."
    )
    backoff_max_s: float = Field(default=600.0, gt=0, description="Longest wait between two attempts.")
    max_age_s: float = Field(
        default=86400.0, gt=0,
        description="A notification not delivered this long after the change that caused it is given up.",
    )
    concurrency: int = Field(default=32, ge=1, description="Deliveries in flight at once, all receivers.")
    per_host_concurrency: int = Field(
        default=4, ge=1,
        description="Deliveries in flight at once to one host: a slow receiver never takes every slot.",
    )
    progress_interval_s: float = Field(
        default=10.0, ge=0,
        description="At most one in-progress notification per job per this many seconds for progress and "
        "message changes (status changes are always sent).",
    )
