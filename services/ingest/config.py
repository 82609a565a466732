import socket

from pydantic import Field

from shared.settings import CommonSettings, load_settings


class Settings(CommonSettings):
    ingest_port: int = Field(8081, description="Port of the write API.")
    max_body_bytes: int = Field(5 * 1024 * 1024, description="Largest accepted request body; larger is 413.")
    max_alerts_per_request: int = Field(1000, description="Most alerts in one POST; more is 413.")
    max_event_bytes: int = Field(
        1_000_000,
        ge=10_000,
        description="Largest event (one alert as JSON, twice for an update) a post may "
        "produce; larger is 413. Keep it under the broker's `message.max.bytes`.",
    )
    publish_timeout_seconds: float = Field(
        5.0,
        gt=0,
        description="How long a request waits for the broker to store its events before answering 503.",
    )
    retry_after_seconds: int = Field(
        5, ge=1, description="`Retry-After` sent with a 503 when the broker is away."
    )
    alert_producers: int = Field(
        8,
        ge=1,
        le=64,
        description="Transactional Kafka producers of this process (alert posts and contact changes "
        "publishing at once).",
    )
    ingest_instance_id: str = Field(
        "",
        description="Stable name of this ingest instance, part of its Kafka transactional ids; "
        "default: host name and port. Two live instances must not share it.",
    )
    transaction_timeout_ms: int = Field(
        15_000,
        ge=1000,
        description="The broker aborts a transaction left open this long (a crashed instance).",
    )
    channel_secret_overlap_hours: float = Field(
        24.0,
        ge=0,
        le=24 * 90,
        description="After a channel's secret is replaced, how long the previous one still signs beside "
        "it (outbound rotation: the receiver switches without rejecting a delivery).",
    )
    webhook_secret_cache_seconds: float = Field(
        10.0,
        ge=0,
        description="How long a tenant's webhook secrets are cached; a rotation applies within it.",
    )

    @property
    def instance_id(self) -> str:
        return self.ingest_instance_id or f"{socket.gethostname()}-{self.ingest_port}"


def get_settings() -> Settings:
    return load_settings(Settings)
