"""The last known state of each alert, in PostgreSQL, shared by every ingest instance; accepted webhook-ids."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

import asyncpg

from services.ingest.domain import created_state
from shared import offboarding
from shared.alerts import Alert
from shared.events import AlertCreated, AlertUpdated, Topic
from shared.group_call import GroupCall
from shared.outbox import outbox_row
from shared.settings import ACTION_LINK_MAX_AGE_HOURS_LIMIT
from shared.tracing import trace_headers


@dataclass(frozen=True)
class KnownAlert:
    alert: Alert
    version: int


class AlertStates:
    """Holds one transaction in which the posted alerts' rows are locked.

    New alerts are inserted at once (a concurrent post of the same new alert waits on the primary
    key until this transaction ends, then sees it as known), known ones are locked ``FOR UPDATE``.
    The caller enqueues the events on :attr:`connection` (``services.ingest.outgoing``) and
    :meth:`save` records the new states, in this transaction: both commit, or neither.
    """

    def __init__(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        known: dict[str, KnownAlert | None],
        *,
        replayed: bool = False,
        inserted: dict[str, tuple[Alert, str]] | None = None,
    ) -> None:
        self._conn, self._tenant_id, self.known = conn, tenant_id, known
        # A signed post whose webhook-id was already accepted: nothing was locked, nothing to decide.
        self.replayed = replayed
        # Each new alert inserted: (the alert as posted, the JSON of its first state, as stored).
        self._inserted = inserted or {}

    @property
    def connection(self) -> asyncpg.Connection:
        """The transaction's connection (the outbox rows of the decision are written on it)."""
        return self._conn

    def previous(self, alert_id: str) -> Alert | None:
        found = self.known.get(alert_id)
        return found.alert if found else None

    def version(self, alert_id: str) -> int:
        found = self.known.get(alert_id)
        return found.version if found else 0

    def created_json(self, posted: Alert) -> str | None:
        """The JSON of the first state stored for ``posted`` (that very object) if it was inserted as new
        here: its created event's alert is that state (``domain.decide``'s ``created_json``)."""
        inserted = self._inserted.get(posted.id)
        return inserted[1] if inserted is not None and inserted[0] is posted else None

    async def save(self, updates: Sequence[AlertUpdated]) -> None:
        """Record the new state of each known alert changed (each ``alert`` of ``updates``; new ones were
        inserted when locked)."""
        rows = [
            (self._tenant_id, u.alert.id, u.alert_json()) for u in updates if self.known.get(u.alert.id) is not None
        ]
        if rows:
            await self._conn.executemany(
                """UPDATE ingest_alert_state SET alert = $3::jsonb, version = version + 1, updated_at = now()
                   WHERE tenant_id = $1 AND alert_id = $2""",
                rows,
            )


@asynccontextmanager
async def lock_alert_states(
    pool: asyncpg.Pool,
    tenant_id: str,
    alerts: Sequence[Alert],
    *,
    insert_new: bool = True,
    webhook_id: str | None = None,
) -> AsyncIterator[AlertStates]:
    """Lock the rows of ``alerts`` for one decision; with ``insert_new``, unknown ones are created.

    The row inserted for a new alert holds its state as posted (the created event's alert is that
    state, status defaulted), so nothing else needs saving for it.

    With ``webhook_id`` (a signed post), the id is claimed first in the same transaction: if it was
    accepted within :data:`WEBHOOK_ID_MEMORY`, the states are ``replayed`` and nothing is locked. A
    concurrent repeat waits on the claim until this transaction ends; a rollback frees the id.
    """
    # Sorted ids: two posts locking overlapping sets take the locks in one order, so never deadlock.
    by_id = {a.id: a for a in alerts}
    ids = sorted(by_id)
    async with pool.acquire() as conn, conn.transaction():
        if webhook_id is not None and not await _claim_webhook_id(conn, tenant_id, webhook_id):
            yield AlertStates(conn, tenant_id, {}, replayed=True)
            return
        new_ids: set[str] = set()
        texts: dict[str, str] = {}
        if insert_new:
            texts = {i: created_state(by_id[i]).model_dump_json() for i in ids}
            inserted = await conn.fetch(
                """INSERT INTO ingest_alert_state (tenant_id, alert_id, alert, version)
                   SELECT $1, id, alert::jsonb, 1
                   FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS t(id, alert, n) ORDER BY n
                   ON CONFLICT (tenant_id, alert_id) DO NOTHING
                   RETURNING alert_id""",
                tenant_id,
                ids,
                [texts[i] for i in ids],
            )
            new_ids = {row["alert_id"] for row in inserted}
        rows = await conn.fetch(
            """SELECT alert_id, alert, version FROM ingest_alert_state
               WHERE tenant_id = $1 AND alert_id = ANY($2::text[]) ORDER BY alert_id FOR UPDATE""",
            tenant_id,
            [i for i in ids if i not in new_ids],
        )
        known: dict[str, KnownAlert | None] = {i: None for i in ids}
        known.update(
            {
                row["alert_id"]: KnownAlert(Alert.model_validate_json(row["alert"]), row["version"])
                for row in rows
            }
        )
        yield AlertStates(conn, tenant_id, known, inserted={i: (by_id[i], texts[i]) for i in new_ids})


