"""PostgreSQL I/O of the read API's read model: what other services own, kept from their events.

Tables of the scoring schema, one per topic: ``alert_response_times`` (each alert as the
response-time service knows it; a new alert from its ``alert-created`` until that service's event of it
comes, with the state that event will bring), ``deliveries`` (each notification, as the notifier shows it),
``customer_mfa`` (each customer's MFA figures, as the write API took them; a customer a later report
left out is a tombstone row, migration 0073, that no read lists), all three of migration 0071,
``alert_sync`` (each alert's sync state with Partner Center, as the write API's Graph connector tells
it, migration 0074; joined to its alert at read time, so either may arrive first), and ``alert_triage``
(each alert's assignee and count of notes, from ``alert-triage``, migration 0075; joined likewise).
Besides, each alert's timeline (``timeline.py``, ``timeline_store.py``): every event that tells of one
alert, those of ``alerts`` included, records its entry in the transaction that applies it. The events
of ``deliveries`` and ``alerts`` come in batches (#15), one transaction per batch, each table written in
one statement (``apply_deliveries``, ``apply_alert_events``); those of the other topics one at a time.
Each event is applied once (its id claimed in ``processed_events`` in the transaction of the change),
and a row only ever moves to a newer event of its key: an older one arriving late (a replay, a
consumer catching up) changes nothing. Ties (the same instant) go to the later record, the owner's order on
the key's partition. So consuming a topic from the beginning rebuilds a table exactly. An event of an
offboarded tenant is dropped (``store.claim``, a batch's ``shared.offboarding.claim_events``): a rebuild
brings nothing of it back (``offboarding.py``).

The routes read these tables only (``routes_alerts``, ``routes_response_time``, ``routes_deliveries``,
``routes_customers``, ``routes_timeline``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from services.scoring import store, timeline, timeline_store, trend
from shared.events import (
    AlertAssigned,
    AlertCreated,
    AlertNoteAdded,
    AlertResponseTimeChanged,
    AlertSyncChanged,
    AlertUpdated,
    CustomerMfaObserved,
    CustomerMfaRemoved,
    DeliveriesGrouped,
    DeliveryChanged,
    delivery_changes,
)
from shared.offboarding import claim_events
from shared.response_time import (
    RESOLVED,
    ResponseTimeFigures,
    WindowAggregates,
    figures,
    first_state,
    window_aggregates_of,
    window_aggregates_sql,
    window_start,
)
from shared.wire import json_text

CONSUMER = "scoring-read-model"


# --- applying events ------------------------------------------------------------------------------


async def apply_alert_response_times(
    pool: asyncpg.Pool, events: Sequence[AlertResponseTimeChanged]
) -> list[AlertResponseTimeChanged]:
    """Keep each alert's state of a batch of events, in one transaction; the events applied (not before,
    not of an offboarded tenant; an id twice in the batch once), in their order."""
    if not events:
        return []
    async with pool.acquire() as conn, conn.transaction():
        applied = await claim_events(conn, CONSUMER, events)
        # One row per alert, the newest state of the batch (ties to the later record), as applying them
        # one by one would leave it (one statement cannot change a row twice).
        newest = timeline_store.newest_per_key(
            applied, lambda e: (e.tenant_id, e.alert_id), lambda e: e.occurred_date_time)
        if newest:
            columns = zip(*((e.tenant_id, e.alert_id, json_text(e.alert), e.status, e.is_test,
                             e.clock_started_date_time, e.responded_date_time, e.responded_by, e.latency_us,
                             e.occurred_date_time, e.event_id) for e in newest), strict=True)
            await conn.execute(
                """INSERT INTO alert_response_times (tenant_id, alert_id, alert, status, is_test, clock_started_at,
                                                     responded_at, responded_by, latency_us, state_as_of, event_id)
                   SELECT tenant_id, alert_id, alert::jsonb, status, is_test, clock_started_at, responded_at,
                          responded_by, latency_us, state_as_of, event_id
                   FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[], $6::timestamptz[],
                               $7::timestamptz[], $8::text[], $9::bigint[], $10::timestamptz[], $11::uuid[])
                        AS r(tenant_id, alert_id, alert, status, is_test, clock_started_at, responded_at,
                             responded_by, latency_us, state_as_of, event_id)
                   ORDER BY tenant_id COLLATE "C", alert_id COLLATE "C"  -- as _show_new_alerts: no deadlock
                   ON CONFLICT (tenant_id, alert_id) DO UPDATE SET
                       alert = EXCLUDED.alert, status = EXCLUDED.status, is_test = EXCLUDED.is_test,
                       clock_started_at = EXCLUDED.clock_started_at, responded_at = EXCLUDED.responded_at,
                       responded_by = EXCLUDED.responded_by, latency_us = EXCLUDED.latency_us,
                       state_as_of = EXCLUDED.state_as_of, event_id = EXCLUDED.event_id
                   WHERE alert_response_times.state_as_of <= EXCLUDED.state_as_of
                     -- A row showing this state already (a new alert's, from its alert-created) is not written
                     -- again: an update writes a new row version and its index entries whatever it changes
                     -- (#15: half the alerts of the lists bench). It keeps the older state_as_of, which any
                     -- later event of the alert passes as well.
                     AND (alert_response_times.alert, alert_response_times.status, alert_response_times.is_test,
                          alert_response_times.clock_started_at, alert_response_times.responded_at,
                          alert_response_times.responded_by, alert_response_times.latency_us)
                         IS DISTINCT FROM (EXCLUDED.alert, EXCLUDED.status, EXCLUDED.is_test,
                                           EXCLUDED.clock_started_at, EXCLUDED.responded_at,
                                           EXCLUDED.responded_by, EXCLUDED.latency_us)""",
                *(list(column) for column in columns))
        await timeline_store.record_all(conn, filter(None, map(timeline.response, applied)))
    return applied


async def apply_deliveries(
    pool: asyncpg.Pool, events: Sequence[DeliveryChanged | DeliveriesGrouped]
) -> list[DeliveryChanged | DeliveriesGrouped]:
    """Keep each delivery's view of a batch of events (a deliveries-grouped event: the change of each
    delivery it names), in one transaction; the events applied (not before, not of an offboarded tenant;
    an id twice in the batch once), in their order."""
    if not events:
        return []
    async with pool.acquire() as conn, conn.transaction():
        applied = await claim_events(conn, CONSUMER, events)
        changed = delivery_changes(applied)
        # One row per delivery, the newest of the batch (ties to the later record): one statement
        # cannot change a row twice, and applying them one by one would leave that one.
        newest = timeline_store.newest_per_key(
            changed, lambda e: (e.tenant_id, e.delivery.id), lambda e: e.occurred_date_time)
        if newest:
            columns = zip(*((e.tenant_id, e.delivery.id, e.delivery.alert_id, e.delivery.state,
                             e.delivery.created_date_time, e.delivery.model_dump_json(), e.occurred_date_time,
                             e.event_id) for e in newest), strict=True)
            await conn.execute(
                """INSERT INTO deliveries (tenant_id, delivery_id, alert_id, state, created_at, view, changed_at,
                                           event_id)
                   SELECT tenant_id, delivery_id, alert_id, state, created_at, view::jsonb, changed_at, event_id
                   FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::timestamptz[], $6::text[],
                               $7::timestamptz[], $8::uuid[])
                        AS d(tenant_id, delivery_id, alert_id, state, created_at, view, changed_at, event_id)
                   ON CONFLICT (tenant_id, delivery_id) DO UPDATE SET
                       alert_id = EXCLUDED.alert_id, state = EXCLUDED.state, created_at = EXCLUDED.created_at,
                       view = EXCLUDED.view, changed_at = EXCLUDED.changed_at, event_id = EXCLUDED.event_id
                   WHERE deliveries.changed_at <= EXCLUDED.changed_at""",
                *(list(column) for column in columns))
        await timeline_store.record_all(conn, filter(None, map(timeline.delivery, changed)))
    return applied


async def apply_customer_mfa(pool: asyncpg.Pool, event: CustomerMfaObserved) -> bool:
    """Keep the customer's figures of the newest report; False if the event was applied before."""
    async with pool.acquire() as conn, conn.transaction():
        if not await store.claim(conn, CONSUMER, event):
            return False
        await conn.execute(
            """INSERT INTO customer_mfa (tenant_id, customer_tenant_id, customer_name, admins, admins_with_mfa,
                                         non_admins_with_mfa, total_users, observed_at, event_id)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
               ON CONFLICT (tenant_id, customer_tenant_id) DO UPDATE SET
                   customer_name = EXCLUDED.customer_name, admins = EXCLUDED.admins,
                   admins_with_mfa = EXCLUDED.admins_with_mfa, non_admins_with_mfa = EXCLUDED.non_admins_with_mfa,
                   total_users = EXCLUDED.total_users, observed_at = EXCLUDED.observed_at,
                   event_id = EXCLUDED.event_id, removed = false
               WHERE customer_mfa.observed_at <= EXCLUDED.observed_at""",
            event.tenant_id, event.customer_tenant_id, event.customer_name, event.admins,
            event.admins_with_mfa, event.non_admins_with_mfa, event.total_users, event.observed_date_time,
            event.event_id)
        return True


