"""Each alert's triage (#18): its assignee (``alert_assignments``) and its notes (``alert_notes``),
migration 0079, and their events on the compacted ``alert-triage`` topic.

A change is, in one transaction: the row and its event in the outbox (``services.ingest.outgoing``), so
both commit or neither. An assignment holds the alert's row lock (``ingest_alert_state``, taken in
sorted order as the recording path takes it): two changes of one alert's assignee are told in the
order they were made, each naming the assignee before it, and a change that changes nothing (the
same assignee again, nobody for an unassigned alert) writes and tells nothing. Its time is the
database's clock (the write API may run on several hosts), strictly after the alert's previous
assignment, so a consumer keeping the newest keeps the last one committed; an unassigned alert keeps
its row (assignee NULL) for that reason.

Neither an assignment nor a note touches the alert's state: no ``alert-updated``, not a response.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from services.ingest.contact import next_change_time
from services.ingest.outgoing import enqueue
from shared.events import Actor, AlertAssigned, AlertNoteAdded, Topic
from shared.http import Problem

Database = asyncpg.Pool | asyncpg.Connection


@dataclass(frozen=True)
class Assignment:
    """An alert's assignee (None: unassigned), who made that so and when (None: never assigned)."""

    alert_id: str
    assignee: str | None
    assigned_by: str | None
    assigned_at: datetime | None


@dataclass(frozen=True)
class AssignmentChange:
    """What an assignment did to one alert: its assignment now, the one before, whether it changed."""

    assignment: Assignment
    previous_assignee: str | None
    changed: bool


@dataclass(frozen=True)
class Note:
    note_id: uuid.UUID
    alert_id: str
    text: str
    author: str
    created_at: datetime


def same_assignee(a: str | None, b: str | None) -> bool:
    """Addresses that name one mailbox in practice (any case) are the same assignee."""
    if a is None or b is None:
        return a is b
    return a.casefold() == b.casefold()


async def known_alert_ids(db: Database, tenant_id: str, alert_ids: Sequence[str]) -> set[str]:
    """Those of ``alert_ids`` the tenant has."""
    rows = await db.fetch("SELECT alert_id FROM ingest_alert_state WHERE tenant_id = $1 AND alert_id = ANY($2::text[])",
                          tenant_id, list(alert_ids))
    return {row["alert_id"] for row in rows}


async def alerts_matching(
    db: Database, tenant_id: str, *, status: str | None, severity: str | None, customer_tenant_id: str | None,
    limit: int,
) -> tuple[list[str], int]:
    """The tenant's alerts (ids, first seen first) whose status, severity and customer are those given
    (None: any), at most ``limit`` of them; and how many match in all."""
    rows = await db.fetch(
        """SELECT alert_id, count(*) OVER () AS matched FROM ingest_alert_state
           WHERE tenant_id = $1 AND ($2::text IS NULL OR alert->>'status' = $2)
               AND ($3::text IS NULL OR alert->>'severity' = $3)
               AND ($4::text IS NULL OR alert->>'customerTenantId' = $4)
           ORDER BY first_seen_at, alert_id LIMIT $5""",
        tenant_id, status, severity, customer_tenant_id, limit)
    return [row["alert_id"] for row in rows], rows[0]["matched"] if rows else 0


async def _lock_alerts(conn: asyncpg.Connection, tenant_id: str, alert_ids: Sequence[str]) -> list[str]:
    # Sorted, FOR UPDATE, as store.lock_alert_states locks them: never a deadlock with a status change.
    rows = await conn.fetch(
        """SELECT alert_id FROM ingest_alert_state WHERE tenant_id = $1 AND alert_id = ANY($2::text[])
           ORDER BY alert_id FOR UPDATE""",
        tenant_id, sorted(set(alert_ids)))
    return [row["alert_id"] for row in rows]


def _assignment(alert_id: str, row: asyncpg.Record | None) -> Assignment:
    if row is None or row["assigned_at"] is None:
        return Assignment(alert_id, None, None, None)
    return Assignment(alert_id, row["assignee"], row["assigned_by"], row["assigned_at"])


async def assignment_of(db: Database, tenant_id: str, alert_id: str) -> Assignment | None:
    """The alert's assignment; None if the tenant has no such alert."""
    row = await db.fetchrow(
        """SELECT s.alert_id, a.assignee, a.assigned_by, a.assigned_at
           FROM ingest_alert_state s LEFT JOIN alert_assignments a USING (tenant_id, alert_id)
           WHERE s.tenant_id = $1 AND s.alert_id = $2""",
        tenant_id, alert_id)
    return None if row is None else _assignment(alert_id, row)


