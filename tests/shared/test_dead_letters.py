"""Dead letters: one envelope for both kinds; on the real broker a poison record goes to the
dead-letter topic as that envelope and the consumer moves on; a failing handler does not commit, so
the record is processed again."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from faststream.kafka import KafkaRouter
from faststream.middlewares import AckPolicy
from pydantic import BaseModel

from shared.dead_letters import DeadLetter, dead_delivery, poison_record, publish_dead_letter
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
    assert [d["headers"]["eventType"] for d in dead] == ["poison-record", "poison-record"]
    assert dead[0]["headers"]["dlq.error"] == "ValidationError"
    assert dead[0]["headers"]["dlq.source"].startswith(f"{source}[")
    assert dead[0]["key"] == "k", "a poison record keeps its key"
    invalid, undecodable = (DeadLetter.model_validate(d["value"]) for d in dead)
    assert (invalid.kind, invalid.error_type, invalid.consumer) == ("poison-record", "ValidationError", "dlq-test")
    assert invalid.source == dead[0]["headers"]["dlq.source"] == (
        f"{source}[{invalid.record.partition}]@{invalid.record.offset}")
    assert invalid.record.headers == {"eventType": "ping"}, "the original headers are in the envelope"
    assert invalid.record.original_bytes() == b'{"n": "not a number"}'
    # FastStream reports undecodable JSON as a validation error of the message model.
    assert undecodable.error_type == dead[1]["headers"]["dlq.error"] == "ValidationError"
    assert undecodable.record.original_bytes() == b"{not json", "the dead letter keeps the original bytes"


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
    letters = [DeadLetter.model_validate(d["value"]) for d in dead]
    assert [d.record.original_bytes() for d in letters] == [b'{"n": "malformed"}'], "only the malformed one is poison"
    assert dead[0]["headers"]["dlq.error"] == "ValidationError"


# --- the envelope, with no broker ----------------------------------------------------------------------


def _record(value: bytes | None, headers=(), key: bytes | None = b"t1:a1") -> SimpleNamespace:
    return SimpleNamespace(topic="p-alerts", partition=2, offset=41, key=key, value=value, headers=list(headers))


def test_both_kinds_parse_as_the_one_envelope():
    poison = poison_record(_record(b'{"alert": 7}', [("eventType", b"alert-created"), ("tenantId", b"t1")]),
                           ValueError("alert: not an object"), consumer="response-time")
    dead = dead_delivery(
        event_id=uuid.uuid4(), tenant_id="t1", delivery_id="d-1", alert_id="a1", channel="webhook:jira",
        kind="alert", attempts=8, last_error="HTTP 503", last_attempt_date_time=datetime(2026, 12, 1, tzinfo=UTC))
    for letter in (poison, dead):
        parsed = DeadLetter.model_validate_json(letter.model_dump_json())
        assert parsed == letter
        assert parsed.headers()["eventType"] == parsed.kind
    # A poison record's dead letter keeps the record's own headers (but eventType: the kind).
    assert poison.headers()["tenantId"] == "t1"
    assert dead.headers()["eventId"] == str(dead.event_id)
    assert (poison.kind, poison.tenant_id, poison.source, poison.reason) == (
        "poison-record", "t1", "p-alerts[2]@41", "alert: not an object")
    assert poison.record.headers == {"eventType": "alert-created", "tenantId": "t1"}
    assert (dead.kind, dead.source, dead.error_type, dead.delivery.channel, dead.delivery.last_error) == (
        "dead-delivery", "delivery d-1 to webhook:jira", "DeliveryFailed", "webhook:jira", "HTTP 503")
    wire = dead.model_dump(mode="json")
    assert wire["eventType"] == "dead-delivery" and wire["delivery"]["deliveryId"] == "d-1"
    assert wire["occurredDateTime"].endswith("Z")


def test_a_record_of_any_bytes_gets_its_dead_letter():
    # Whatever a bad record holds, its dead letter can be made (or the consumer would be stuck on it).
    for value in (b"\xff\xfe\x00binary", b"", None, b'{"n": "\\u0000"}', b"ok\x00"):
        letter = poison_record(_record(value, [("h", b"\xff")], key=b"\xff"), ValueError("bad"), consumer="c")
        assert DeadLetter.model_validate_json(letter.model_dump_json()).record.original_bytes() == (value or b"")
    assert poison_record(_record(b"\xff"), ValueError("x"), consumer="c").record.value_encoding == "base64"


def test_a_dead_letter_carries_the_payload_of_its_kind_only():
    letter = poison_record(_record(b"x"), ValueError("bad"), consumer="c").model_dump(mode="json")
    with pytest.raises(ValueError, match="poison-record"):
        DeadLetter.model_validate({**letter, "record": None})
    with pytest.raises(ValueError, match="dead-delivery"):
        DeadLetter.model_validate({**letter, "eventType": "dead-delivery"})


class _HungBroker:
    async def publish(self, *_: object, **__: object) -> None:
        await asyncio.Event().wait()


async def test_a_dead_letter_publish_is_bounded_by_its_timeout():
    letter = poison_record(_record(b"x"), ValueError("bad"), consumer="c")
    started = asyncio.get_running_loop().time()
    with pytest.raises(TimeoutError):
        await publish_dead_letter(_HungBroker(), "dead-letter", letter, timeout=0.2)
    assert asyncio.get_running_loop().time() - started < 2
