from typing import Self

from pydantic import Field, model_validator
from redis.asyncio.connection import parse_url

from shared.settings import CommonSettings, load_settings


class Settings(CommonSettings):
    read_api_port: int = Field(8082, description="Port of the read API and the dashboard.")
    consumer_group_name = "scoring"  # default group: KAFKA_TOPIC_PREFIX + this
    redis_key_prefix: str = Field(
        "scoring:",
        min_length=1,
        description="Prefix of every Redis key this service writes (one namespace per deployment).",
    )
    redis_cluster: bool = Field(
        False,
        description="`REDIS_URL` names a node of a Redis Cluster (any one: the client finds the others and the "
        "slots); database 0, no unix socket. Off: one Redis server (or a cluster-aware proxy).",
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
        description="Most seconds the outbox relay waits for the broker to acknowledge a batch of `score-changed` "
        "events; they stay in the outbox and are published again later.",
    )
    outbox_alarm_seconds: float = Field(
        60.0,
        gt=0,
        description="`/health/ready` reports the outbox failing once its oldest waiting event is older than this "
        "(the relay cannot publish: the broker away, or a fault of the relay; the check says which).",
    )
    activation_check_max_seconds: float = Field(
        60.0,
        gt=0,
        description="Longest sleep of the timer that records preview requirements becoming active.",
    )

    read_model_batch_size: int = Field(
        200, ge=1, le=5000, description="Most `deliveries` or `alerts` events the read model applies in one "
        "PostgreSQL transaction.",
    )

    changes_ping_seconds: float = Field(
        15.0, gt=0, description="How often an open `GET /changes` stream sends a keep-alive comment (so proxies "
        "keep an idle stream open).",
    )

    @model_validator(mode="after")
    def _cluster_url(self) -> Self:
        # Refused at start-up with the setting's name rather than by the client at its first command.
        if self.redis_cluster:
            parsed = parse_url(self.redis_url)
            if parsed.get("path"):
                raise ValueError("REDIS_CLUSTER: a Redis Cluster is reached over TCP, not a unix socket (REDIS_URL)")
            if int(parsed.get("db") or 0) != 0:
                raise ValueError("REDIS_CLUSTER: a Redis Cluster has database 0 only; REDIS_URL names another")
        return self


def get_settings() -> Settings:
    return load_settings(Settings)