async def apply_customer_mfa_removed(pool: asyncpg.Pool, event: CustomerMfaRemoved) -> bool:
    """Drop the customer a newer report left out; False if the event was applied before.

    The row stays as a tombstone (removed, no figures) with the removal's time: an older observation
    of the customer arriving later finds it newer and changes nothing, as it would a newer figure.
    """
    async with pool.acquire() as conn, conn.transaction():
        if not await store.claim(conn, CONSUMER, event):
            return False
        await conn.execute(
            """INSERT INTO customer_mfa (tenant_id, customer_tenant_id, observed_at, event_id, removed)
               VALUES ($1, $2, $3, $4, true)
               ON CONFLICT (tenant_id, customer_tenant_id) DO UPDATE SET
                   customer_name = NULL, admins = NULL, admins_with_mfa = NULL, non_admins_with_mfa = NULL,
                   total_users = NULL, observed_at = EXCLUDED.observed_at, event_id = EXCLUDED.event_id,
                   removed = true
               WHERE customer_mfa.observed_at <= EXCLUDED.observed_at""",
            event.tenant_id, event.customer_tenant_id, event.observed_date_time, event.event_id)
        return True


async def apply_alert_sync(pool: asyncpg.Pool, event: AlertSyncChanged) -> bool:
    """Keep the alert's sync state with Partner Center the event brings; False if applied before."""
    sync = event.sync
    async with pool.acquire() as conn, conn.transaction():
        if not await store.claim(conn, CONSUMER, event):
            return False
        # The state held before, to tell whether this event changes it (the timeline's synced entry).
        held = await conn.fetchrow("SELECT state, changed_at FROM alert_sync WHERE tenant_id = $1 AND alert_id = $2"
                                   " FOR UPDATE", event.tenant_id, event.alert_id)
        if (entry := timeline.sync(event, None if held is None else (held["state"], held["changed_at"]))) is not None:
            await timeline_store.record(conn, entry)
        await conn.execute(
            """INSERT INTO alert_sync (tenant_id, alert_id, state, last_synced_at, pending_status, attempts,
                                       last_error, changed_at, event_id)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
               ON CONFLICT (tenant_id, alert_id) DO UPDATE SET
                   state = EXCLUDED.state, last_synced_at = EXCLUDED.last_synced_at,
                   pending_status = EXCLUDED.pending_status, attempts = EXCLUDED.attempts,
                   last_error = EXCLUDED.last_error, changed_at = EXCLUDED.changed_at, event_id = EXCLUDED.event_id
               WHERE alert_sync.changed_at <= EXCLUDED.changed_at""",
            event.tenant_id, event.alert_id, sync.state.value, sync.last_synced_date_time, sync.pending_status,
            sync.attempts, sync.last_error, event.occurred_date_time, event.event_id)
        return True


