from pydantic import Field

from shared.settings import CommonSettings, load_settings


class Settings(CommonSettings):
    read_api_port: int = Field(8082, description="Port of the read API and the dashboard.")
    consumer_group_name = "scoring"  # default group: KAFKA_TOPIC_PREFIX + this
    redis_key_prefix: str = Field(
        "scoring:",
        min_length=1,
        description="Prefix of every Redis key this service writes (one namespace per deployment).",
    )
    cache_check_seconds: float = Field(
        1.0, gt=0, description="How often the service checks that Redis still holds the score cache."
    )
    retry_after_seconds: int = Field(
        1, ge=1, description="`Retry-After` of the 503 answered while the score cache is rebuilt."
    )
    redis_connect_timeout_seconds: float = Field(
        2.0, gt=0, description="Most seconds a connection to Redis may take before the read answers 503."
    )
    redis_command_timeout_seconds: float = Field(
        2.0,
        gt=0,
        description="Most seconds Redis may take to answer a command before the read answers 503 "
        "(each command is one small hash or script: milliseconds when Redis is well).",
    )
    score_publish_timeout_seconds: float = Field(
        5.0,
        gt=0,
        description="Most seconds a `score-changed` publish may wait for the broker; the change stays in the "
        "outbox and is published again later.",
    )
    activation_check_max_seconds: float = Field(
        60.0,
        gt=0,
        description="Longest sleep of the timer that records preview requirements becoming active.",
    )


def get_settings() -> Settings:
    return load_settings(Settings)
