"""The offboarded tenants every service keeps (#18), on the real PostgreSQL: recorded once (the first
time stays), looked up one by one or for a batch of events; a look-up in an apply transaction waits for
an offboarding of the tenant in progress, and then sees it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from shared import offboarding
from shared.events import Event

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def connect(own_database: str):
    """Connections to a schema of this test holding the table as shared.offboarding describes it."""
    schema = f"offboarding_{uuid.uuid4().hex[:8]}"
    opened: list[asyncpg.Connection] = []

    async def connection() -> asyncpg.Connection:
        opened.append(await asyncpg.connect(own_database, server_settings={"search_path": schema}))
        return opened[-1]

    setup = await asyncpg.connect(own_database)
    await setup.execute(f"CREATE SCHEMA {schema}; SET search_path TO {schema}; {offboarding.OFFBOARDED_TENANTS_DDL}")
    await setup.close()
    yield connection
    for each in opened:
        await each.close()


@pytest_asyncio.fixture
async def conn(connect):
    return await connect()


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


async def test_a_look_up_in_an_apply_waits_for_the_offboarding_in_progress_and_sees_it(connect, tenant_id):
    offboarder, applier = await connect(), await connect()
    offboarding_done = offboarder.transaction()
    await offboarding_done.start()
    await offboarding.lock_for_offboarding(offboarder, tenant_id)
    await offboarding.record_offboarded(offboarder, tenant_id, datetime.now(UTC))
    async with applier.transaction():
        looking = asyncio.create_task(offboarding.is_offboarded(applier, tenant_id))
        await asyncio.sleep(0.5)
        assert not looking.done(), "an apply must not decide while the tenant is being offboarded"
        await offboarding_done.commit()
        assert await asyncio.wait_for(looking, 10), "once committed, the offboarding is seen"
        batch = asyncio.create_task(offboarding.offboarded_among(applier, [tenant_id, f"{tenant_id}-kept"]))
        assert await asyncio.wait_for(batch, 10) == {tenant_id}


async def test_an_offboarding_waits_for_the_applies_that_looked_before_it(connect, tenant_id):
    offboarder, applier, other = await connect(), await connect(), await connect()
    applying = applier.transaction()
    await applying.start()
    assert not await offboarding.is_offboarded(applier, tenant_id)  # and then it writes the tenant's rows
    offboarding_it = offboarder.transaction()
    await offboarding_it.start()
    locking = asyncio.create_task(offboarding.lock_for_offboarding(offboarder, tenant_id))
    await asyncio.sleep(0.5)
    assert not locking.done(), "the offboarding must wait for the apply: its deletes would miss the apply's rows"
    async with other.transaction():  # another tenant's applies are not held up
        assert not await asyncio.wait_for(offboarding.is_offboarded(other, f"{tenant_id}-other"), 5)
    await applying.commit()
    await asyncio.wait_for(locking, 10)
    await offboarding_it.commit()


@dataclass
class Batch:
    answer: Any  # what the batch's look-up answered
    statements: list[str]  # the applier's, from the look-up on
    applier: asyncpg.Connection


async def look_during_offboardings(connect, tenants: list[str], look: Callable[[asyncpg.Connection], Awaitable[Any]],
                                   prepare: Callable[[asyncpg.Connection], Awaitable[Any]] | None = None) -> Batch:
    """What a batch's look-up must do about offboardings, whatever the look-up: while ``tenants[1]`` is
    being offboarded it waits, and then sees it; until it commits, its locks hold off the offboarding of
    ``tenants[2]``."""
    offboarder, applier = await connect(), await connect()
    if prepare is not None:
        await prepare(applier)
    statements: list[str] = []
    applier.add_query_logger(lambda record: statements.append(record.query))
    offboarding_b = offboarder.transaction()
    await offboarding_b.start()
    await offboarding.lock_for_offboarding(offboarder, tenants[1])
    await offboarding.record_offboarded(offboarder, tenants[1], datetime.now(UTC))
    applying = applier.transaction()
    await applying.start()
    looking = asyncio.create_task(look(applier))
    await asyncio.sleep(0.5)
    assert not looking.done(), "the batch must wait for the offboarding of one of its tenants"
    await offboarding_b.commit()
    answer = await asyncio.wait_for(looking, 10)

    offboarding_c = offboarder.transaction()
    await offboarding_c.start()
    locking = asyncio.create_task(offboarding.lock_for_offboarding(offboarder, tenants[2]))
    await asyncio.sleep(0.5)
    assert not locking.done(), "the batch's lock on each tenant holds off its offboarding"
    await applying.commit()
    await asyncio.wait_for(locking, 10)
    await offboarding_c.commit()
    return Batch(answer, statements, applier)


async def test_a_batch_of_many_tenants_takes_each_ones_lock_in_one_statement(connect, tenant_id):
    """A batch's look-up locks all its tenants at once (one round trip)."""
    tenants = [f"{tenant_id}-a", f"{tenant_id}-b", f"{tenant_id}-c"]
    batch = await look_during_offboardings(connect, tenants, lambda applier: offboarding.offboarded_among(applier,
                                                                                                        tenants))
    assert batch.answer == {tenants[1]}
    assert len([s for s in batch.statements if "pg_advisory_xact_lock_shared" in s]) == 1, batch.statements


async def test_claiming_a_batch_locks_its_tenants_with_the_claim_and_then_sees_an_offboarding(connect, tenant_id):
    """claim_events: the ids claimed and the tenants locked in one statement, the look at the offboarded
    tenants in the next (two round trips); the offboarded tenant's events dropped; a batch claimed again
    adds nothing, in one statement."""
    tenants = [f"{tenant_id}-a", f"{tenant_id}-b", f"{tenant_id}-c"]
    events = [Event(event_type="test", tenant_id=tenant) for tenant in tenants for _ in range(2)]

    async def ledger(applier: asyncpg.Connection) -> None:
        await applier.execute("CREATE TABLE processed_events (consumer text NOT NULL, event_id uuid NOT NULL, "
                              "PRIMARY KEY (consumer, event_id))")

    batch = await look_during_offboardings(
        connect, tenants, lambda applier: offboarding.claim_events(applier, "test-consumer", events), ledger)
    assert batch.answer == [e for e in events if e.tenant_id != tenants[1]]
    ours = [s for s in batch.statements if "processed_events" in s or "offboarded_tenants" in s or "advisory" in s]
    assert len(ours) == 2 and "pg_advisory_xact_lock_shared" in ours[0], ours

    batch.statements.clear()
    async with batch.applier.transaction():
        assert await offboarding.claim_events(batch.applier, "test-consumer", events) == []
    assert len([s for s in batch.statements if "processed_events" in s or "offboarded_tenants" in s]) == 1, \
        batch.statements
