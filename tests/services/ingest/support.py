"""Helpers of the ingest tests: the write API in-process, reading a tenant's events; the private
Kafka broker to stop (``PrivateKafka``) lives in ``tests/support/private_infra.py`` beside
PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from aiokafka import AIOKafkaConsumer

from services.ingest.app import create_app
from shared.events import Event, Topic
from shared.kafka import event_headers
from tests.support.kafka import produce, read_topic
from tests.support.private_infra import PrivateKafka

__all__ = ["PrivateKafka", "alert_records", "publish", "running_ingest", "topic_records"]


@asynccontextmanager
async def running_ingest() -> AsyncIterator[httpx.AsyncClient]:
    """The write API in this process, started (relay, consumer) and stopped with its lifespan, with
    the settings of the environment; ``client.app`` is the app."""
    app = create_app()
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingest") as client,
    ):
        client.app = app
        yield client


async def topic_records(test_env: dict[str, str], topic: Topic, key_prefix: str, *,
                        count: int | None = None, timeout: float = 20) -> list[dict]:
    """The records of ``topic`` whose key starts with ``key_prefix``: ``count`` of them (waiting up to
    ``timeout``), or with no count every one there is, read to the end."""
    return await read_topic(test_env["KAFKA_BOOTSTRAP_SERVERS"], f"{test_env['KAFKA_TOPIC_PREFIX']}{topic.value}",
                            count=count, timeout=timeout,
                            predicate=lambda r: (r["key"] or "").startswith(key_prefix))


async def publish(test_env: dict[str, str], topic: Topic, *events: Event) -> None:
    """Put ``events`` on ``topic`` as their owner would (key, JSON body, eventType header)."""
    for event in events:
        await produce(test_env["KAFKA_BOOTSTRAP_SERVERS"], f"{test_env['KAFKA_TOPIC_PREFIX']}{topic.value}",
                      event.model_dump_json().encode(), key=event.kafka_key(),
                      headers={"content-type": "application/json", **event_headers(event)})


async def alert_records(
    bootstrap: str, topic_prefix: str, tenant_id: str, *, at_least: int, within: float = 30
) -> list[dict]:
    """Every record of ``tenant_id`` on the alerts topic, read committed, once ``at_least`` arrived."""
    topic = f"{topic_prefix}alerts"
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"test-{uuid.uuid4()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    found: list[dict] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    if record.key and record.key.decode().startswith(f"{tenant_id}:"):
                        found.append(
                            {
                                "key": record.key.decode(),
                                "partition": record.partition,
                                "offset": record.offset,
                                "headers": {k: v.decode() for k, v in record.headers},
                                "value": json.loads(record.value),
                            }
                        )
            # Enough, and read to the end of the topic: extra (wrong) records would have been seen too.
            if len(found) >= at_least and not batch:
                break
    finally:
        await consumer.stop()
    return found