async def apply_alert_events(pool: asyncpg.Pool, events: Sequence[AlertCreated | AlertUpdated]
                             ) -> list[AlertCreated | AlertUpdated]:
    """Each event's timeline entry (``received``, ``updated``) of a batch of ``alerts`` events, in one
    transaction; the events applied (not before, not of an offboarded tenant; an id twice in the
    batch once), in their order."""
    if not events:
        return []
    async with pool.acquire() as conn, conn.transaction():
        applied = await claim_events(conn, CONSUMER, events)
        await _show_new_alerts(conn, [e for e in applied if isinstance(e, AlertCreated)])
        await timeline_store.record_all(conn, [
            timeline.received(e) if isinstance(e, AlertCreated) else timeline.updated(e) for e in applied])
    return applied


async def _show_new_alerts(conn: asyncpg.Connection, created: Sequence[AlertCreated]) -> None:
    """Each new alert's row, as the response-time service's first event of it will hold it
    (``shared.response_time.first_state``), unless the alert has one already: ``GET /alerts/{id}`` shows
    it one Kafka hop sooner than that event (write -> visible, #15). Its ``state_as_of`` is -infinity:
    any event of the alert from response time takes the row over, whatever the two services' clocks say
    (an event stamped before the create by a clock that lags must still win)."""
    if not created:
        return
    rows = []
    for event in created:
        first = first_state(event)
        rows.append((event.tenant_id, event.alert.id, event.alert_json(), first.status, first.is_test,
                     first.clock_started_at, first.responded_at, first.responded_by, first.latency_us,
                     event.event_id))
    await conn.execute(
        """INSERT INTO alert_response_times (tenant_id, alert_id, alert, status, is_test, clock_started_at,
                                             responded_at, responded_by, latency_us, state_as_of, event_id)
           SELECT tenant_id, alert_id, alert::jsonb, status, is_test, clock_started_at, responded_at,
                  responded_by, latency_us, '-infinity', event_id
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[], $6::timestamptz[],
                       $7::timestamptz[], $8::text[], $9::bigint[], $10::uuid[])
                AS r(tenant_id, alert_id, alert, status, is_test, clock_started_at, responded_at,
                     responded_by, latency_us, event_id)
           -- Rows locked in key order, as apply_alert_response_times's upsert takes them: the two batches'
           -- transactions, both writing new alerts' rows, wait for each other, never deadlock.
           ORDER BY tenant_id COLLATE "C", alert_id COLLATE "C"
           ON CONFLICT (tenant_id, alert_id) DO NOTHING""",
        *(list(column) for column in zip(*rows, strict=True)))


