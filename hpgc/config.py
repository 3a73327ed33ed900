"""One settings object for the whole server: a TOML file plus HPGC_* environment variables.

Every field has a description: `hpgc config-docs` renders docs/configuration.md from them.
Nested fields are set from the environment with `__`, e.g. HPGC_LOCAL__MAX_JOBS=8.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from hpgc.auth.settings import AuthSettings
from hpgc.auth.web_settings import WebSettings
from hpgc.backends.local.settings import LocalBackendSettings
from hpgc.backends.slurm.config import ClusterSettings
from hpgc.jobs.callbacks.settings import CallbackSettings
from hpgc.jobs.limits import LimitSettings
from hpgc.jobs.ops_settings import HealthSettings, MetricsSettings, RetentionSettings
from hpgc.jobs.upload_settings import UploadSettings
from hpgc.net.settings import OutboundSettings
from hpgc.packages.workers import DeploySettings
from hpgc.storage.settings import StorageSettings

_config_file: Path | None = None  # set by load_settings for the duration of one load
REPO_APPKGS = Path(__file__).resolve().parent.parent / "appkgs"


class ConfigError(Exception):
    """The configuration is invalid; the message says which field and why."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HPGC_", env_nested_delimiter="__", extra="forbid")

    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port to listen on.")
    data_dir: Path = Field(
        default=Path("hpgc-data"), description="Database, job directories and keys live here."
    )
    base_url: str | None = Field(
        default=None,
        description="Public URL of the API (e.g. https://hpc.example.org/ogc): absolute links and Location "
        "start with it. None: they start with the request's Host header, which must be one of allowed_hosts.",
    )
    allowed_hosts: list[str] | None = Field(
        default=None,
        description="Host header values (host[:port]; without a port, 80, or 443 over TLS) the server answers "
        "to; any other Host gets 400, so that no request puts a foreign host in links (nor reaches a loopback "
        "server by DNS rebinding). None: the listen address, the address a request arrived at, localhost, "
        "127.0.0.1 and [::1], each with the port the request arrived on, and base_url's host. X-Forwarded-* "
        "headers are never trusted: behind a proxy, set base_url.",
    )
    title: str = Field(default="hpgc", description="Title on the landing page.")
    appkgs_dir: Path = Field(
        default=REPO_APPKGS, description="Folder of built-in application packages, one sub-folder each."
    )
    builtin_processes: list[str] = Field(
        default_factory=lambda: ["echo", "sleep"],
        description="Folders of appkgs_dir served as built-in processes; ['*'] for all. The other folders are "
        "examples to deploy through the API (Part 2).",
    )
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024, ge=1024, description="Largest request body accepted; larger → 413."
    )
    max_inputs: int = Field(default=10000, ge=1, description="Largest number of input values per request.")
    sync_timeout_s: float = Field(
        default=120.0, gt=0, description="How long a synchronous execute waits before answering with the job."
    )
    default_backend: str = Field(default="local", description="Backend for processes that name none.")
    poll_interval_s: float = Field(default=1.0, gt=0, description="Monitor interval for the local backend.")
    log_level: str = Field(default="INFO", description="Python logging level.")
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="text: one readable line per record; json: one JSON object per line, with the request id "
        "and the job, process, user, cluster and Slurm id wherever they apply (docs/operations.md).")
    local: LocalBackendSettings = Field(default_factory=LocalBackendSettings, description="Local backend.")
    auth: AuthSettings = Field(default_factory=AuthSettings, description="Authentication.")
    web: WebSettings = Field(
        default_factory=WebSettings,
        description="Browsers: signed result links, CORS origins, web sign-in sessions (docs/ui.md).")
    callbacks: CallbackSettings = Field(
        default_factory=CallbackSettings, description="Subscriber callbacks: delivery, retries."
    )
    outbound: OutboundSettings = Field(
        default_factory=OutboundSettings,
        description="Every request the server makes for a user (callbacks, href inputs, executionUnit.href): "
        "which addresses it may reach (the SSRF guard), time limits, redirects, bytes.",
    )
    limits: LimitSettings = Field(
        default_factory=LimitSettings, description="Per-user limits: active jobs, deployed processes (429 past them)."
    )
    storage: StorageSettings = Field(
        default_factory=StorageSettings, description="S3-compatible object storage: endpoints, buckets, site and "
        "per-user credentials for s3:// inputs and output destinations (docs/data.md).")
    uploads: UploadSettings = Field(
        default_factory=UploadSettings, description="Uploaded files (POST /files): size, per-user quota, expiry "
        "(docs/data.md).")
    clusters: dict[str, ClusterSettings] = Field(
        default_factory=dict, description="Slurm clusters by name; the first is the default one."
    )
    metrics: MetricsSettings = Field(
        default_factory=MetricsSettings, description="Prometheus metrics at /metrics (docs/operations.md)."
    )
    health: HealthSettings = Field(
        default_factory=HealthSettings, description="The checks of /health/ready (docs/operations.md)."
    )
    retention: RetentionSettings = Field(
        default_factory=RetentionSettings, description="How long ended jobs and their files are kept."
    )
    deploy: DeploySettings = Field(
        default_factory=DeploySettings,
        description="Deploy: the worker processes that parse and validate deployed documents, and their limits.",
    )

    @field_validator("allowed_hosts")
    @classmethod
    def _authorities(cls, hosts: list[str] | None) -> list[str] | None:
        for host in hosts or []:  # the form hpgc/api/hosts.py compares; a pattern would silently match nothing
            if not re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(:[0-9]{1,5})?", host):
                raise ValueError(f"{host!r} is not host[:port] (no scheme, path or wildcard)")
        return hosts

    @field_validator("data_dir", "appkgs_dir")
    @classmethod
    def _absolute(cls, path: Path) -> Path:
        # job directories are handed to subprocesses that run elsewhere (their own cwd): never relative
        return path.expanduser().resolve()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if _config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=_config_file))
        return tuple(sources)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Read the file (if any), the environment and explicit overrides; raise ConfigError, readable."""
    if config_file is not None and not config_file.is_file():
        raise ConfigError(f"configuration file {config_file} does not exist")
    global _config_file
    _config_file = config_file
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        lines = [f"invalid configuration{f' in {config_file}' if config_file else ''}:"]
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            lines.append(f"  {where}: {err['msg']}")
        raise ConfigError("\n".join(lines)) from None
    finally:
        _config_file = None
