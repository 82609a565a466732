"""PostgreSQL I/O of the response-time service (its ``response_time`` schema; nothing else reads it)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from services.response_time import domain
from services.response_time.domain import AlertClock, Response
from shared import outbox
from shared.alerts import Alert
from shared.events import AlertCreated, AlertUpdated, RequirementStatusObserved, Topic
from shared.offboarding import claim_events, is_offboarded
from shared.response_time import (
    ResponseTimeFigures,
    WindowAggregates,
    figures,
    window_aggregates_of,
    window_aggregates_sql,
    window_start,
)

CONSUMER = "response-time"

log = logging.getLogger(__name__)

_CLOCK_COLUMNS = """tenant_id, alert_id, alert, state_as_of, clock_started_at, created_seen, ingested_at,
                    responded_at, responded_by"""


def _clock(row: asyncpg.Record) -> AlertClock:
    response = Response(row["responded_at"], row["responded_by"]) if row["responded_at"] is not None else None
    return AlertClock(row["tenant_id"], row["alert_id"], Alert.model_validate_json(row["alert"]),
                      row["state_as_of"], row["clock_started_at"], row["created_seen"], row["ingested_at"],
                      response)


async def apply_events(pool: asyncpg.Pool, events: Sequence[AlertCreated | AlertUpdated]) -> list[str]:
    """Apply a batch of alert events in one transaction (:func:`apply_events_in`)."""
    async with pool.acquire() as conn, conn.transaction():
        return await apply_events_in(conn, events)


async def apply_events_in(conn: asyncpg.Connection, events: Sequence[AlertCreated | AlertUpdated]) -> list[str]:
    """Apply alert events in the caller's transaction; returns the tenants whose alerts changed.

    Each event id is claimed in the dedupe ledger (``processed_events``) in the transaction that
    applies it, so an event already applied (a redelivery, or a replay after a crash mid-batch) is
    dropped, and a crash before the commit leaves neither the claims nor the effects. So is an event
    of an offboarded tenant (``shared.offboarding.claim_events``, under the tenants' offboarding
    locks, shared: an offboarding under way is waited for). Each alert whose row changed is saved, its
    tenant marked for re-evaluation, and, if what ``alert-response-times`` says of it changed, its
    new state enqueued in the outbox (published once the transaction commits, never before). Seven
    round trips per batch, whatever its size (claim, look up the offboarded tenants, lock the alerts,
    read their rows, upsert, mark the tenants, enqueue), and the tenants' offboarding locks.
    """
    todo = await claim_events(conn, CONSUMER, events)
    if not todo:
        return []
    keys = sorted({domain.alert_key(e) for e in todo})
    # The outbox rows of an alert are ordered by this lock: enqueued while it is held.
    await _lock_alerts(conn, keys)
    rows = await conn.fetch(
        f"""SELECT {_CLOCK_COLUMNS} FROM alerts
            WHERE (tenant_id, alert_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
            ORDER BY tenant_id, alert_id FOR UPDATE""",
        [k[0] for k in keys], [k[1] for k in keys])
    before: dict[tuple[str, str], AlertClock] = {(r["tenant_id"], r["alert_id"]): _clock(r) for r in rows}
    clocks = dict(before)
    for event in todo:
        key = domain.alert_key(event)
        clocks[key] = domain.apply(clocks.get(key), event)
    changed = {k: clocks[k] for k in keys if clocks[k] != before.get(k)}
    if not changed:
        return []
    # One statement for the batch (one row per key: ``changed`` is keyed by alert), not one per alert.
    await conn.execute(_SAVE, *(list(column) for column in zip(*map(_save_args, changed.values()), strict=True)))
    tenants = sorted({k[0] for k in changed})
    await mark_dirty(conn, tenants)
    await outbox.enqueue_many(
        conn, [(Topic.alert_response_times, e) for e in domain.response_time_changes(before, changed)])
    return tenants


async def _lock_alerts(conn: asyncpg.Connection, keys: Sequence[tuple[str, str]]) -> None:
    """Hold each alert's advisory lock until the transaction ends, whether or not its row exists yet.

    A row lock alone cannot serialise two events of a new alert (two consumers briefly holding one
    partition during a rebalance): neither finds a row to lock, both fold their event into "no
    state", and the last write wins. The locks are taken in the order of their keys, so two batches
    never wait for each other crosswise; two alerts sharing a hash only wait for each other.
    """
    await conn.execute(
        """SELECT pg_advisory_xact_lock(lock_key)
           FROM (SELECT DISTINCT hashtextextended('response-time-alert:' || t || ':' || a, 0) AS lock_key
                 FROM unnest($1::text[], $2::text[]) AS alert(t, a)
                 ORDER BY lock_key) AS locks""",
        [k[0] for k in keys], [k[1] for k in keys])


async def apply_alert_created(pool: asyncpg.Pool, event: AlertCreated) -> bool:
    """One event alone (tests, tools); False if it changed nothing (applied before, or nothing new)."""
    return bool(await apply_events(pool, [event]))


async def apply_alert_updated(pool: asyncpg.Pool, event: AlertUpdated) -> bool:
    return bool(await apply_events(pool, [event]))


_SAVE = """INSERT INTO alerts (tenant_id, alert_id, display_name, alert_type, severity, status,
                               customer_tenant_id, is_test, detected_at, clock_started_at, alert, ingested_at,
                               created_seen, state_as_of, responded_at, responded_by, latency_us)
           SELECT tenant_id, alert_id, display_name, alert_type, severity, status, customer_tenant_id, is_test,
                  detected_at, clock_started_at, alert::jsonb, ingested_at, created_seen, state_as_of, responded_at,
                  responded_by, latency_us
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                       $8::boolean[], $9::timestamptz[], $10::timestamptz[], $11::text[], $12::timestamptz[],
                       $13::boolean[], $14::timestamptz[], $15::timestamptz[], $16::text[], $17::bigint[])
                AS a(tenant_id, alert_id, display_name, alert_type, severity, status, customer_tenant_id, is_test,
                     detected_at, clock_started_at, alert, ingested_at, created_seen, state_as_of, responded_at,
                     responded_by, latency_us)
           ON CONFLICT (tenant_id, alert_id) DO UPDATE SET
               display_name = EXCLUDED.display_name, alert_type = EXCLUDED.alert_type,
               severity = EXCLUDED.severity, status = EXCLUDED.status,
               customer_tenant_id = EXCLUDED.customer_tenant_id, is_test = EXCLUDED.is_test,
               detected_at = EXCLUDED.detected_at, clock_started_at = EXCLUDED.clock_started_at,
               alert = EXCLUDED.alert, ingested_at = EXCLUDED.ingested_at,
               created_seen = EXCLUDED.created_seen,
               state_as_of = EXCLUDED.state_as_of, responded_at = EXCLUDED.responded_at,
               responded_by = EXCLUDED.responded_by, latency_us = EXCLUDED.latency_us, updated_at = now()"""


def _save_args(clock: AlertClock) -> tuple:
    alert = clock.alert
    response = clock.response
    return (clock.tenant_id, clock.alert_id, alert.display_name, alert.alert_type,
            alert.severity.value if alert.severity else None, clock.status, alert.customer_tenant_id,
            clock.is_test, alert.detected_date_time, clock.clock_started_at, alert.model_dump_json(),
            clock.ingested_at, clock.created_seen, clock.state_as_of, response.at if response else None,
            response.by if response else None, clock.latency_us)


# --- the figures --------------------------------------------------------------------------------

# Two index range scans (alerts_responded_window, alerts_open_unresolved_clock): O(window + open), not
# O(history). What it sums is shared.response_time.WindowAggregates (aggregate() is the reference).
_AGGREGATES = window_aggregates_sql("alerts")


async def window_aggregates(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str,
                            now: datetime) -> WindowAggregates:
    row = await conn.fetchrow(_AGGREGATES, tenant_id, window_start(now), now)
    return window_aggregates_of(row)


async def current_figures(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str,
                          now: datetime) -> ResponseTimeFigures:
    return figures(await window_aggregates(conn, tenant_id, now), now)


# --- re-evaluation bookkeeping ------------------------------------------------------------------------


async def mark_dirty(conn: asyncpg.Connection | asyncpg.Pool, tenants: Sequence[str]) -> None:
    await conn.execute(
        "INSERT INTO response_time_dirty (tenant_id) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
        list(tenants))


async def take_dirty(pool: asyncpg.Pool, limit: int = 1000) -> list[str]:
    """Remove and return marked tenants; a mark set after this is evaluated in a later round."""
    rows = await pool.fetch(
        """DELETE FROM response_time_dirty WHERE tenant_id IN (
               SELECT tenant_id FROM response_time_dirty ORDER BY tenant_id LIMIT $1 FOR UPDATE SKIP LOCKED)
           RETURNING tenant_id""", limit)
    return sorted(r["tenant_id"] for r in rows)


async def any_dirty(pool: asyncpg.Pool) -> bool:
    return bool(await pool.fetchval("SELECT EXISTS (SELECT 1 FROM response_time_dirty)"))


async def record_next_edge(conn: asyncpg.Connection, tenant_id: str, edge: datetime | None) -> None:
    """When the tenant's figures may next change with no event (``domain.next_edge``)."""
    await conn.execute("UPDATE response_time_tenants SET next_edge_at = $2 WHERE tenant_id = $1",
                       tenant_id, edge)