async def apply_alert_assigned(pool: asyncpg.Pool, event: AlertAssigned) -> bool:
    """Keep the alert's assignee if this assignment is its newest, and its entry either way (an older
    assignment arriving late still happened); False if the event was applied before."""
    async with pool.acquire() as conn, conn.transaction():
        if not await store.claim(conn, CONSUMER, event):
            return False
        await conn.execute(
            """INSERT INTO alert_triage (tenant_id, alert_id, assignee, assigned_at, assignment_event_id)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (tenant_id, alert_id) DO UPDATE SET
                   assignee = EXCLUDED.assignee, assigned_at = EXCLUDED.assigned_at,
                   assignment_event_id = EXCLUDED.assignment_event_id
               WHERE alert_triage.assigned_at IS NULL OR alert_triage.assigned_at <= EXCLUDED.assigned_at""",
            event.tenant_id, event.alert_id, event.assignee, event.occurred_date_time, event.event_id)
        await timeline_store.record(conn, timeline.assignment(event))
        return True


async def apply_alert_note_added(pool: asyncpg.Pool, event: AlertNoteAdded) -> bool:
    """The note's entry, and one more note on the alert if the note is new (a note told again under
    another event id is the same note); False if the event was applied before."""
    async with pool.acquire() as conn, conn.transaction():
        if not await store.claim(conn, CONSUMER, event):
            return False
        if await timeline_store.record(conn, timeline.note(event)):
            await conn.execute(
                """INSERT INTO alert_triage (tenant_id, alert_id, notes_count) VALUES ($1, $2, 1)
                   ON CONFLICT (tenant_id, alert_id) DO UPDATE SET notes_count = alert_triage.notes_count + 1""",
                event.tenant_id, event.alert_id)
        return True


async def get_triage(pool: asyncpg.Pool, tenant_id: str, alert_id: str) -> asyncpg.Record | None:
    return await pool.fetchrow("SELECT assignee, notes_count FROM alert_triage WHERE tenant_id = $1 AND alert_id = $2",
                               tenant_id, alert_id)


