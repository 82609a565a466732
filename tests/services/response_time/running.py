"""The response-time service as a process of a test, on topics of that test."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer

from shared.events import Event
from shared.kafka import event_headers


async def produce_all(bootstrap: str, topic: str, events: list[Event]) -> None:
    """Publish ``events`` in this order, as ingest does (key, ``eventType`` header)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", linger_ms=5)
    await producer.start()
    try:
        sent = [
            await producer.send(
                topic,
                e.model_dump_json().encode(),
                key=e.kafka_key(),
                headers=[(k, v.encode()) for k, v in event_headers(e).items()],
            )
            for e in events
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def service(make_service, prefix: str, database_url: str, **env: str):
    """A response-time process on the topics of ``prefix`` and the database at ``database_url``."""
    return make_service("response-time", KAFKA_TOPIC_PREFIX=prefix, DATABASE_URL=database_url, **env)