async def due_tenants(pool: asyncpg.Pool, now: datetime) -> list[str]:
    rows = await pool.fetch("SELECT tenant_id FROM response_time_tenants WHERE next_edge_at <= $1", now)
    return sorted(r["tenant_id"] for r in rows)


async def next_edge(pool: asyncpg.Pool) -> datetime | None:
    """The earliest edge of all tenants (through ``response_time_tenants_next_edge``)."""
    return await pool.fetchval("SELECT min(next_edge_at) FROM response_time_tenants")


async def all_tenants(pool: asyncpg.Pool) -> list[str]:
    rows = await pool.fetch(
        "SELECT tenant_id FROM response_time_tenants UNION SELECT tenant_id FROM response_time_dirty")
    return sorted(r["tenant_id"] for r in rows)


@dataclass(frozen=True)
class LastPublished:
    """What the tenant's status row says was published last (both None before the first time)."""

    key: dict[str, Any] | None
    observed_at: datetime | None


async def lock_tenant(conn: asyncpg.Connection, tenant_id: str) -> LastPublished | None:
    """Lock the tenant's status row (serialising the evaluators of every instance).

    Returns the key and ``observedDateTime`` of the last published figures; None, and no row, if the
    tenant is offboarded (its figures are never evaluated, nor published, again).
    """
    if await is_offboarded(conn, tenant_id):
        return None
    await conn.execute(
        "INSERT INTO response_time_tenants (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING", tenant_id)
    row = await conn.fetchrow(
        """UPDATE response_time_tenants SET evaluated_at = now() WHERE tenant_id = $1
           RETURNING last_key, last_published_at""",
        tenant_id)
    return LastPublished(json.loads(row["last_key"]) if row["last_key"] else None, row["last_published_at"])


async def record_published(conn: asyncpg.Connection, event: RequirementStatusObserved,
                           published: ResponseTimeFigures) -> None:
    """Enqueue the tenant's status (published once the transaction commits) and record it as the last.

    Call it holding the tenant's row lock (:func:`lock_tenant`): the statuses of a tenant are enqueued
    in the order they are recorded.
    """
    await outbox.enqueue(conn, Topic.requirement_status, event)
    await conn.execute(
        """UPDATE response_time_tenants
           SET last_key = $2::jsonb, last_figures = $3::jsonb, last_published_at = $4
           WHERE tenant_id = $1""",
        event.tenant_id, json.dumps(domain.emission_key(published)), published.model_dump_json(),
        event.observed_date_time)
