from typing import ClassVar

from pydantic import Field

from shared.settings import CommonSettings, load_settings


class Settings(CommonSettings):
    # The write API consumes too: the notifier's delivery-changed events, to answer redelivery requests.
    consumer_group_name: ClassVar[str | None] = "ingest"

    ingest_port: int = Field(8081, description="Port of the write API.")
    max_body_bytes: int = Field(5 * 1024 * 1024, description="Largest accepted request body; larger is 413.")
    max_alerts_per_request: int = Field(1000, description="Most alerts in one POST; more is 413.")
    max_event_bytes: int = Field(
        1_000_000,
        ge=10_000,
        description="Largest event (one alert as JSON, twice for an update) a post may "
        "produce; larger is 413. Keep it under the broker's `message.max.bytes`.",
    )
    retry_after_seconds: int = Field(
        5, ge=1, description="`Retry-After` sent with a 503 when the database is away."
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


def get_settings() -> Settings:
    return load_settings(Settings)
