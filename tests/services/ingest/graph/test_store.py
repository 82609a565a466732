"""The Partner Center connection's store on the real PostgreSQL: connections and their audit entries,
poll leases (one poller per connection, a replaced connection's old poll records nothing), each
alert's sync state and its events in the outbox, write-back leases (one write at a time per alert, in
order; an outcome recorded only for the change written), resealing under a new key.

Each test has a migrated database of its own (``own_database``): the claims take any due connection
or write-back, and no other test's (nor the ``system`` fixture's poller) may take this test's.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest_asyncio
from cryptography.fernet import Fernet

from services.ingest.graph import store
from shared.auth import AuditActor
from shared.db import create_pool
from shared.sealed import seal, unseal

DIRECTORY = "72f988bf-86f1-41af-91ab-2d7cd011db47"
APP = "11111111-2222-3333-4444-555555555555"
KEYS = [Fernet.generate_key().decode()]
ANA = AuditActor("ana", "key-1")


@pytest_asyncio.fixture
async def pool(own_database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(own_database, schema="ingest")
    yield pool
    await pool.close()


async def put(
    pool, tenant_id: str = "t1", *, directory_id: str = DIRECTORY, enabled: bool = True, secret: str = "s3cret"
) -> bool:
    return await store.put_connection(
        pool,
        tenant_id,
        directory_id=directory_id,
        client_id=APP,
        credential_type="clientSecret",
        sealed_credentials=seal(json.dumps({"clientSecret": secret}), KEYS),
        certificate_thumbprint=None,
        enabled=enabled,
        actor=ANA,
    )


async def sync_events(pool, tenant_id: str = "t1") -> list[dict]:
    """The alert-sync events waiting in the outbox (no relay runs on this database), in order."""
    rows = await pool.fetch(
        """SELECT convert_from(key, 'UTF8') AS key, convert_from(value, 'UTF8') AS value FROM outbox
           WHERE topic = 'alert-sync' AND convert_from(key, 'UTF8') LIKE $1 || ':%' ORDER BY id""",
        tenant_id,
    )
    return [{"key": r["key"], **json.loads(r["value"])} for r in rows]


async def in_transaction(pool, work):
    async with pool.acquire() as conn, conn.transaction():
        return await work(conn)


async def sync_row(pool, alert_id: str, tenant_id: str = "t1") -> asyncpg.Record:
    return await pool.fetchrow(
        "SELECT * FROM graph_alert_sync WHERE tenant_id = $1 AND alert_id = $2", tenant_id, alert_id
    )


async def claimed_while_another_claim_is_uncommitted(pool, claim):
    """``claim(db)`` on a connection whose transaction stays open, then on the pool: what each took.
    The second must pass over the rows the first locked, not wait for them."""
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            first = await claim(conn)
            second = await asyncio.wait_for(claim(pool), timeout=5)
        finally:
            await transaction.rollback()
    return first, second


def at(minute: int) -> datetime:
    return datetime(2026, 3, 1, 12, minute, tzinfo=UTC)


# --- connections -------------------------------------------------------------------------------------


async def test_a_connection_is_created_replaced_and_deleted_each_audited_never_with_its_secret(pool):
    assert await put(pool) is True
    first = await store.get_connection(pool, "t1")
    assert (first.directory_id, first.client_id, first.credential_type, first.enabled, first.generation) == (
        DIRECTORY,
        APP,
        "clientSecret",
        True,
        1,
    )
    assert (first.alerts_seen, first.writebacks_pending, first.writebacks_failed, first.last_error) == (0, 0, 0, None)
    assert first.next_poll_at <= datetime.now(UTC)

    assert await put(pool, enabled=False, secret="rotated") is False
    second = await store.get_connection(pool, "t1")
    assert (second.generation, second.enabled, second.created_at) == (2, False, first.created_at)
    assert second.updated_at > first.updated_at
    sealed = await pool.fetchval("SELECT sealed_credentials FROM graph_connections WHERE tenant_id = 't1'")
    assert json.loads(unseal(sealed, KEYS)) == {"clientSecret": "rotated"}

    assert await store.delete_connection(pool, "t1", actor=ANA) is True
    assert await store.get_connection(pool, "t1") is None
    assert await store.delete_connection(pool, "t1", actor=ANA) is False

    audit = await pool.fetch("SELECT * FROM auth.audit_log WHERE tenant_id = 't1' ORDER BY entry_id")
    assert [(a["action"], a["target"], a["user_id"], a["key_id"]) for a in audit] == [
        ("graph-connection-created", "connections/graph", "ana", "key-1"),
        ("graph-connection-replaced", "connections/graph", "ana", "key-1"),
        ("graph-connection-deleted", "connections/graph", "ana", "key-1"),
    ]
    assert json.loads(audit[1]["changes"]) == {
        "directoryId": DIRECTORY,
        "clientId": APP,
        "credentialType": "clientSecret",
        "certificateThumbprint": None,
        "enabled": False,
    }
    text = json.dumps([dict(a) for a in audit], default=str)
    assert "s3cret" not in text and "rotated" not in text and sealed not in text


async def test_a_put_clears_the_error_makes_the_connection_due_and_keeps_the_cursor_of_the_same_directory(pool):
    await put(pool)
    claimed = await store.claim_due_connection(pool, owner="i1", lease_seconds=60)
    await store.finish_poll(
        pool,
        claimed,
        owner="i1",
        ok=True,
        error=None,
        alerts_seen=3,
        next_poll_at=datetime.now(UTC) + timedelta(hours=1),
        changes_since=at(0),
    )
    claimed = await store.claim_due_connection(pool, owner="i1", lease_seconds=60)
    assert claimed is None  # not due for an hour
    await pool.execute("UPDATE graph_connections SET next_poll_at = now()")
    claimed = await store.claim_due_connection(pool, owner="i1", lease_seconds=60)
    await store.finish_poll(
        pool,
        claimed,
        owner="i1",
        ok=False,
        error="GET securityAlerts: 503",
        alerts_seen=0,
        next_poll_at=datetime.now(UTC) + timedelta(hours=1),
        changes_since=at(0),
    )
    failing = await store.get_connection(pool, "t1")
    assert (failing.last_error, failing.consecutive_failures) == ("GET securityAlerts: 503", 1)

    await put(pool, directory_id=DIRECTORY.upper())  # the same directory (ids are case-insensitive)
    replaced = await store.get_connection(pool, "t1")
    assert (replaced.last_error, replaced.last_error_at, replaced.consecutive_failures) == (None, None, 0)
    assert replaced.next_poll_at <= datetime.now(UTC)
    claimed = await store.claim_due_connection(pool, owner="i1", lease_seconds=60)
    assert claimed.changes_since == at(0) and claimed.generation == 2
    await store.finish_poll(
        pool,
        claimed,
        owner="i1",
        ok=True,
        error=None,
        alerts_seen=0,
        next_poll_at=datetime.now(UTC),
        changes_since=at(5),
    )

    await put(pool, directory_id="contoso.onmicrosoft.com")  # another directory: its alerts read whole
    claimed = await store.claim_due_connection(pool, owner="i1", lease_seconds=60)
    assert claimed.changes_since is None and claimed.directory_id == "contoso.onmicrosoft.com"


async def test_a_deleted_connection_keeps_its_write_backs_for_the_next_one(pool):
    await put(pool)
    await in_transaction(pool, lambda c: store.mark_seen(c, "t1", [("a1", None)], now=at(0)))
    await in_transaction(
        pool,
        lambda c: store.request_writeback(
            c, "t1", "a1", status="resolved", resolved_reason="legitimate", changed_at=at(1), changed_by="ana"
        ),
    )
    await store.delete_connection(pool, "t1")
    assert await store.claim_due_writebacks(pool, limit=10, lease_seconds=60) == []  # no credentials to write with
    await put(pool)
    assert (await store.get_connection(pool, "t1")).writebacks_pending == 1
    [claimed] = await store.claim_due_writebacks(pool, limit=10, lease_seconds=60)
    assert (claimed.alert_id, claimed.pending_status, claimed.pending_resolved_reason) == (
        "a1",
        "resolved",
        "legitimate",
    )


# --- polls --------------------------------------------------------------------------------------------


async def test_only_due_enabled_connections_without_a_live_lease_are_claimed_one_poller_each(pool):
    for tenant in ("t1", "t2", "t3"):
        await put(pool, tenant)
    await put(pool, "off", enabled=False)
    await pool.execute("UPDATE graph_connections SET next_poll_at = now() + interval '1 hour' WHERE tenant_id = 't3'")
    await pool.execute("UPDATE graph_connections SET next_poll_at = now() - interval '1 minute' WHERE tenant_id = 't2'")

    claims = await asyncio.gather(
        *(store.claim_due_connection(pool, owner=f"i{n}", lease_seconds=60) for n in range(4))
    )
    taken = [c for c in claims if c is not None]
    assert sorted(c.tenant_id for c in taken) == ["t1", "t2"]  # each once; t3 not due, "off" disabled
    assert await store.claim_due_connection(pool, owner="again", lease_seconds=60) is None  # both leased
    t2 = next(c for c in taken if c.tenant_id == "t2")
    assert t2.lease_until > datetime.now(UTC) + timedelta(seconds=50)
    assert (await store.get_connection(pool, "t2")).last_poll_at is not None

    # A poller that died: its lease runs out and another takes the connection.
    await pool.execute("UPDATE graph_connections SET lease_until = now() - interval '1 second' WHERE tenant_id = 't2'")
    retaken = await store.claim_due_connection(pool, owner="i9", lease_seconds=60)
    assert retaken.tenant_id == "t2"
    owner = await pool.fetchval("SELECT lease_owner FROM graph_connections WHERE tenant_id = 't2'")
    assert owner == "i9"
    # The first poller's late outcome is not recorded: the lease is another's now.
    first_owner = f"i{claims.index(t2)}"
    assert (
        await store.finish_poll(
            pool, t2, owner=first_owner, ok=True, error=None, alerts_seen=1, next_poll_at=at(0), changes_since=at(0)
        )
        is False
    )
    assert await pool.fetchval("SELECT lease_owner FROM graph_connections WHERE tenant_id = 't2'") == "i9"


async def test_a_claim_passes_over_the_connection_another_claim_holds_without_waiting(pool):
    await put(pool, "t1")
    await put(pool, "t2")
    first, second = await claimed_while_another_claim_is_uncommitted(
        pool, lambda db: store.claim_due_connection(db, owner="i", lease_seconds=60))
    assert sorted([first.tenant_id, second.tenant_id]) == ["t1", "t2"]


async def test_a_finished_poll_records_its_outcome_and_lets_go_of_the_lease(pool):
    await put(pool)
    claimed = await store.claim_due_connection(pool, owner="i1", lease_seconds=60)
    soon = datetime.now(UTC) + timedelta(seconds=15)
    assert (
        await store.finish_poll(
            pool,
            claimed,
            owner="i1",
            ok=False,
            error="token: AADSTS7000215",
            alerts_seen=0,
            next_poll_at=soon,
            changes_since=None,
        )
        is True
    )
    state = await store.get_connection(pool, "t1")
    assert (state.last_error, state.consecutive_failures, state.next_poll_at, state.last_success_at) == (
        "token: AADSTS7000215",
        1,
        soon,
        None,
    )
    assert state.last_error_at is not None
    assert await pool.fetchval("SELECT lease_owner FROM graph_connections") is None

    await pool.execute("UPDATE graph_connections SET next_poll_at = now()")
    claimed = await store.claim_due_connection(pool, owner="i1", lease_seconds=60)
    assert claimed.consecutive_failures == 1 and claimed.changes_since is None
    later = datetime.now(UTC) + timedelta(minutes=5)
    assert (
        await store.finish_poll(
            pool, claimed, owner="i1", ok=True, error=None, alerts_seen=7, next_poll_at=later, changes_since=at(3)
        )
        is True
    )
    state = await store.get_connection(pool, "t1")
    assert (state.last_error, state.consecutive_failures, state.next_poll_at, state.last_poll_alerts) == (
        None,
        0,
        later,
        7,
    )
    assert state.last_success_at is not None
    assert await pool.fetchval("SELECT changes_since FROM graph_connections") == at(3)


async def test_a_poll_of_a_replaced_connection_records_nothing_and_the_new_one_is_polled_after_it(pool):
    await put(pool)
    claimed = await store.claim_due_connection(pool, owner="i1", lease_seconds=60)
    await put(pool, secret="rotated")  # replaced while polled
    # The old poll still holds its lease: the new generation waits for it (never two polls at once).
    assert await store.claim_due_connection(pool, owner="i2", lease_seconds=60) is None
    assert (
        await store.finish_poll(
            pool,
            claimed,
            owner="i1",
            ok=False,
            error="invalid_client",
            alerts_seen=0,
            next_poll_at=datetime.now(UTC) + timedelta(hours=1),
            changes_since=None,
        )
        is False
    )
    state = await store.get_connection(pool, "t1")
    assert (state.last_error, state.consecutive_failures, state.generation) == (None, 0, 2)
    assert state.next_poll_at <= datetime.now(UTC)
    renewed = await store.claim_due_connection(pool, owner="i2", lease_seconds=60)
    assert renewed.generation == 2
    assert json.loads(unseal(renewed.sealed_credentials, KEYS)) == {"clientSecret": "rotated"}


async def test_a_deleted_connections_poll_records_nothing(pool):
    await put(pool)
    claimed = await store.claim_due_connection(pool, owner="i1", lease_seconds=60)
    await store.delete_connection(pool, "t1")
    assert (
        await store.finish_poll(
            pool, claimed, owner="i1", ok=True, error=None, alerts_seen=1, next_poll_at=at(0), changes_since=at(0)
        )
        is False
    )
    assert await store.get_connection(pool, "t1") is None


# --- sync state --------------------------------------------------------------------------------------


async def test_alerts_seen_by_a_poll_are_synced_and_told_once_until_partner_center_changes_them(pool):
    await put(pool)
    new = await in_transaction(
        pool, lambda c: store.mark_seen(c, "t1", [("a2", at(1)), ("a1", None), ("a2", at(2))], now=at(10))
    )
    assert new == 2
    events = await sync_events(pool)
    assert [(e["key"], e["eventType"], e["sync"]) for e in events] == [
        (
            "t1:a1",
            "alert-sync-changed",
            {
                "state": "synced",
                "lastSyncedDateTime": "2026-03-01T12:10:00Z",
                "pendingStatus": None,
                "attempts": 0,
                "lastError": None,
            },
        ),
        (
            "t1:a2",
            "alert-sync-changed",
            {
                "state": "synced",
                "lastSyncedDateTime": "2026-03-01T12:10:00Z",
                "pendingStatus": None,
                "attempts": 0,
                "lastError": None,
            },
        ),
    ]
    assert (await sync_row(pool, "a2"))["graph_activity_at"] == at(2)  # the newest of the two

    # Read again as they were (or with an older activity): nothing changed, nothing told.
    assert (
        await in_transaction(pool, lambda c: store.mark_seen(c, "t1", [("a1", None), ("a2", at(1))], now=at(20))) == 0
    )
    assert len(await sync_events(pool)) == 2
    # Partner Center changed a1 (a first activity) and a2 (a newer one): synced again, told.
    await in_transaction(pool, lambda c: store.mark_seen(c, "t1", [("a1", at(15)), ("a2", at(16))], now=at(30)))
    events = await sync_events(pool)
    assert [(e["key"], e["sync"]["lastSyncedDateTime"]) for e in events[2:]] == [
        ("t1:a1", "2026-03-01T12:30:00Z"),
        ("t1:a2", "2026-03-01T12:30:00Z"),
    ]
    assert [e["occurredDateTime"] for e in events] == sorted(e["occurredDateTime"] for e in events)
    assert (await store.get_connection(pool, "t1")).alerts_seen == 2


async def test_a_response_to_an_alert_from_partner_center_is_queued_and_told_as_pending(pool):
    await put(pool)
    await in_transaction(pool, lambda c: store.mark_seen(c, "t1", [("a1", None)], now=at(0)))
    queued = await in_transaction(
        pool,
        lambda c: store.request_writeback(
            c, "t1", "a1", status="investigating", resolved_reason=None, changed_at=at(1), changed_by="ana"
        ),
    )
    assert queued is True
    # An alert that did not come from Partner Center (posted to the webhook) has nothing to write back.
    assert (
        await in_transaction(
            pool,
            lambda c: store.request_writeback(
                c, "t1", "posted", status="resolved", resolved_reason="fraud", changed_at=at(1), changed_by="ana"
            ),
        )
        is False
    )
    assert await sync_row(pool, "posted") is None

    row = await sync_row(pool, "a1")
    assert (row["state"], row["pending_status"], row["changed_at"], row["changed_by"], row["attempts"]) == (
        "pending",
        "investigating",
        at(1),
        "ana",
        0,
    )
    assert row["next_attempt_at"] <= datetime.now(UTC)
    last = (await sync_events(pool))[-1]
    assert last["sync"] == {
        "state": "pending",
        "lastSyncedDateTime": "2026-03-01T12:00:00Z",
        "pendingStatus": "investigating",
        "attempts": 0,
        "lastError": None,
    }
    assert (await store.get_connection(pool, "t1")).writebacks_pending == 1


async def test_a_rolled_back_response_queues_and_tells_nothing(pool):
    await put(pool)
    await in_transaction(pool, lambda c: store.mark_seen(c, "t1", [("a1", None)], now=at(0)))

    async def then_fail(conn):
        await store.request_writeback(
            conn, "t1", "a1", status="resolved", resolved_reason="fraud", changed_at=at(1), changed_by="ana"
        )
        raise RuntimeError("the recording failed after queueing")

    try:
        await in_transaction(pool, then_fail)
    except RuntimeError:
        pass
    assert (await sync_row(pool, "a1"))["state"] == "synced"
    assert [e["sync"]["state"] for e in await sync_events(pool)] == ["synced"]


async def test_a_poll_sees_the_waiting_responses_and_partner_centers_newer_change_wins(pool):
    await put(pool)
    await in_transaction(
        pool, lambda c: store.mark_seen(c, "t1", [("a1", None), ("a2", None), ("a3", None)], now=at(0))
    )
    for alert_id in ("a1", "a2"):
        await in_transaction(
            pool,
            lambda c, a=alert_id: store.request_writeback(
                c, "t1", a, status="resolved", resolved_reason="legitimate", changed_at=at(5), changed_by="ana"
            ),
        )
    await pool.execute("UPDATE graph_alert_sync SET state = 'failed', last_error = '403' WHERE alert_id = 'a2'")

    waiting = await in_transaction(pool, lambda c: store.pending_writebacks(c, "t1", ["a1", "a2", "a3", "zz"]))
    assert sorted(waiting) == ["a1", "a2"]
    assert (waiting["a1"].state, waiting["a1"].pending_status, waiting["a1"].changed_at, waiting["a1"].changed_by) == (
        "pending",
        "resolved",
        at(5),
        "ana",
    )
    assert waiting["a2"].state == "failed"

    # Partner Center's change at 12:07 is newer than the response of 12:05: the response is dropped.
    assert (
        await in_transaction(
            pool, lambda c: store.supersede_writeback(c, "t1", "a1", graph_activity_at=at(7), now=at(8))
        )
        is True
    )
    assert (
        await in_transaction(
            pool, lambda c: store.supersede_writeback(c, "t1", "a2", graph_activity_at=at(7), now=at(8))
        )
        is True
    )
    assert (
        await in_transaction(
            pool, lambda c: store.supersede_writeback(c, "t1", "a3", graph_activity_at=at(7), now=at(8))
        )
        is False
    )  # nothing was waiting
    row = await sync_row(pool, "a1")
    assert (row["state"], row["pending_status"], row["last_synced_at"], row["graph_activity_at"]) == (
        "synced",
        None,
        at(8),
        at(7),
    )
    assert [e["sync"]["state"] for e in (await sync_events(pool))[-2:]] == ["synced", "synced"]
    state = await store.get_connection(pool, "t1")
    assert (state.writebacks_pending, state.writebacks_failed) == (0, 0)
    # Seen by the same poll afterwards: as superseded, no second event.
    told = len(await sync_events(pool))
    await in_transaction(pool, lambda c: store.mark_seen(c, "t1", [("a1", at(7))], now=at(8)))
    assert len(await sync_events(pool)) == told


async def test_a_poll_keeps_a_waiting_responses_state_and_notes_partner_centers_activity(pool):
    await put(pool)
    await in_transaction(pool, lambda c: store.mark_seen(c, "t1", [("a1", None)], now=at(0)))
    await in_transaction(
        pool,
        lambda c: store.request_writeback(
            c, "t1", "a1", status="resolved", resolved_reason="fraud", changed_at=at(5), changed_by="ana"
        ),
    )
    told = len(await sync_events(pool))
    await in_transaction(pool, lambda c: store.mark_seen(c, "t1", [("a1", at(3))], now=at(9)))
    row = await sync_row(pool, "a1")
    assert (row["state"], row["graph_activity_at"], row["last_synced_at"]) == ("pending", at(3), at(0))
    assert len(await sync_events(pool)) == told


# --- write-backs ---------------------------------------------------------------------------------------


async def queued(pool, alert_id: str, minute: int, *, tenant_id: str = "t1", status: str = "resolved") -> None:
    async def work(conn):
        await store.mark_seen(conn, tenant_id, [(alert_id, None)], now=at(0))
        await store.request_writeback(
            conn,
            tenant_id,
            alert_id,
            status=status,
            resolved_reason="legitimate",
            changed_at=at(minute),
            changed_by="ana",
        )

    await in_transaction(pool, work)


async def test_due_write_backs_are_claimed_once_each_with_their_connections_credentials(pool):
    await put(pool)
    await put(pool, "off", enabled=False)
    for n in range(5):
        await queued(pool, f"a{n}", n)
    await queued(pool, "x", 1, tenant_id="off")
    await pool.execute("UPDATE graph_alert_sync SET next_attempt_at = now() + interval '1 hour' WHERE alert_id = 'a4'")

    batches = await asyncio.gather(*(store.claim_due_writebacks(pool, limit=2, lease_seconds=60) for _ in range(3)))
    claimed = [w for batch in batches for w in batch]
    assert sorted(w.alert_id for w in claimed) == ["a0", "a1", "a2", "a3"]  # once each; a4 not due, x disabled
    assert await store.claim_due_writebacks(pool, limit=10, lease_seconds=60) == []
    # A claim not committed yet holds its rows: a second claim takes others, without waiting.
    await pool.execute("UPDATE graph_alert_sync SET lease_until = NULL, attempts = 0 WHERE tenant_id = 't1'")
    first, second = await claimed_while_another_claim_is_uncommitted(
        pool, lambda db: store.claim_due_writebacks(db, limit=2, lease_seconds=60))
    assert len(first) == len(second) == 2 and not {w.alert_id for w in first} & {w.alert_id for w in second}
    claimed = await store.claim_due_writebacks(pool, limit=10, lease_seconds=60)  # the first one rolled back
    w = next(w for w in claimed if w.alert_id == "a1")
    assert (w.tenant_id, w.attempts, w.directory_id, w.client_id, w.credential_type, w.generation) == (
        "t1",
        1,
        DIRECTORY,
        APP,
        "clientSecret",
        1,
    )
    assert (w.pending_status, w.pending_resolved_reason, w.changed_at, w.changed_by) == (
        "resolved",
        "legitimate",
        at(1),
        "ana",
    )
    assert json.loads(unseal(w.sealed_credentials, KEYS)) == {"clientSecret": "s3cret"}


async def test_a_write_back_retried_failed_and_succeeded_each_told(pool):
    await put(pool)
    await queued(pool, "a1", 1)
    [w] = await store.claim_due_writebacks(pool, limit=10, lease_seconds=60)
    later = datetime.now(UTC) + timedelta(seconds=30)
    assert (
        await store.writeback_retry(pool, w, error="PATCH securityAlerts: 429 TooManyRequests", next_attempt_at=later)
        is True
    )
    row = await sync_row(pool, "a1")
    assert (row["state"], row["next_attempt_at"], row["lease_until"], row["attempts"]) == ("pending", later, None, 1)
    assert await store.claim_due_writebacks(pool, limit=10, lease_seconds=60) == []  # not due yet

    await pool.execute("UPDATE graph_alert_sync SET next_attempt_at = now()")
    [w] = await store.claim_due_writebacks(pool, limit=10, lease_seconds=60)
    assert w.attempts == 2
    assert await store.writeback_failed(pool, w, error="PATCH securityAlerts: 403 Forbidden") is True
    assert await store.claim_due_writebacks(pool, limit=10, lease_seconds=60) == []
    assert (await store.get_connection(pool, "t1")).writebacks_failed == 1

    await queued(pool, "a1", 9, status="active")  # a new response: pending again
    [w] = await store.claim_due_writebacks(pool, limit=10, lease_seconds=60)
    assert (w.attempts, w.pending_status) == (1, "active")
    assert await store.writeback_succeeded(pool, w, now=at(10), graph_activity_at=at(10)) is True
    row = await sync_row(pool, "a1")
    assert (
        row["state"],
        row["last_synced_at"],
        row["graph_activity_at"],
        row["pending_status"],
        row["lease_until"],
    ) == ("synced", at(10), at(10), None, None)

    syncs = [e["sync"] for e in await sync_events(pool)]
    assert [(s["state"], s["attempts"], s["lastError"]) for s in syncs] == [
        ("synced", 0, None),
        ("pending", 0, None),
        ("pending", 1, "PATCH securityAlerts: 429 TooManyRequests"),
        ("failed", 2, "PATCH securityAlerts: 403 Forbidden"),
        ("pending", 0, None),  # the new response (the alert seen again as it was: nothing)
        ("synced", 0, None),
    ]
    assert syncs[-1]["lastSyncedDateTime"] == "2026-03-01T12:10:00Z"


async def test_a_newer_response_waits_for_the_write_in_flight_whose_outcome_is_then_not_recorded(pool):
    await put(pool)
    await queued(pool, "a1", 1)
    [first] = await store.claim_due_writebacks(pool, limit=10, lease_seconds=60)
    await queued(pool, "a1", 2, status="investigating")  # replaces the change, not the lease
    assert await store.claim_due_writebacks(pool, limit=10, lease_seconds=60) == []  # in order: after the first

    # The first write landed: Partner Center's activity is noted, the newer change stays pending.
    assert await store.writeback_succeeded(pool, first, now=at(3), graph_activity_at=at(3)) is False
    row = await sync_row(pool, "a1")
    assert (row["state"], row["pending_status"], row["graph_activity_at"], row["lease_until"]) == (
        "pending",
        "investigating",
        at(3),
        None,
    )
    [second] = await store.claim_due_writebacks(pool, limit=10, lease_seconds=60)
    assert (second.pending_status, second.changed_at, second.attempts) == ("investigating", at(2), 1)
    # A late outcome of the first write touches neither the change nor the second's lease.
    assert await store.writeback_failed(pool, first, error="403") is False
    assert await store.writeback_retry(pool, first, error="503", next_attempt_at=at(0)) is False
    row = await sync_row(pool, "a1")
    assert (row["state"], row["lease_until"], row["last_error"]) == ("pending", second.lease_until, None)
    assert await store.writeback_succeeded(pool, second, now=at(4), graph_activity_at=at(4)) is True
    assert (await sync_row(pool, "a1"))["state"] == "synced"


async def test_an_expired_lease_is_taken_by_another_worker_and_the_first_ones_outcome_is_dropped(pool):
    await put(pool)
    await queued(pool, "a1", 1)
    [first] = await store.claim_due_writebacks(pool, limit=10, lease_seconds=60)
    await pool.execute("UPDATE graph_alert_sync SET lease_until = now() - interval '1 second'")
    [second] = await store.claim_due_writebacks(pool, limit=10, lease_seconds=60)
    assert (second.changed_at, second.attempts) == (first.changed_at, 2)
    assert await store.writeback_retry(pool, first, error="timeout", next_attempt_at=at(0)) is False
    assert (await sync_row(pool, "a1"))["lease_until"] == second.lease_until
    assert await store.writeback_succeeded(pool, second, now=at(5), graph_activity_at=None) is True


async def test_a_superseded_write_back_in_flight_is_let_go_of(pool):
    await put(pool)
    await queued(pool, "a1", 1)
    [w] = await store.claim_due_writebacks(pool, limit=10, lease_seconds=60)
    await in_transaction(pool, lambda c: store.supersede_writeback(c, "t1", "a1", graph_activity_at=at(2), now=at(2)))
    await queued(pool, "a1", 3)
    assert await store.claim_due_writebacks(pool, limit=10, lease_seconds=60) == []  # the lease still holds
    await store.release_writeback(pool, w)
    [again] = await store.claim_due_writebacks(pool, limit=10, lease_seconds=60)
    assert again.changed_at == at(3)
    await store.release_writeback(pool, w)  # not its lease any more: nothing
    assert (await sync_row(pool, "a1"))["lease_until"] == again.lease_until


# --- sealing keys ---------------------------------------------------------------------------------------


async def test_credentials_are_resealed_under_the_new_first_key_once(pool):
    old, new, lost = (Fernet.generate_key().decode() for _ in range(3))
    for tenant, key in (("t1", old), ("t2", new), ("t3", lost)):
        await store.put_connection(
            pool,
            tenant,
            directory_id=DIRECTORY,
            client_id=APP,
            credential_type="clientSecret",
            sealed_credentials=seal(f"secret-{tenant}", [key]),
            certificate_thumbprint=None,
        )
    before = {r["tenant_id"]: r["sealed_credentials"] for r in await pool.fetch("SELECT * FROM graph_connections")}

    assert await store.reseal_credentials(pool, [new, old]) == 1
    after = {r["tenant_id"]: r["sealed_credentials"] for r in await pool.fetch("SELECT * FROM graph_connections")}
    assert unseal(after["t1"], [new]) == "secret-t1"  # the old key is no longer needed
    assert after["t2"] == before["t2"]  # already under the first key: untouched
    assert after["t3"] == before["t3"]  # no key opens it: left for a new PUT
    assert await store.reseal_credentials(pool, [new, old]) == 0
