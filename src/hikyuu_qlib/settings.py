"""Settings: environment (``HQ_*``), an optional TOML config file, then defaults.

The config file is ``$HQ_CONFIG`` when set, else ``~/.hikyuu_qlib/config.toml`` when it exists.
Keys are the field names below, e.g. ``source = "hikyuu:/data/stock"``. ``hq config show`` prints each
value with its source, ``hq config set KEY VALUE`` writes the file (:mod:`hikyuu_qlib.settings_file`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_HOME = Path("~/.hikyuu_qlib").expanduser()
ENV_PREFIX = "HQ_"


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """The config file: ``$HQ_CONFIG`` when set, else ``~/.hikyuu_qlib/config.toml`` (it may not exist)."""
    config = (os.environ if environ is None else environ).get("HQ_CONFIG")
    return Path(config).expanduser() if config else DEFAULT_HOME / "config.toml"


def _default_workers() -> int:
    return max(2, min(8, (os.cpu_count() or 2) * 2))


class ApiToken(BaseModel):
    """One bearer token of the HTTP service, kept as the SHA-256 of the token (never the token itself).

    ``read`` reads; ``write`` reads and writes (model transitions and deletes, jobs). Make one with
    ``hq serve token --scope write``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100, description="who holds it (shown in logs)")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the token, lowercase hex")
    scope: Literal["read", "write"] = "read"