# A new alert's state and its created event, in one statement (its own transaction); nothing if the
# alert is known. The inserted row stays locked until the statement commits, so a concurrent post of
# the alert waits on it and its event is enqueued after this one (the outbox's order per key). The
# notice wakes the relay, as shared.outbox's enqueue does.
# The new alerts of concurrent posts, in one statement: each (tenant, alert) not yet known gets its first
# state and, in the order posted, its event in the outbox. A pair twice in one batch is taken the first
# time only (``fresh`` names the rows inserted); the second is a known alert for its caller. The rows are
# inserted in key order (code points, as the locked path sorts them): two posts racing for the same new alerts wait,
# never deadlock.
_INSERT_NEW_ALERTS = """
WITH posted AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::text[], $5::bytea[], $6::bytea[], $7::jsonb[])
        WITH ORDINALITY AS p(tenant_id, alert_id, alert, topic, key, value, headers, n)
), first_posted AS (
    SELECT DISTINCT ON (tenant_id, alert_id) * FROM posted ORDER BY tenant_id, alert_id, n
), fresh AS (
    INSERT INTO ingest_alert_state (tenant_id, alert_id, alert, version)
    SELECT tenant_id, alert_id, alert, 1 FROM first_posted ORDER BY tenant_id COLLATE "C", alert_id COLLATE "C"
    ON CONFLICT (tenant_id, alert_id) DO NOTHING
    RETURNING tenant_id, alert_id
), told AS (
    INSERT INTO outbox (topic, key, value, headers)
    SELECT p.topic, p.key, p.value, p.headers FROM first_posted p JOIN fresh f USING (tenant_id, alert_id)
    ORDER BY p.n
    RETURNING 1
)
SELECT p.n FROM first_posted p JOIN fresh f USING (tenant_id, alert_id)
UNION ALL
SELECT NULL FROM (SELECT pg_notify('outbox_' || current_schema(), '') WHERE EXISTS (SELECT FROM told)) AS woken
"""


async def insert_new_alerts(pool: asyncpg.Pool, events: Sequence[AlertCreated],
                            traces: Sequence[Mapping[str, str] | None] | None = None,
                            values: Sequence[bytes | None] | None = None) -> list[bool]:
    """Record each new alert (``event.alert``, its first state) with its event if the tenant does not know
    it yet, in one statement, its own transaction; per event, whether it was (False: nothing written for
    it, the alert is known, or was earlier in ``events``). ``traces``: each event's trace context, taken
    where it was made (by default the current one); ``values``: each event's record value, if serialised
    already (``shared.outbox.event_value``)."""
    columns: list[list] = [[] for _ in range(7)]
    for event, trace, value in zip(events, traces or [None] * len(events), values or [None] * len(events),
                                   strict=True):
        row = (event.tenant_id, event.alert.id, event.alert_json(),
               *outbox_row(Topic.alerts, event, trace=trace, value=value))
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    inserted = {r["n"] for r in await pool.fetch(_INSERT_NEW_ALERTS, *columns) if r["n"] is not None}
    return [n in inserted for n in range(1, len(events) + 1)]


