from typing import ClassVar
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from shared.settings import CommonSettings, load_settings


class Settings(CommonSettings):
    # The write API consumes too: the notifier's delivery-changed events, to answer redelivery requests.
    consumer_group_name: ClassVar[str | None] = "ingest"

    ingest_port: int = Field(8081, description="Port of the write API.")
    # One Python process uses one core at most: under a burst the write API was one core's worth (#15).
    ingest_workers: int = Field(
        1, ge=1, le=64,
        description="Processes serving the write API on its port (each binds it, SO_REUSEPORT), each a full "
        "instance: its own database pool, relay and consumer. More take more cores; each caches keys and "
        "counts each key's rate limit on its own.",
    )
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
    deliveries_batch_size: int = Field(
        200, ge=1, le=10_000, description="Most `delivery-changed` events applied in one PostgreSQL transaction.")
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

    # The Partner Center connection (#12, docs/graph.md). Every instance serves the connection's API;
    # those with GRAPH_SYNC_ENABLED also poll and write back (a lease per connection and per
    # write-back keeps two instances off the same one).
    graph_sync_enabled: bool = Field(
        True, description="This instance polls Microsoft Graph and writes responses back to it."
    )
    graph_base_url: str = Field(
        "https://graph.microsoft.com",
        pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
        description="Base URL of Microsoft Graph (the `/beta/...` paths go under it); a test emulator in tests.",
    )
    graph_login_base_url: str = Field(
        "https://login.microsoftonline.com",
        pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
        description="Base URL of the Microsoft identity platform (`/{tenant}/oauth2/v2.0/token` under it).",
    )
    graph_poll_interval: float = Field(
        300.0, ge=1, description="Seconds between two polls of one connection (default 5 minutes)."
    )
    graph_request_timeout_seconds: float = Field(
        30.0, gt=0, description="Timeout of one request to Graph or the identity platform."
    )
    graph_writeback_max_backoff_seconds: float = Field(
        900.0, ge=1, description="Longest wait between two attempts of a write-back Graph did not take."
    )
    graph_lease_seconds: float = Field(
        120.0, ge=5, description="How long one instance holds a poll or a write-back before another may take it.",
    )

    # The dashboard is served by the read API and writes here from the browser (#14): a cross-origin
    # request, which the browser makes only if this API names the dashboard's origin (CORS).
    dashboard_origins: str = Field(
        "",
        description="Origins (`scheme://host[:port]`, comma-separated) of dashboards allowed to call this API "
        "from a browser. Empty: the origin of PUBLIC_BASE_URL, the read API's dashboard (in development also "
        "its `localhost` / `127.0.0.1` twin).",
    )

    @field_validator("dashboard_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        for origin in (o.strip() for o in value.split(",") if o.strip()):
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query:
                raise ValueError(f"{origin!r} is not an origin: scheme://host[:port], no path, no `*`")
        return value

    @property
    def dashboard_origin_list(self) -> list[str]:
        """The origins whose pages may call this API (CORS), as the browser spells them."""
        given = [o.strip().rstrip("/") for o in self.dashboard_origins.split(",") if o.strip()]
        if given:
            return given
        parts = urlsplit(self.public_base_url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if not self.is_development:
            return [origin]
        twins = {"127.0.0.1": "localhost", "localhost": "127.0.0.1"}
        twin = twins.get(parts.hostname or "")
        return [origin] + ([origin.replace(parts.hostname, twin, 1)] if twin else [])


def get_settings() -> Settings:
    return load_settings(Settings)