# --- GET /alerts ----------------------------------------------------------------------------------

# Each alert with its sync state with Partner Center and its triage, if it has them (the LEFT JOINs:
# one primary-key probe each per alert of the page, so the paging below stays an index range scan of
# alert_response_times).
_ALERT_COLUMNS = """a.alert_id, a.alert, a.status, a.clock_started_at, a.responded_at, a.responded_by, a.latency_us,
                    a.is_test, s.state AS sync_state, s.last_synced_at, s.pending_status, s.attempts AS sync_attempts,
                    s.last_error AS sync_last_error, t.assignee, t.notes_count"""
_ALERTS_WITH_SYNC = """alert_response_times a
                       LEFT JOIN alert_sync s ON s.tenant_id = a.tenant_id AND s.alert_id = a.alert_id
                       LEFT JOIN alert_triage t ON t.tenant_id = a.tenant_id AND t.alert_id = a.alert_id"""


async def list_alerts(pool: asyncpg.Pool, tenant_id: str, *, status: str | None, responded: bool | None,
                      top: int, skip: int = 0, after: tuple[datetime, str] | None = None,
                      assignee: str | None = None, unassigned: bool = False, severity: str | None = None,
                      customer_tenant_id: str | None = None, least_time_left_first: bool = False,
                      ) -> list[asyncpg.Record]:
    """Newest first (clock start, then alert id, both descending), through ``alert_response_times_newest_first``;
    or, ``least_time_left_first``, the open alerts alone (whose clock counts: no partner response, not
    resolved, not a test; ``shared.response_time.is_open``), the clock started first first (then alert
    id), through ``alert_response_times_open_unresolved_clock``.

    ``after``: the (clock start, alert id) of the last alert of the previous page; the page starts
    right after it in the list's order (keyset paging: an index range scan however deep, and stable
    while alerts arrive). ``assignee``: only the alerts assigned to that address (any case);
    ``unassigned``: only those assigned to nobody. ``severity`` and ``customer_tenant_id``: only the
    alerts with that value of the field (exactly).
    """
    arguments: list = [tenant_id, status, responded, top, skip]

    def parameter(value: object) -> str:
        arguments.append(value)
        return f"${len(arguments)}"

    # Conditions added only when asked for, rather than "$n IS NULL OR …": a prepared plan must see
    # the bound to use the index.
    conditions = []
    if after:
        started, alert_id = after
        beyond = ">" if least_time_left_first else "<"
        conditions.append(f"(a.clock_started_at, a.alert_id) {beyond} ({parameter(started)}, {parameter(alert_id)})")
    if unassigned:
        conditions.append("t.assignee IS NULL")
    elif assignee is not None:
        conditions.append(f"lower(t.assignee) = lower({parameter(assignee)})")
    if severity is not None:
        conditions.append(f"a.alert->>'severity' = {parameter(severity)}")
    if customer_tenant_id is not None:
        conditions.append(f"a.alert->>'customerTenantId' = {parameter(customer_tenant_id)}")
    if least_time_left_first:
        conditions.append(f"NOT a.is_test AND a.responded_at IS NULL AND a.status <> '{RESOLVED}'")
        order = "a.clock_started_at, a.alert_id"
    else:
        order = "a.clock_started_at DESC, a.alert_id DESC"
    return await pool.fetch(
        f"""SELECT {_ALERT_COLUMNS} FROM {_ALERTS_WITH_SYNC}
            WHERE a.tenant_id = $1 AND ($2::text IS NULL OR a.status = $2)
              AND ($3::boolean IS NULL OR (a.responded_at IS NOT NULL) = $3)
              {"".join(f" AND {c}" for c in conditions)}
            ORDER BY {order} LIMIT $4 OFFSET $5""",
        *arguments)


async def get_alert(pool: asyncpg.Pool, tenant_id: str, alert_id: str) -> asyncpg.Record | None:
    return await pool.fetchrow(
        f"SELECT {_ALERT_COLUMNS} FROM {_ALERTS_WITH_SYNC} WHERE a.tenant_id = $1 AND a.alert_id = $2",
        tenant_id, alert_id)


# --- GET /response-time ---------------------------------------------------------------------------

