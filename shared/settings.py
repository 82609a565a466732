"""One settings loader for every process.

Each service declares one ``Settings`` subclass of :class:`CommonSettings` in its ``config.py``
and loads it once with :func:`load_settings`. Every value comes from the environment, with the
usual names where there are usual names (``KAFKA_BOOTSTRAP_SERVERS``, ``DATABASE_URL``...).
Development defaults (the ``dev-admin-key`` operator key and the development webhook secret) are
refused unless ``ENVIRONMENT=development``.
"""

from __future__ import annotations

import base64
import binascii
import sys
from pathlib import Path
from typing import ClassVar, Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_OPERATOR_API_KEY = "dev-admin-key"
DEV_WEBHOOK_SECRET = "whsec_ZGV2LXdlYmhvb2stc2VjcmV0"
MIN_OPERATOR_KEY_LENGTH = 24
# A Fernet key anyone can read here: fine for a laptop, refused outside development.
DEV_SEALING_KEY = "ZGV2LXNlYWxpbmcta2V5LWZvci1sb2NhbC1ydW5zISE="
# Signs the one-click response links of e-mails and cards (shared/action_links.py); development only.
DEV_ACTION_LINK_KEY = "dev-action-link-key-not-for-production"
MIN_ACTION_LINK_KEY_LENGTH = 32
# The longest ACTION_LINK_MAX_AGE_HOURS allowed (90 days): a link issued longer ago than this is expired
# under any setting, so the write API may forget it was used (services.ingest.store.prune_used_action_links).
ACTION_LINK_MAX_AGE_HOURS_LIMIT = 24 * 90


