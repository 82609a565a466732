from pydantic import Field

from shared.settings import CommonSettings, load_settings


class Settings(CommonSettings):
    response_time_port: int = Field(8083, description="Port of the health endpoints.")
    consumer_group_name = "response-time"  # default group: KAFKA_TOPIC_PREFIX + this
    response_time_batch_size: int = Field(
        500, ge=1, le=10_000, description="Most alert events applied in one PostgreSQL transaction.")
    response_time_reevaluate_seconds: float = Field(
        60.0, gt=0,
        description="How often every tenant's figures are re-evaluated (a safety net: each tenant is also "
        "re-evaluated at its next edge, when a response leaves the 30-day window or atRisk flips).")
    response_time_status_pause_seconds: float = Field(
        0.2, ge=0,
        description="Pause between re-evaluations of tenants whose alerts changed: a burst of events yields "
        "one requirement-status event per tenant and pause; a change is published within about this.")
    response_time_publish_timeout_seconds: float = Field(
        5.0, gt=0,
        description="Most seconds the outbox relay waits for the broker to acknowledge a batch of events "
        "(alert-response-times, requirement-status); they stay in the outbox and are published again later.")
    outbox_alarm_seconds: float = Field(
        60.0, gt=0,
        description="`/health/ready` reports the outbox failing once its oldest waiting event is older than this "
        "(the relay cannot publish: the broker away, or a fault of the relay; the check says which).")


def get_settings() -> Settings:
    return load_settings(Settings)
