"""Helpers of the ingest tests: reading a tenant's alert events; the private Kafka broker to stop
(``PrivateKafka``) now lives in ``tests/support/private_infra.py`` beside PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import json
import uuid

from aiokafka import AIOKafkaConsumer

from tests.support.private_infra import PrivateKafka

__all__ = ["PrivateKafka", "alert_records"]


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