async def assign(
    pool: asyncpg.Pool, tenant_id: str, alert_ids: Sequence[str], assignee: str | None, *, actor: Actor,
    max_event_bytes: int,
) -> dict[str, AssignmentChange]:
    """Assign each of ``alert_ids`` to ``assignee`` (None: unassign) as ``actor`` (a user), in one
    transaction: what it did to each alert the tenant has (the others are left out). Raises
    ``outgoing.EventTooLarge`` (nothing written) if an event could not be a Kafka record."""
    async with pool.acquire() as conn, conn.transaction():
        known = await _lock_alerts(conn, tenant_id, alert_ids)
        rows = {row["alert_id"]: row for row in await conn.fetch(
            "SELECT * FROM alert_assignments WHERE tenant_id = $1 AND alert_id = ANY($2::text[])", tenant_id, known)}
        clock = await conn.fetchval("SELECT clock_timestamp()")
        changes: dict[str, AssignmentChange] = {}
        events: list[tuple[Topic, AlertAssigned]] = []
        for alert_id in known:
            before = _assignment(alert_id, rows.get(alert_id))
            if same_assignee(before.assignee, assignee):
                changes[alert_id] = AssignmentChange(before, before.assignee, changed=False)
                continue
            now = next_change_time(clock, before.assigned_at)
            changes[alert_id] = AssignmentChange(Assignment(alert_id, assignee, actor.id, now), before.assignee,
                                                 changed=True)
            events.append((Topic.alert_triage, AlertAssigned(
                tenant_id=tenant_id, occurred_date_time=now, alert_id=alert_id, assignee=assignee,
                previous_assignee=before.assignee, actor=actor)))
        await enqueue(conn, events, max_event_bytes=max_event_bytes)
        changed = [c.assignment for c in changes.values() if c.changed]
        if changed:
            await conn.executemany(
                """INSERT INTO alert_assignments (tenant_id, alert_id, assignee, assigned_by, assigned_at)
                   VALUES ($1, $2, $3, $4, $5)
                   ON CONFLICT (tenant_id, alert_id) DO UPDATE SET assignee = excluded.assignee,
                       assigned_by = excluded.assigned_by, assigned_at = excluded.assigned_at""",
                [(tenant_id, a.alert_id, a.assignee, a.assigned_by, a.assigned_at) for a in changed])
        return changes


# --- notes -----------------------------------------------------------------------------------------


def _note(row: asyncpg.Record) -> Note:
    return Note(row["note_id"], row["alert_id"], row["text"], row["author"], row["created_at"])


async def add_note(
    pool: asyncpg.Pool, tenant_id: str, alert_id: str, text: str, *, author: Actor, max_event_bytes: int
) -> Note | None:
    """Add a note (``text`` as it is: checked by the caller) to the alert by ``author`` (a user); None
    (nothing written) if the tenant has no such alert. Raises ``outgoing.EventTooLarge`` as ``assign``."""
    async with pool.acquire() as conn, conn.transaction():
        # A share lock: the alert stays while the note is added; notes of one alert do not wait on each other.
        if not await conn.fetchval(
            "SELECT true FROM ingest_alert_state WHERE tenant_id = $1 AND alert_id = $2 FOR KEY SHARE",
            tenant_id, alert_id,
        ):
            return None
        note = Note(uuid.uuid4(), alert_id, text, author.id, await conn.fetchval("SELECT clock_timestamp()"))
        await enqueue(conn, [(Topic.alert_triage, AlertNoteAdded(
            tenant_id=tenant_id, occurred_date_time=note.created_at, alert_id=alert_id, note_id=note.note_id,
            text=text, author=author))], max_event_bytes=max_event_bytes)
        await conn.execute(
            """INSERT INTO alert_notes (note_id, tenant_id, alert_id, text, author, created_at)
               VALUES ($1, $2, $3, $4, $5, $6)""",
            note.note_id, tenant_id, alert_id, note.text, note.author, note.created_at)
        return note


async def note_of(db: Database, tenant_id: str, alert_id: str, note_id: uuid.UUID) -> Note | None:
    row = await db.fetchrow("SELECT * FROM alert_notes WHERE tenant_id = $1 AND alert_id = $2 AND note_id = $3",
                            tenant_id, alert_id, note_id)
    return None if row is None else _note(row)


NotePosition = tuple[datetime, uuid.UUID]


async def newest_notes(
    db: Database, tenant_id: str, alert_id: str, *, limit: int, after: NotePosition | None = None
) -> list[Note]:
    """The alert's notes, newest first, those after position ``after`` (the last of the previous page)."""
    created, note_id = after if after is not None else (None, None)
    rows = await db.fetch(
        """SELECT * FROM alert_notes WHERE tenant_id = $1 AND alert_id = $2
               AND ($3::timestamptz IS NULL OR (created_at, note_id) < ($3, $4::uuid))
           ORDER BY created_at DESC, note_id DESC LIMIT $5""",
        tenant_id, alert_id, created, note_id, limit)
    return [_note(row) for row in rows]


def note_position_token(note: Note) -> str:
    """The opaque position after ``note`` in ``newest_notes``' order (a ``skiptoken``)."""
    position = json.dumps(["note", note.created_at.isoformat(), str(note.note_id)]).encode()
    return base64.urlsafe_b64encode(position).decode().rstrip("=")


def note_position(token: str) -> NotePosition:
    """The position a ``skiptoken`` names; 422 naming the parameter if it is not one of ours."""
    try:
        kind, created, note_id = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        created = datetime.fromisoformat(created)
        if kind != "note" or created.tzinfo is None:
            raise ValueError("not a position")
        return created.astimezone(UTC), uuid.UUID(note_id)
    except (ValueError, TypeError, AttributeError, OverflowError, UnicodeDecodeError, binascii.Error):
        raise Problem(422, "Invalid request", "skiptoken: not a token of this API; follow @odata.nextLink",
                      errors=[{"field": "query.skiptoken", "message": "not a token of this API"}]) from None