# Group calls per pool (in a process, the write API's one pool); asyncpg's pools take no weak reference,
# so those closed are let go of here.
_groups: dict[tuple[asyncpg.Pool, str], GroupCall] = {}


def _group(pool: asyncpg.Pool, name: str, call: Callable[[asyncpg.Pool, Sequence], Awaitable[Sequence]]) -> GroupCall:
    group = _groups.get((pool, name))
    if group is None:
        for closed in [key for key in _groups if key[0].is_closing()]:
            del _groups[closed]
        group = _groups[(pool, name)] = GroupCall(partial(call, pool), name=f"ingest-{name}")
    return group


async def insert_new_alert(pool: asyncpg.Pool, event: AlertCreated, value: bytes | None = None) -> bool:
    """Record a new alert (``event.alert``, its first state) with its event, if the tenant does not know
    it yet; False (nothing written) if it does. One statement for many concurrent posts (a group call of
    :func:`insert_new_alerts`), instead of a transaction's five round trips each. ``value``: the event's
    record value, if serialised already."""
    # The trace context is this request's: the group's statement runs in whichever request's task came first.
    return await _group(pool, "new-alerts", _insert_traced_new_alerts)((event, trace_headers(), value))


async def _insert_traced_new_alerts(
    pool: asyncpg.Pool, items: Sequence[tuple[AlertCreated, dict[str, str], bytes | None]]
) -> list[bool]:
    return await insert_new_alerts(pool, [event for event, _, _ in items], [trace for _, trace, _ in items],
                                   [value for _, _, value in items])


async def offboarded_at(pool: asyncpg.Pool, tenant_id: str) -> datetime | None:
    """When the tenant was offboarded (None: never), as :func:`shared.offboarding.offboarded_at`
    answers, with the look-ups of concurrent requests in one statement."""
    return await _group(pool, "offboarded", offboarding.offboarded_at_each)(tenant_id)


# How long an accepted webhook-id is remembered: the signature window is five minutes either way.
WEBHOOK_ID_MEMORY = timedelta(minutes=10)


async def _claim_webhook_id(conn: asyncpg.Connection, tenant_id: str, webhook_id: str) -> bool:
    """True if ``webhook_id`` is new for the tenant (or only remembered past its memory)."""
    claimed = await conn.fetchval(
        """INSERT INTO ingest_webhook_ids (tenant_id, webhook_id) VALUES ($1, $2)
           ON CONFLICT (tenant_id, webhook_id) DO UPDATE SET received_at = now()
               WHERE ingest_webhook_ids.received_at < now() - $3::interval
           RETURNING true""",
        tenant_id,
        webhook_id,
        WEBHOOK_ID_MEMORY,
    )
    return bool(claimed)


async def prune_webhook_ids(pool: asyncpg.Pool, *, batch: int = 1000) -> int:
    """Forget up to ``batch`` webhook-ids older than their memory; the number forgotten."""
    return await _forget(pool, "ingest_webhook_ids", "received_at", WEBHOOK_ID_MEMORY, batch)


async def _forget(pool: asyncpg.Pool, table: str, column: str, memory: timedelta, batch: int) -> int:
    """Delete up to ``batch`` rows of ``table`` whose ``column`` is older than ``memory``; how many went."""
    status = await pool.execute(
        f"""DELETE FROM {table} WHERE ctid IN (
                SELECT ctid FROM {table} WHERE {column} < now() - $1::interval LIMIT $2 FOR UPDATE SKIP LOCKED)""",
        memory,
        batch,
    )
    return int(status.split()[-1])


# A used link is remembered until it is expired under any setting (ACTION_LINK_MAX_AGE_HOURS at its
# largest), and a day more for clocks: forgetting it earlier would let a raised setting make it work twice.
USED_LINK_MEMORY = timedelta(hours=ACTION_LINK_MAX_AGE_HOURS_LIMIT, days=1)


async def prune_used_action_links(pool: asyncpg.Pool, *, batch: int = 1000) -> int:
    """Forget up to ``batch`` used one-click links issued longer ago than their memory; the number forgotten."""
    return await _forget(pool, "used_action_links", "issued_at", USED_LINK_MEMORY, batch)
