"""The offboarded tenants every service keeps (#18), on the real PostgreSQL: recorded once (the first
time stays), looked up one by one or for a batch of events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import pytest_asyncio

from shared import offboarding

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def conn(own_database: str):
    schema = f"offboarding_{uuid.uuid4().hex[:8]}"
    connection = await asyncpg.connect(own_database)
    await connection.execute(f"CREATE SCHEMA {schema}; SET search_path TO {schema}; "
                             f"{offboarding.OFFBOARDED_TENANTS_DDL}")
    yield connection
    await connection.close()


async def test_a_tenant_is_recorded_once_and_keeps_its_first_time(conn, tenant_id):
    first = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    assert not await offboarding.is_offboarded(conn, tenant_id)
    assert await offboarding.offboarded_at(conn, tenant_id) is None
    async with conn.transaction():
        assert await offboarding.record_offboarded(conn, tenant_id, first)
    async with conn.transaction():  # told again (a replayed event): nothing changes
        assert not await offboarding.record_offboarded(conn, tenant_id, first + timedelta(hours=1))
    assert await offboarding.is_offboarded(conn, tenant_id)
    assert await offboarding.offboarded_at(conn, tenant_id) == first
    assert not await offboarding.is_offboarded(conn, f"{tenant_id}-other")


async def test_the_offboarded_among_a_batch_of_tenants(conn, tenant_id):
    gone, kept = f"{tenant_id}-gone", f"{tenant_id}-kept"
    await offboarding.record_offboarded(conn, gone, datetime.now(UTC))
    assert await offboarding.offboarded_among(conn, [kept, gone, gone]) == {gone}
    assert await offboarding.offboarded_among(conn, []) == set()
