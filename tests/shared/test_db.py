"""Migrations and the idempotency ledger, on the real PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import uuid

from shared.db import (
    COMPONENTS,
    application_name,
    apply_migrations,
    claim_event,
    create_pool,
    migration_files,
    prune_forever,
    prune_processed_events,
)


async def test_migrations_are_applied_once_even_when_processes_race(test_env, schema_pool):
    # The test database already has every migration; applying again, from three processes at once,
    # applies nothing and fails nowhere (advisory lock).
    results = await asyncio.gather(*(apply_migrations(test_env["DATABASE_URL"]) for _ in range(3)))
    assert results == [[], [], []]
    for component in COMPONENTS:
        pool = await schema_pool(component.schema)
        versions = [r["version"] for r in await pool.fetch("SELECT version FROM schema_migrations ORDER BY 1")]
        assert versions == [v for v, _, _ in migration_files(component.migrations)], component.schema


async def test_an_event_is_claimed_once_per_consumer_and_old_claims_are_pruned(schema_pool):
    pool = await schema_pool("scoring")  # every consuming component's schema has the same ledger
    event_id = uuid.uuid4()
    async with pool.acquire() as conn:
        assert await claim_event(conn, "test-consumer", event_id)
        assert not await claim_event(conn, "test-consumer", event_id)
        assert await claim_event(conn, "other-consumer", event_id)
        old_id = uuid.uuid4()
        await conn.execute("INSERT INTO processed_events (consumer, event_id, processed_at) "
                           "VALUES ('test-consumer', $1, now() - interval '40 days')", old_id)
    assert await prune_processed_events(pool) >= 1
    left = {r["event_id"] for r in await pool.fetch(
        "SELECT event_id FROM processed_events WHERE event_id = ANY($1::uuid[])", [event_id, old_id])}
    assert left == {event_id}


async def test_a_connection_given_back_inside_a_transaction_is_rolled_back_without_the_reset_query(test_env):
    # The pool skips asyncpg's reset query (shared.db.create_pool) but keeps its first step: what a
    # connection left uncommitted is rolled back before anyone acquires it again.
    pool = await create_pool(test_env["DATABASE_URL"], schema="public", max_size=1)
    try:
        statements: list[str] = []
        async with pool.acquire() as conn:
            conn.add_query_logger(lambda record: statements.append(record.query))
            await conn.execute("BEGIN")
            await conn.execute("CREATE TABLE reset_probe (x int)")
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT to_regclass('reset_probe')") is None
            assert await conn.fetchval("SHOW search_path") == "public"
        assert "ROLLBACK" in statements
        assert not any("RESET ALL" in s for s in statements)
    finally:
        await pool.close()


async def test_sessions_name_their_component_in_pg_stat_activity(test_env):
    # An operator reading pg_stat_activity (or a log line with %a) sees which service holds a session.
    pool = await create_pool(test_env["DATABASE_URL"], schema="response_time", max_size=1)
    try:
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()"
                                       ) == "csp-response-time"
    finally:
        await pool.close()
    assert application_name("notifier", "outbox-relay") == "csp-notifier outbox-relay"


async def test_a_prune_runs_again_while_it_finds_rows_and_survives_a_failure(caplog):
    # No I/O: a prune that deletes in batches (3, then 2, then none), fails once, then finds nothing.
    caplog.set_level(logging.INFO, logger="shared.db")
    answers: list[int | Exception] = [3, 2, 0, ConnectionError("database away"), 0]
    calls = 0
    all_asked = asyncio.Event()

    async def prune() -> int:
        nonlocal calls
        calls += 1
        answer = answers.pop(0)
        if not answers:
            all_asked.set()
        if isinstance(answer, Exception):
            raise answer
        return answer

    task = asyncio.create_task(prune_forever(prune, "test rows", every_seconds=0.01))
    try:
        await asyncio.wait_for(all_asked.wait(), 5)
    finally:
        task.cancel()
    assert calls == 5
    messages = [r.getMessage() for r in caplog.records]
    assert "pruned 3 test rows" in messages and "pruned 2 test rows" in messages
    assert "pruning test rows failed: database away" in messages
