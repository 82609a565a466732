"""Pools that see the response-time service's schema alone (as the service's own pool does), and topics
of one test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest_asyncio
from aiokafka.admin import AIOKafkaAdminClient

from shared.db import create_pool
from shared.kafka import ensure_topics

SCHEMA = "response_time"


@pytest_asyncio.fixture(scope="session")
async def rt_pool(test_env: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    """The session database's ``response_time`` schema."""
    pool = await create_pool(test_env["DATABASE_URL"], schema=SCHEMA)
    yield pool
    await pool.close()


@pytest_asyncio.fixture
async def own_rt_pool(own_database: str) -> AsyncIterator[asyncpg.Pool]:
    """The ``response_time`` schema of ``own_database`` (a database of this test alone)."""
    pool = await create_pool(own_database, schema=SCHEMA)
    yield pool
    await pool.close()


@pytest_asyncio.fixture
async def prefix(topic_prefix: str, kafka_bootstrap: str) -> AsyncIterator[str]:
    """A topic prefix of this test alone; its topics are deleted afterwards."""
    own = f"{topic_prefix}rt-{uuid.uuid4().hex[:6]}-"
    created = await ensure_topics(kafka_bootstrap, own)
    yield own
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(created)
    finally:
        await admin.close()