# The response-time service's window SQL over this table: two index range scans
# (alert_response_times_responded_window, alert_response_times_open_unresolved_clock), O(window +
# open), not O(history). What it sums is shared.response_time.WindowAggregates (aggregate() is the
# reference): responded = not a test, responded after the window's start; open = not a test, no
# response, not resolved.
_AGGREGATES = window_aggregates_sql("alert_response_times")


async def window_aggregates(pool: asyncpg.Pool, tenant_id: str, now: datetime) -> WindowAggregates:
    row = await pool.fetchrow(_AGGREGATES, tenant_id, window_start(now), now)
    return window_aggregates_of(row)


async def current_figures(pool: asyncpg.Pool, tenant_id: str, now: datetime) -> ResponseTimeFigures:
    return figures(await window_aggregates(pool, tenant_id, now), now)


async def responses_after(pool: asyncpg.Pool, tenant_id: str, after: datetime) -> list[trend.Response]:
    """The non-test first responses made strictly after ``after`` (GET /response-time/trend): one range
    scan of ``alert_response_times_responded_window``, which holds the latency too. The read model
    keeps every alert until its tenant is offboarded, so the windows of a trend's first days, up to
    ``trend.MAX_DAYS`` + 30 days back, are whole."""
    rows = await pool.fetch(
        """SELECT responded_at, latency_us FROM alert_response_times
           WHERE tenant_id = $1 AND NOT is_test AND responded_at IS NOT NULL AND responded_at > $2""",
        tenant_id, after)
    return [trend.Response(row["responded_at"], row["latency_us"]) for row in rows]


# --- GET /deliveries ------------------------------------------------------------------------------


async def list_deliveries(pool: asyncpg.Pool, tenant_id: str, *, state: str | None, alert_id: str | None,
                          top: int) -> list[str]:
    """The views (JSON text), newest first."""
    rows = await pool.fetch(
        """SELECT view FROM deliveries
           WHERE tenant_id = $1 AND ($2::text IS NULL OR state = $2) AND ($3::text IS NULL OR alert_id = $3)
           ORDER BY created_at DESC, delivery_id LIMIT $4""",
        tenant_id, state, alert_id, top)
    return [row["view"] for row in rows]


async def get_delivery(pool: asyncpg.Pool, tenant_id: str, delivery_id: uuid.UUID) -> str | None:
    """The view (JSON text), or None."""
    return await pool.fetchval(
        "SELECT view FROM deliveries WHERE tenant_id = $1 AND delivery_id = $2", tenant_id, delivery_id)


# --- GET /customers/mfa ---------------------------------------------------------------------------

# A report replaces the previous one: only the customers of the tenant's newest report count. One it
# left out is a tombstone (customer-mfa-removed), never listed. The tenant's newest time (tombstones
# included: after an empty report they alone hold it) also leaves out a customer left out with no
# removal on the topic (records written before removals were told), whose row keeps an older time.
_CUSTOMER_FILTER = """tenant_id = $1 AND NOT removed
             AND observed_at = (SELECT max(observed_at) FROM customer_mfa WHERE tenant_id = $1)
             AND ($2::text IS NULL OR customer_name ILIKE $2 ESCAPE '\\')
             AND ($3::boolean IS NULL OR (admins_with_mfa = admins) = $3)"""


async def customer_mfa_page(pool: asyncpg.Pool, tenant_id: str, *, pattern: str | None, compliant: bool | None,
                            top: int, skip: int) -> tuple[int, list[asyncpg.Record]]:
    """How many customers match, and the page of them by name (case-insensitive), then id."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        total = await conn.fetchval(
            f"SELECT count(*) FROM customer_mfa WHERE {_CUSTOMER_FILTER}", tenant_id, pattern, compliant)
        rows = await conn.fetch(
            f"""SELECT customer_tenant_id, customer_name, admins, admins_with_mfa, non_admins_with_mfa,
                       total_users, observed_at
                FROM customer_mfa WHERE {_CUSTOMER_FILTER}
                ORDER BY lower(customer_name), customer_tenant_id LIMIT $4 OFFSET $5""",
            tenant_id, pattern, compliant, top, skip)
    return total, rows