class Settings(BaseSettings):
    """Everything the composition root needs to wire adapters."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    source: str = Field(
        "synthetic", description="market data source spec (hikyuu:PATH, qlib:PATH, synthetic, or a directory)"
    )
    home: Path = Field(DEFAULT_HOME, description="where registry, artifacts and caches live by default")
    database_url: str | None = Field(None, description="model registry URL; default sqlite under home")
    cache_dir: Path | None = Field(None, description="the disk cache (L3) directory; default home/cache")
    # the cache: L1 in memory, L2 in Redis (only with cache_url), L3 on disk
    cache_url: str | None = Field(
        None, description="Redis URL of the shared cache tier (L2), e.g. redis://127.0.0.1:6379/0; none: off"
    )
    cache_memory_bytes: int = Field(256 << 20, ge=0, description="bound of the in-process tier (L1); 0: off")
    cache_disk_bytes: int = Field(20 << 30, ge=0, description="bound of the disk tier (L3); 0: off")
    cache_redis_max_value_bytes: int = Field(
        32 << 20, ge=1, description="largest value stored in Redis (larger ones stay in L1/L3)"
    )
    cache_ttl_s: int = Field(86_400, ge=1, description="TTL of every Redis key of the cache")
    cache_key_prefix: str = Field("hq:", min_length=1, description="prefix of every Redis key of the cache")
    cache_lock_ttl_ms: int = Field(
        10_000, ge=100, description="TTL of a computation's cross-process lock (renewed while it runs)"
    )
    cache_lock_wait_s: float = Field(
        300.0, gt=0, description="how long a process waits on another's computation before computing"
    )
    cache_version_check_s: float = Field(
        1.0, ge=0, description="seconds a store's data version is trusted before it is checked again"
    )
    cache_redis_timeout_s: float = Field(0.5, gt=0, description="Redis connect and read timeout")
    cache_redis_retry_s: float = Field(
        2.0, gt=0, description="longest pause between reconnection attempts while Redis is down"
    )
    memory_budget: str | None = Field(
        None,
        description="peak memory of a research run, e.g. 4GB (default: a quarter of the RAM); a run that "
        "does not fit it in memory computes and trains from date blocks on disk",
    )
    io_workers: int = Field(default_factory=_default_workers, ge=1, le=64)
    log_level: str = "INFO"
    qlib_change_unit: Literal["auto", "fraction", "percent"] = Field(
        "auto", description="unit of a Qlib store's $change: detected from its bins (auto), or said"
    )
    qlib_volume: Literal["auto", "adjusted", "traded"] = Field(
        "auto",
        description="how a Qlib store keeps $volume: adjusted (traded shares / $factor, Qlib's "
        "convention) or as traded; detected from its bins (auto), or said",
    )
    # model registry: connection pool and transient-fault retries
    registry_pool_size: int = Field(5, ge=1, le=200, description="connections kept open in the pool")
    registry_max_overflow: int = Field(10, ge=0, le=500, description="extra connections under load")
    registry_pool_timeout: float = Field(30.0, gt=0, description="seconds to wait for a free connection")
    registry_pool_pre_ping: bool = Field(True, description="test a pooled connection before handing it out")
    registry_pool_recycle: int = Field(
        1800, description="seconds after which a connection is replaced (-1: never)"
    )
    registry_busy_timeout_ms: int = Field(5000, ge=0, description="SQLite busy timeout")
    registry_retry_deadline: float = Field(
        30.0,
        ge=0,
        le=3600,
        description="seconds of transient database faults (an outage, a server restart) an operation rides out",
    )
    registry_retry_attempts: int = Field(
        100,
        ge=1,
        le=10_000,
        description="tries of an operation at most (the deadline usually ends them first)",
    )
    registry_connect_timeout: float = Field(10.0, gt=0, description="seconds to wait for a new connection")
    # observability (tracing itself is configured by the standard OTEL_* variables)
    pushgateway_url: str | None = Field(
        None, description="Prometheus Pushgateway that batch commands push their metrics to"
    )
    traces_file: Path | None = Field(
        None, description="file the jsonl trace exporter appends spans to (OTEL_TRACES_EXPORTER=jsonl)"
    )

    # HTTP service (hq serve)
    api_tokens: tuple[ApiToken, ...] = Field(
        (), description='bearer tokens, JSON: [{"name": …, "sha256": …, "scope": "read"|"write"}]'
    )
    api_public_read: bool = Field(False, description="reads need no token (writes always do)")
    api_max_codes: int = Field(1000, ge=1, le=100_000, description="codes in one bars request at most")
    api_max_page_size: int = Field(1000, ge=1, le=10_000, description="largest page_size of a list")
    api_max_request_bytes: int = Field(1 << 20, ge=1024, description="largest request body, bytes")
    api_request_timeout: float = Field(
        120.0, gt=0, description="seconds a request may take before it is answered 504"
    )
    api_compute_workers: int = Field(2, ge=1, le=64, description="threads for predictions per worker")
    api_body_processes: int = Field(
        1, ge=0, le=64, description="processes per worker that read and serialise bars (0: threads)"
    )
    api_job_workers: int = Field(1, ge=1, le=64, description="jobs run at once (one process each)")
    api_max_wait: float = Field(
        60.0, gt=0, le=3600, description="longest timeout of GET /v1/jobs/{id}/wait, seconds"
    )
    api_shutdown_grace: float = Field(
        20.0, ge=0, description="seconds SIGTERM waits for requests and jobs before it stops them"
    )
    api_cors_origins: tuple[str, ...] = Field((), description="origins allowed by CORS (none: CORS off)")
    # a client of hq serve (the hq commands that take --server)
    server: str | None = Field(
        None, description="URL of a hq serve that hq commands ask instead of reading locally (HQ_SERVER)"
    )
    token: SecretStr | None = Field(None, description="bearer token of requests to `server` (HQ_TOKEN)")

    @field_validator("memory_budget")
    @classmethod
    def _memory_budget(cls, value: str | None) -> str | None:
        if value is not None:
            from hikyuu_qlib.memory import parse_bytes

            parse_bytes(value)
        return value

    @field_validator("cache_url", mode="before")
    @classmethod
    def _no_cache_url(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in ("", "none", "off"):
            return None
        return value

    @field_validator("server", mode="before")
    @classmethod
    def _no_server(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @model_validator(mode="after")
    def _lock_shorter_than_wait(self) -> Settings:
        if self.cache_lock_ttl_ms / 1000 >= self.cache_lock_wait_s:
            raise ValueError(
                f"cache_lock_ttl_ms ({self.cache_lock_ttl_ms} ms) must be shorter than cache_lock_wait_s "
                f"({self.cache_lock_wait_s} s), so that a crashed holder never blocks the waiters"
            )
        if self.cache_url is not None and not self.cache_url.startswith(("redis://", "rediss://", "unix://")):
            scheme = self.cache_url.split(":", 1)[0]
            raise ValueError(f"cache_url must be a redis://, rediss:// or unix:// URL, not {scheme}:")
        return self

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
        path = config_path()
        if path.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @property
    def registry_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'registry.db'}"

    @property
    def cache_disk_dir(self) -> Path:
        """The disk tier's directory."""
        return (self.cache_dir or self.home / "cache").expanduser()


def load_settings(given: Settings | None = None) -> Settings:
    """``given`` when there are settings, else the settings read once from the environment (``HQ_*``), the
    config file and the defaults. Entrypoints (each CLI command, a library call made without settings)
    read them here once and pass them on; nothing below them reads them again."""
    return given if given is not None else Settings()