class ApiKeySettings(BaseSettings):
    """How the APIs treat bearer keys; read by ``shared.auth.KeyStore`` (part of every process's settings)."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    api_key_cache_seconds: float = Field(
        30.0,
        ge=0,
        le=3600,
        description="How long a process caches a key it looked up; a key revoked elsewhere (another process, "
        "the CLI) stops within it.",
    )
    api_key_rate_per_second: float = Field(
        20.0,
        ge=0.01,
        description="Requests per second a key may make to one process (token bucket per key and process); "
        "a key may have its own. The operator key is not limited.",
    )
    api_key_rate_burst: int = Field(
        100, ge=1, description="Requests a key may make at once beyond its rate (the bucket's size)."
    )
    api_key_last_used_interval_seconds: float = Field(
        60.0,
        ge=0,
        description="A key's `lastUsedDateTime` is written at most this often per process (not per request).",
    )


class CommonSettings(ApiKeySettings):
    """Settings shared by every process; a service's own ``Settings`` adds to these."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    environment: Literal["development", "production"] = Field(
        "production",
        description="`development` allows the published development key and secret; anything "
        "facing real partners runs as `production`.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", description="Comma-separated host:port list.")
    database_url: str = Field("postgresql://csp:csp@127.0.0.1:5432/csp_triage")
    redis_url: str = Field("redis://127.0.0.1:6379/0")
    public_base_url: str = Field(
        "http://127.0.0.1:8082", description="Base of links put in e-mails and webhooks (the dashboard)."
    )
    operator_api_key: SecretStr = Field(
        SecretStr(DEV_OPERATOR_API_KEY),
        description="Bearer key of the operator (role adminAgent over every tenant).",
    )
    webhook_secret: SecretStr = Field(
        SecretStr(DEV_WEBHOOK_SECRET),
        description="Default Standard Webhooks secret (`whsec_<base64>`) for tenants without their own.",
    )
    sealing_keys: SecretStr = Field(
        SecretStr(DEV_SEALING_KEY),
        description="Fernet keys (comma-separated, newest first) that seal secrets put on Kafka or stored "
        "at rest (a channel's signing secret). The first seals; every one unseals, so a key can be "
        "rotated by putting the new one first and dropping the old once nothing sealed with it is left.",
    )
    http_host: str = Field(
        "127.0.0.1", description="Address the process's HTTP server binds to (0.0.0.0 in a container)."
    )
    # One-click responses (#13, shared/action_links.py): the notifier signs, the write API checks.
    action_link_keys: SecretStr = Field(
        SecretStr(DEV_ACTION_LINK_KEY),
        description="Keys (comma-separated, newest first, each at least 32 characters) signing the one-click "
        "response links: the first signs, every one verifies, so a key rotates without breaking links.",
    )
    action_link_max_age_hours: float = Field(
        168.0, gt=0, le=ACTION_LINK_MAX_AGE_HOURS_LIMIT,
        description="How long a one-click response link works (default 7 days).",
    )
    write_api_public_url: str = Field(
        "http://127.0.0.1:8081",
        pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
        description="Base URL of the write API as people reach it: one-click response links point there.",
    )
    catalogue_path: Path = Field(
        Path(__file__).with_name("catalogue.yaml"),
        description="YAML file of the requirements catalogue (default: SPEC §4's table).",
    )
    kafka_topic_prefix: str = Field(
        "", description="Prefix for every topic name, so several deployments or test runs can share a broker."
    )
    webhook_allow_private_addresses: bool = Field(
        False,
        description="Allow ticketing channels on loopback, private or link-local addresses (a ticketing "
        "system on your own network; local development). Off: only public addresses, against SSRF.",
    )
    consumer_group: str = Field(
        "",
        description="Kafka consumer group of a consuming service. Empty: the topic prefix followed by the "
        "service's name (`ingest`, `response-time`, `scoring`, `notifier`), so deployments sharing a broker never "
        "share a group (and never rebalance each other).",
    )
    # Topics (#16, many machines): read by shared.kafka.ensure_topics when it creates a topic; a topic
    # that exists is left as it is (changing its partitions or replicas is an operator's step).
    kafka_replication_factor: int = Field(
        1, ge=1, le=32,
        description="Replicas of each topic created: 1 for a single local broker, 3 on a cluster (with "
        "KAFKA_MIN_INSYNC_REPLICAS 2, so an acknowledged event survives a broker's loss).",
    )
    kafka_partitions: int | None = Field(
        None, ge=1, le=1000,
        description="Partitions of every topic created but the dead-letter topic (which keeps 1). Unset: each "
        "topic's own count (3, or 6 for `alerts` and `alert-response-times`). More partitions let more "
        "instances of a consumer share a topic (one partition is consumed by one instance of a group).",
    )
    kafka_min_insync_replicas: int | None = Field(
        None, ge=1, le=32,
        description="`min.insync.replicas` of each topic created (at most KAFKA_REPLICATION_FACTOR). Unset: the "
        "broker's default.",
    )
    # Consumers' fetches (#15). A fetch the broker answers as soon as one record is there makes a busy
    # pipeline a fetch, a batch and a transaction per record or two on every consumer, which then takes
    # all the CPU there is and slows what people wait for. So a fetch waits a moment for records to gather:
    # briefly where someone waits for the result (the response-time path to the read API), longer for
    # the rest (notifications, delivery logs, timelines), which gives the CPU to the first.
    # 60 ms, not 25 (A/B at a steady 200 alerts/s with the bench's reader, 6 interleaved pairs): the
    # batches of twice as many records cost a third less CPU in response time and the write -> visible
    # p99 was shorter in 5 pairs of 6 (the machine less loaded); an idle alert waits ~30 ms more.
    kafka_fetch_max_wait_ms: int = Field(
        60, ge=1, le=1000,
        description="How long the broker may hold a fetch of the consumers someone waits for (alerts into "
        "response time and the read API; response times into the read API; deliveries into the write API, for "
        "redeliveries) while records gather, unless KAFKA_FETCH_MIN_BYTES have. (Topics of a few records a day, "
        "requirement statuses and triage among them, are fetched at their first record, an empty fetch held "
        "KAFKA_BACKGROUND_FETCH_MAX_WAIT_MS.)",
    )
    kafka_background_fetch_max_wait_ms: int = Field(
        500, ge=1, le=5000,
        description="The same for the other consumers (the notifier's, the read API's delivery logs, "
        "customers' MFA and sync states).",
    )
    kafka_fetch_min_bytes: int = Field(
        65536, ge=1, le=52_428_800,
        description="Bytes of records that end a fetch's wait at once (a burst is not held back).",
    )
    # Traces (#16, shared/tracing.py): the standard OpenTelemetry variables.
    otel_exporter_otlp_endpoint: str | None = Field(
        None,
        pattern=r"^https?://[^\s]+$",
        description="OTLP/HTTP collector (e.g. `http://127.0.0.1:4318`); traces go to its `/v1/traces`. "
        "Unset: no traces, no exporter, no instrumentation (the default).",
    )
    otel_traces_sampler_arg: float = Field(
        1.0, ge=0.0, le=1.0,
        description="Share of the traces started here that are kept (a trace continued from a caller or a "
        "record keeps its parent's decision).",
    )

    # The service's part of the default consumer group; None for a process that consumes nothing.
    consumer_group_name: ClassVar[str | None] = None

    @field_validator("webhook_secret")
    @classmethod
    def _standard_webhooks_secret(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value()
        try:
            ok = raw.startswith("whsec_") and len(base64.b64decode(raw[6:], validate=True)) >= 16
        except (binascii.Error, ValueError):
            ok = False
        if not ok:
            raise ValueError("must be a Standard Webhooks secret: whsec_ then base64 of at least 16 bytes")
        return value

    @model_validator(mode="after")
    def _insync_within_replicas(self) -> CommonSettings:
        insync = self.kafka_min_insync_replicas
        if insync is not None and insync > self.kafka_replication_factor:
            raise ValueError("KAFKA_MIN_INSYNC_REPLICAS cannot exceed KAFKA_REPLICATION_FACTOR (no write could "
                             "ever be acknowledged)")
        return self

    @model_validator(mode="after")
    def _default_consumer_group(self) -> CommonSettings:
        if not self.consumer_group and self.consumer_group_name:
            self.consumer_group = f"{self.kafka_topic_prefix}{self.consumer_group_name}"
        return self

    @model_validator(mode="after")
    def _refuse_development_secrets(self) -> CommonSettings:
        if self.environment != "development":
            bad = []
            if self.operator_api_key.get_secret_value() == DEV_OPERATOR_API_KEY:
                bad.append("OPERATOR_API_KEY")
            if self.webhook_secret.get_secret_value() == DEV_WEBHOOK_SECRET:
                bad.append("WEBHOOK_SECRET")
            if DEV_SEALING_KEY in self.sealing_key_list:
                bad.append("SEALING_KEYS")
            if DEV_ACTION_LINK_KEY in self.action_link_key_list:
                bad.append("ACTION_LINK_KEYS")
            if bad:
                raise ValueError(
                    f"{', '.join(bad)} still hold the published development defaults; set your own "
                    "values, or set ENVIRONMENT=development for a local run"
                )
            if len(self.operator_api_key.get_secret_value()) < MIN_OPERATOR_KEY_LENGTH:
                raise ValueError(f"OPERATOR_API_KEY must be at least {MIN_OPERATOR_KEY_LENGTH} characters "
                                 "outside development (it opens every tenant)")
        return self

    @field_validator("sealing_keys")
    @classmethod
    def _fernet_keys(cls, value: SecretStr) -> SecretStr:
        keys = [k.strip() for k in value.get_secret_value().split(",") if k.strip()]
        try:
            ok = bool(keys) and all(len(base64.urlsafe_b64decode(k.encode())) == 32 for k in keys)
        except (binascii.Error, ValueError):
            ok = False
        if not ok:
            raise ValueError("must be one or more Fernet keys (url-safe base64 of 32 bytes), comma-separated")
        return value

    @field_validator("action_link_keys")
    @classmethod
    def _action_link_keys(cls, value: SecretStr) -> SecretStr:
        keys = [k.strip() for k in value.get_secret_value().split(",") if k.strip()]
        if not keys or any(len(k) < MIN_ACTION_LINK_KEY_LENGTH for k in keys):
            raise ValueError(f"must be one or more keys of at least {MIN_ACTION_LINK_KEY_LENGTH} characters, "
                             "comma-separated")
        return value

    @property
    def action_link_key_list(self) -> list[str]:
        """Newest first, as configured (itsdangerous wants the signing key last: reverse it there)."""
        return [k.strip() for k in self.action_link_keys.get_secret_value().split(",") if k.strip()]

    @property
    def sealing_key_list(self) -> list[str]:
        return [k.strip() for k in self.sealing_keys.get_secret_value().split(",") if k.strip()]

    @property
    def is_development(self) -> bool:
        return self.environment == "development"


SettingsT = TypeVar("SettingsT", bound=CommonSettings)


def load_settings(cls: type[SettingsT]) -> SettingsT:
    """Build the process's settings from the environment; on a bad value, say which and exit.

    A process that cannot start should say why in one readable line, not a traceback.
    """
    try:
        return cls()
    except ValidationError as exc:
        problems = "; ".join(
            (f"{'.'.join(str(p) for p in err['loc']).upper()}: " if err["loc"] else "")
            + err["msg"].removeprefix("Value error, ")
            for err in exc.errors()
        )
        print(f"invalid settings: {problems}", file=sys.stderr)
        raise SystemExit(2) from None
