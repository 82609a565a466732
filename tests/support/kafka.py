"""Reading and writing the real broker's topics from tests."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from shared.events import Event


class Pinged(Event):
    """An event of no service: what the tests of the shared consuming and publishing code send."""

    event_type: Literal["pinged"] = "pinged"
    n: int


async def read_topic(bootstrap: str, topic: str, *, count: int | None = None, timeout: float = 10.0,
                     predicate=None, isolation_level: str = "read_committed") -> list[dict[str, Any]]:
    """Every record of ``topic`` from the beginning (or until ``count`` matching ones arrived).

    Each record comes back as ``{"key", "headers", "value", "partition", "offset"}`` with the value
    decoded from JSON when it is JSON.
    """
    # read_committed by default: what the services' consumers see (ingest publishes in Kafka
    # transactions); read_uncommitted shows aborted records too.
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"test-{uuid.uuid4()}",
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                isolation_level=isolation_level)
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while (remaining := deadline - asyncio.get_running_loop().time()) > 0:
            batch = await consumer.getmany(timeout_ms=int(min(remaining, 0.5) * 1000))
            for records in batch.values():
                for r in records:
                    item = {"key": r.key.decode() if r.key else None,
                            "headers": {k: v.decode() for k, v in r.headers},
                            "value": _decode(r.value),
                            "partition": r.partition, "offset": r.offset}
                    if predicate is None or predicate(item):
                        found.append(item)
            if count is not None and len(found) >= count:
                break
            if count is None and not batch and found:
                break
    finally:
        await consumer.stop()
    return found


def _decode(value: bytes | None) -> Any:
    """JSON when it is JSON (dead letters may hold anything), else the text."""
    if not value:
        return None
    try:
        return json.loads(value)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return value.decode(errors="replace")


async def produce(bootstrap: str, topic: str, value: bytes, *, key: bytes | None = None,
                  headers: dict[str, str] | None = None) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key,
                                     headers=[(k, v.encode()) for k, v in (headers or {}).items()])
    finally:
        await producer.stop()


async def delete_topics_with_prefix(bootstrap: str, prefix: str) -> list[str]:
    """Delete every topic whose name starts with ``prefix`` (a test's own run); returns their names."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        ours = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if ours:
            await admin.delete_topics(ours)
        return ours
    finally:
        await admin.close()
