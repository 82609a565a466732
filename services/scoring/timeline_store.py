"""PostgreSQL I/O of the alerts' timelines: table ``alert_timeline`` of the scoring schema (migration 0075).

``read_model.py`` records each event's entry (``timeline.py``) in the transaction that claims the event
(a batch's entries in one statement, ``record_all``), so a redelivered event adds nothing. An entry is
one row per key; a newer event of the key replaces it (a delivery's next state), an older one arriving
late changes nothing. ``GET .../timeline`` (``routes_timeline.py``) reads it newest first, by keyset.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterable
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

from services.scoring.timeline import Entry, wire
from shared.wire import json_text

# The position of an entry in its timeline: when, its place at that instant, its key.
Position = tuple[datetime, int, str]

T = TypeVar("T")


async def record(conn: asyncpg.Connection, entry: Entry) -> bool:
    """Keep ``entry`` unless its key holds a newer event; True if the entry is new (its key was not kept)."""
    return await conn.fetchval(
        """INSERT INTO alert_timeline (tenant_id, alert_id, entry_key, type, occurred_at, tie_order, actor, details,
                                       as_of, event_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10)
           ON CONFLICT (tenant_id, alert_id, entry_key) DO UPDATE SET
               type = EXCLUDED.type, occurred_at = EXCLUDED.occurred_at, tie_order = EXCLUDED.tie_order,
               actor = EXCLUDED.actor, details = EXCLUDED.details, as_of = EXCLUDED.as_of,
               event_id = EXCLUDED.event_id
           WHERE alert_timeline.as_of <= EXCLUDED.as_of
           RETURNING xmax = 0""",  # xmax 0: the row was inserted, not updated
        entry.tenant_id, entry.alert_id, entry.key, entry.type.value, entry.occurred_at, entry.tie_order,
        entry.actor, json.dumps(entry.details), entry.as_of, entry.event_id) or False


def newest_per_key(items: Iterable[T], key: Callable[[T], Hashable], as_of: Callable[[T], datetime]) -> list[T]:
    """Of each key's items, the one :func:`record` applied one after the other would leave: the newest
    (``as_of``), ties to the later. A batch's rows in one INSERT ... ON CONFLICT DO UPDATE must be one
    per key (a statement cannot change a row twice). In the order of the keys, so two transactions
    writing some of the same rows lock them in one order."""
    kept: dict[Hashable, T] = {}
    for item in items:
        held = kept.get(k := key(item))
        if held is None or as_of(held) <= as_of(item):
            kept[k] = item
    return [kept[k] for k in sorted(kept)]


async def record_all(conn: asyncpg.Connection, entries: Iterable[Entry]) -> None:
    """:func:`record` for a batch's entries, in one statement: each key keeps the newest of its entries
    and of the row it holds (ties to the later, the row held being the earliest)."""
    kept = newest_per_key(entries, lambda e: (e.tenant_id, e.alert_id, e.key), lambda e: e.as_of)
    if not kept:
        return
    columns = zip(*((e.tenant_id, e.alert_id, e.key, e.type.value, e.occurred_at, e.tie_order, e.actor,
                     json_text(e.details), e.as_of, e.event_id) for e in kept), strict=True)
    await conn.execute(
        """INSERT INTO alert_timeline (tenant_id, alert_id, entry_key, type, occurred_at, tie_order, actor, details,
                                       as_of, event_id)
           SELECT tenant_id, alert_id, entry_key, type, occurred_at, tie_order, actor, details::jsonb, as_of, event_id
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::smallint[],
                       $7::text[], $8::text[], $9::timestamptz[], $10::uuid[])
                AS e(tenant_id, alert_id, entry_key, type, occurred_at, tie_order, actor, details, as_of, event_id)
           ON CONFLICT (tenant_id, alert_id, entry_key) DO UPDATE SET
               type = EXCLUDED.type, occurred_at = EXCLUDED.occurred_at, tie_order = EXCLUDED.tie_order,
               actor = EXCLUDED.actor, details = EXCLUDED.details, as_of = EXCLUDED.as_of,
               event_id = EXCLUDED.event_id
           WHERE alert_timeline.as_of <= EXCLUDED.as_of""",
        *(list(column) for column in columns))


async def page(pool: asyncpg.Pool, tenant_id: str, alert_id: str, *, top: int, skip: int = 0,
               after: Position | None = None) -> list[asyncpg.Record]:
    """Newest first (ties in the order things happen); ``after``: the position of the last entry of the
    previous page, through ``alert_timeline_newest_first`` (an index range scan however deep)."""
    # Two statements rather than "$6 IS NULL OR …": a prepared plan must see the bound to use the index.
    position = "AND (occurred_at, tie_order, entry_key) < ($5, $6, $7)" if after else ""
    return await pool.fetch(
        f"""SELECT type, occurred_at, tie_order, entry_key, actor, details FROM alert_timeline
            WHERE tenant_id = $1 AND alert_id = $2 {position}
            ORDER BY occurred_at DESC, tie_order DESC, entry_key DESC LIMIT $3 OFFSET $4""",
        tenant_id, alert_id, top, skip, *(after or ()))


def position(row: asyncpg.Record) -> Position:
    return row["occurred_at"], row["tie_order"], row["entry_key"]


def wire_of(row: asyncpg.Record) -> dict[str, Any]:
    return wire(row["type"], row["occurred_at"], row["actor"], json.loads(row["details"]))


async def alert_known(pool: asyncpg.Pool, tenant_id: str, alert_id: str) -> bool:
    """Whether the read API heard of the alert: its response time, or any entry of its timeline (the
    events of an alert come on several topics, in any order)."""
    return await pool.fetchval(
        """SELECT EXISTS (SELECT 1 FROM alert_response_times WHERE tenant_id = $1 AND alert_id = $2)
               OR EXISTS (SELECT 1 FROM alert_timeline WHERE tenant_id = $1 AND alert_id = $2)""",
        tenant_id, alert_id)
