"""On the real broker: a poison record goes to the dead-letter topic and the consumer moves on;
a failing handler does not commit, so the record is processed again."""

from __future__ import annotations

import asyncio
import uuid

from faststream.kafka import KafkaRouter
from faststream.middlewares import AckPolicy
from pydantic import BaseModel

from shared.events import Topic
from shared.kafka import DeadLetterMiddleware, ensure_topics, make_broker, topic_name
from shared.settings import CommonSettings
from tests.support.kafka import produce, read_topic


class Ping(BaseModel):
    n: int


async def test_poison_goes_to_dead_letters_and_the_consumer_moves_on(test_env, kafka_bootstrap, topic_prefix):
    settings = CommonSettings(kafka_topic_prefix=f"{topic_prefix}dlq-{uuid.uuid4().hex[:6]}-")
    await ensure_topics(kafka_bootstrap, settings.kafka_topic_prefix)
    source = topic_name(settings, Topic.alerts)
    seen: list[int] = []
    failures = {"left": 1}

    broker = make_broker(settings, client_id="dlq-test")

    @broker.subscriber(source, group_id="dlq-test", auto_offset_reset="earliest",
                       ack_policy=AckPolicy.NACK_ON_ERROR)
    async def handle(message: Ping) -> None:
        if message.n == 3 and failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("database briefly unreachable")
        seen.append(message.n)

    DeadLetterMiddleware.retry_pause_seconds = 0.1
    await produce(kafka_bootstrap, source, b'{"n": 1}', key=b"k")
    await produce(kafka_bootstrap, source, b'{"n": "not a number"}', key=b"k", headers={"eventType": "ping"})
    await produce(kafka_bootstrap, source, b"{not json", key=b"k")
    await produce(kafka_bootstrap, source, b'{"n": 3}', key=b"k")
    await broker.start()
    try:
        for _ in range(100):
            if seen == [1, 3]:
                break
            await asyncio.sleep(0.1)
    finally:
        await broker.stop()
        DeadLetterMiddleware.retry_pause_seconds = 1.0
    assert seen == [1, 3], "the consumer must skip both poison records and retry the failed one"
    dead = await read_topic(kafka_bootstrap, topic_name(settings, Topic.dead_letter), count=2)
    assert len(dead) == 2
    assert dead[0]["headers"]["dlq.error"] == "ValidationError"
    assert dead[0]["headers"]["eventType"] == "ping"
    assert dead[0]["headers"]["dlq.source"].startswith(f"{source}[")
    # FastStream reports undecodable JSON as a validation error of the message model.
    assert dead[1]["headers"]["dlq.error"] == "ValidationError"
    assert dead[1]["value"] == "{not json", "the dead letter keeps the original bytes"


class StoredRoute(BaseModel):
    """Stands for a row the handler reads from its own store (e.g. a channel's routes)."""

    severities: list[str]


async def test_a_validation_error_of_the_handlers_own_code_is_retried_not_dead_lettered(
    test_env, kafka_bootstrap, topic_prefix
):
    # Only a bad *message* is poison. A handler that fails on something of its own (a bad stored
    # route) after the message was decoded is not committed: the record is consumed again.
    settings = CommonSettings(kafka_topic_prefix=f"{topic_prefix}dlq-{uuid.uuid4().hex[:6]}-")
    await ensure_topics(kafka_bootstrap, settings.kafka_topic_prefix)
    source = topic_name(settings, Topic.alerts)
    attempts: list[int] = []
    router = KafkaRouter()  # the services subscribe through routers; the broker applies the middleware

    @router.subscriber(source, group_id="dlq-test", auto_offset_reset="earliest",
                       ack_policy=AckPolicy.NACK_ON_ERROR)
    async def handle(message: Ping) -> None:
        attempts.append(message.n)
        if len(attempts) == 1:
            StoredRoute.model_validate({"severities": "not a list"})  # raises pydantic's ValidationError

    broker = make_broker(settings, client_id="dlq-test")
    broker.include_router(router)
    DeadLetterMiddleware.retry_pause_seconds = 0.1
    await produce(kafka_bootstrap, source, b'{"n": 7}', key=b"k")
    await produce(kafka_bootstrap, source, b'{"n": "malformed"}', key=b"k", headers={"eventType": "ping"})
    await produce(kafka_bootstrap, source, b'{"n": 8}', key=b"k")
    await broker.start()
    try:
        for _ in range(100):
            if attempts == [7, 7, 8]:
                break
            await asyncio.sleep(0.1)
    finally:
        await broker.stop()
        DeadLetterMiddleware.retry_pause_seconds = 1.0
    assert attempts == [7, 7, 8], "the record whose handler failed must be consumed again, then the next"
    dead = await read_topic(kafka_bootstrap, topic_name(settings, Topic.dead_letter), timeout=5)
    assert [d["value"] for d in dead] == [{"n": "malformed"}], "only the malformed message is poison"
    assert dead[0]["headers"]["dlq.error"] == "ValidationError"
