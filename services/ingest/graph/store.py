"""The Partner Center connection in PostgreSQL (migration 0075): connections, their polls, and each
alert's sync state, which is also the write-back queue.

Guarantees, and how:
- **One poll of a connection at a time**: a poll is taken under a lease (:func:`claim_due_connection`,
  ``FOR UPDATE SKIP LOCKED``, then ``lease_owner`` / ``lease_until`` on the row); another instance takes
  it only once the lease ran out. A replaced connection (a PUT: ``generation`` + 1) keeps the lease of
  the poll in flight, whose outcome is then not recorded (:func:`finish_poll`).
- **One write-back of an alert at a time, in order**: a write-back is taken under a lease on its row
  (:func:`claim_due_writebacks`). A newer response replaces the row's change but not its lease, so it
  is written only after the write in flight ended: Partner Center never gets two PATCHes of one alert
  out of order. The outcome of a write (:func:`writeback_succeeded`, :func:`writeback_retry`,
  :func:`writeback_failed`) is recorded only while the row still holds the change that was written
  (same ``changed_at``) under the same lease; otherwise it only lets go of the lease.
- **Nothing lost**: a response is queued (:func:`request_writeback`) in the transaction that records
  it, and stays pending until Partner Center took it or refused it for good; deleting the connection
  keeps the queue, a new connection resumes it.
- **Every sync-state change is told**: each change of a row's state is an ``alert-sync-changed`` event
  enqueued in the outbox in the change's own transaction, after the row is locked, with the database
  clock of that moment as its time (the events of one alert are published in the order of its changes,
  newest last).

Functions taking a pool run their own transaction; those taking a connection run in the caller's
(the recording of alerts, ``services.ingest.recording``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from services.ingest.graph.domain import sync_changed
from shared import outbox
from shared.auth import UNATTRIBUTED, AuditAction, AuditActor, record_audit
from shared.events import Topic

log = logging.getLogger(__name__)

# The audit log's target of a tenant's connection.
AUDIT_TARGET = "connections/graph"


@dataclass(frozen=True)
class ConnectionState:
    """A connection as ``GET /connections/graph`` shows it: never its secret."""

    tenant_id: str
    directory_id: str
    client_id: str
    credential_type: str
    certificate_thumbprint: str | None
    enabled: bool
    generation: int
    created_at: datetime
    updated_at: datetime
    next_poll_at: datetime
    last_poll_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    consecutive_failures: int
    last_poll_alerts: int  # alerts the last finished poll read
    alerts_seen: int  # distinct alerts of the tenant that came from Partner Center
    writebacks_pending: int
    writebacks_failed: int


@dataclass(frozen=True)
class ClaimedConnection:
    """A connection due for a poll, leased to one poller until ``lease_until``."""

    tenant_id: str
    directory_id: str
    client_id: str
    credential_type: str
    sealed_credentials: str
    generation: int
    changes_since: datetime | None  # the poll cursor (domain.poll_filter); None: read every alert
    consecutive_failures: int  # failed polls in a row before this one
    lease_until: datetime


@dataclass(frozen=True)
class PendingWriteback:
    """A response recorded here that Partner Center has not taken: ``pending``, or ``failed`` (refused)."""

    alert_id: str
    state: str
    pending_status: str
    pending_resolved_reason: str | None
    changed_at: datetime
    changed_by: str | None
    attempts: int


@dataclass(frozen=True)
class ClaimedWriteback:
    """A due write-back, leased until ``lease_until``, with its connection's sealed credentials.
    ``attempts`` counts this try (1 on the first)."""

    tenant_id: str
    alert_id: str
    pending_status: str
    pending_resolved_reason: str | None
    changed_at: datetime
    changed_by: str | None
    attempts: int
    lease_until: datetime
    directory_id: str
    client_id: str
    credential_type: str
    sealed_credentials: str
    generation: int


# --- connections -----------------------------------------------------------------------------------


async def put_connection(
    pool: asyncpg.Pool,
    tenant_id: str,
    *,
    directory_id: str,
    client_id: str,
    credential_type: str,
    sealed_credentials: str,
    certificate_thumbprint: str | None,
    enabled: bool = True,
    actor: AuditActor = UNATTRIBUTED,
) -> bool:
    """Create or replace the tenant's connection, audited as done by ``actor``; True if created.

    A replacement is a new ``generation`` (a poll of the previous one in flight records no outcome;
    it keeps its lease until it ends, so two polls never overlap), due for a poll at once, with its
    error and failure count cleared. The poll cursor is kept unless the directory changed (another
    directory's alerts are read whole). Write-backs pending since an earlier connection resume.
    """
    async with pool.acquire() as conn, conn.transaction():
        created = await conn.fetchval(
            """INSERT INTO graph_connections AS c (tenant_id, directory_id, client_id, credential_type,
                                                   sealed_credentials, certificate_thumbprint, enabled)
               VALUES ($1, $2, $3, $4, $5, $6, $7)
               ON CONFLICT (tenant_id) DO UPDATE SET
                   directory_id = excluded.directory_id, client_id = excluded.client_id,
                   credential_type = excluded.credential_type, sealed_credentials = excluded.sealed_credentials,
                   certificate_thumbprint = excluded.certificate_thumbprint, enabled = excluded.enabled,
                   generation = c.generation + 1, updated_at = now(), next_poll_at = now(),
                   last_error = NULL, last_error_at = NULL, consecutive_failures = 0,
                   changes_since = CASE WHEN lower(c.directory_id) = lower(excluded.directory_id)
                                        THEN c.changes_since END
               RETURNING (xmax = 0) AS created""",
            tenant_id, directory_id, client_id, credential_type, sealed_credentials, certificate_thumbprint,
            enabled,
        )
        await record_audit(
            conn, tenant_id=tenant_id, actor=actor,
            action=AuditAction.graph_connection_created if created else AuditAction.graph_connection_replaced,
            target=AUDIT_TARGET,
            changes={"directoryId": directory_id, "clientId": client_id, "credentialType": credential_type,
                     "certificateThumbprint": certificate_thumbprint, "enabled": enabled},
        )
    return created


async def get_connection(pool: asyncpg.Pool | asyncpg.Connection, tenant_id: str) -> ConnectionState | None:
    """The tenant's connection with its poll state and the counts of its alerts (seen, write-backs
    pending and failed), or None."""
    row = await pool.fetchrow(
        """SELECT c.*, s.seen, s.pending, s.failed
           FROM graph_connections c,
                LATERAL (SELECT count(*) AS seen,
                                count(*) FILTER (WHERE state = 'pending') AS pending,
                                count(*) FILTER (WHERE state = 'failed') AS failed
                         FROM graph_alert_sync WHERE tenant_id = c.tenant_id) s
           WHERE c.tenant_id = $1""",
        tenant_id,
    )
    if row is None:
        return None
    return ConnectionState(
        tenant_id=row["tenant_id"], directory_id=row["directory_id"], client_id=row["client_id"],
        credential_type=row["credential_type"], certificate_thumbprint=row["certificate_thumbprint"],
        enabled=row["enabled"], generation=row["generation"], created_at=row["created_at"],
        updated_at=row["updated_at"], next_poll_at=row["next_poll_at"], last_poll_at=row["last_poll_at"],
        last_success_at=row["last_success_at"], last_error=row["last_error"], last_error_at=row["last_error_at"],
        consecutive_failures=row["consecutive_failures"], last_poll_alerts=row["last_poll_alerts"],
        alerts_seen=row["seen"], writebacks_pending=row["pending"], writebacks_failed=row["failed"],
    )


async def delete_connection(pool: asyncpg.Pool, tenant_id: str, *, actor: AuditActor = UNATTRIBUTED) -> bool:
    """Delete the tenant's connection, audited as done by ``actor``; False (nothing audited) if none.

    The alerts' sync rows stay: pending write-backs wait (none is taken without a connection) and a
    new connection resumes them. A poll in flight records no outcome.
    """
    async with pool.acquire() as conn, conn.transaction():
        deleted = await conn.fetchval(
            "DELETE FROM graph_connections WHERE tenant_id = $1 RETURNING true", tenant_id)
        if deleted:
            await record_audit(conn, tenant_id=tenant_id, actor=actor,
                               action=AuditAction.graph_connection_deleted, target=AUDIT_TARGET, changes={})
    return bool(deleted)


async def reseal_credentials(pool: asyncpg.Pool, keys: Sequence[str]) -> int:
    """Seal again under the first of ``keys`` every connection's credentials sealed under another one
    (``MultiFernet.rotate``): put a new key first in ``SEALING_KEYS``, start, and the old key can go
    once every instance started. How many were resealed.

    One row at a time, locked: instances starting together reseal each row once. Credentials no key
    opens are left as they are (logged; their polls fail and say so until the connection is PUT again).
    """
    if not keys:
        raise ValueError("no sealing key")
    first = Fernet(keys[0].encode())
    every = MultiFernet([Fernet(key.encode()) for key in keys])
    resealed = 0
    for tenant_id in [r["tenant_id"] for r in await pool.fetch("SELECT tenant_id FROM graph_connections")]:
        async with pool.acquire() as conn, conn.transaction():
            sealed = await conn.fetchval(
                "SELECT sealed_credentials FROM graph_connections WHERE tenant_id = $1 FOR UPDATE", tenant_id)
            if sealed is None or _opens(first, sealed):
                continue
            try:
                rotated = every.rotate(sealed.encode()).decode()
            except InvalidToken:
                log.warning("tenant %s: Graph credentials open with none of SEALING_KEYS; left as they are",
                            tenant_id)
                continue
            await conn.execute("UPDATE graph_connections SET sealed_credentials = $2 WHERE tenant_id = $1",
                               tenant_id, rotated)
            resealed += 1
    return resealed


def _opens(box: Fernet, sealed: str) -> bool:
    try:
        box.decrypt(sealed.encode())
    except InvalidToken:
        return False
    return True


# --- polls -------------------------------------------------------------------------------------------


async def claim_due_connection(pool: asyncpg.Pool, *, owner: str, lease_seconds: float) -> ClaimedConnection | None:
    """Take one enabled connection due for a poll (``next_poll_at`` passed, no lease or an expired one),
    the longest due first, leased to ``owner`` for ``lease_seconds``; its ``last_poll_at`` is now.
    None if none is due. ``FOR UPDATE SKIP LOCKED``: instances claiming together take different ones.
    """
    row = await pool.fetchrow(
        """UPDATE graph_connections SET lease_owner = $1, lease_until = now() + make_interval(secs => $2),
                                        last_poll_at = now()
           WHERE tenant_id = (SELECT tenant_id FROM graph_connections
                              WHERE enabled AND next_poll_at <= now() AND (lease_until IS NULL OR lease_until <= now())
                              ORDER BY next_poll_at LIMIT 1 FOR UPDATE SKIP LOCKED)
           RETURNING *""",
        owner, lease_seconds,
    )
    if row is None:
        return None
    return ClaimedConnection(
        tenant_id=row["tenant_id"], directory_id=row["directory_id"], client_id=row["client_id"],
        credential_type=row["credential_type"], sealed_credentials=row["sealed_credentials"],
        generation=row["generation"], changes_since=row["changes_since"],
        consecutive_failures=row["consecutive_failures"], lease_until=row["lease_until"],
    )


async def renew_poll_lease(pool: asyncpg.Pool, claimed: ClaimedConnection, *, owner: str, lease_seconds: float) -> bool:
    """Extend a poll's lease by ``lease_seconds`` from now while ``owner`` holds it, unexpired, on the
    claimed generation; False otherwise (another instance took it over, or the connection was replaced
    or deleted): the poll must stop, so two instances never poll one connection at once."""
    renewed = await pool.fetchval(
        """UPDATE graph_connections SET lease_until = now() + make_interval(secs => $4)
           WHERE tenant_id = $1 AND lease_owner = $2 AND generation = $3 AND lease_until > now()
           RETURNING true""",
        claimed.tenant_id, owner, claimed.generation, lease_seconds,
    )
    return bool(renewed)


async def finish_poll(
    pool: asyncpg.Pool,
    claimed: ClaimedConnection,
    *,
    owner: str,
    ok: bool,
    error: str | None,
    alerts_seen: int,
    next_poll_at: datetime,
    changes_since: datetime | None,
) -> bool:
    """Record a poll's outcome and let go of its lease; True if recorded.

    Only while ``owner`` still holds the lease (another instance took an expired one: nothing is
    done) and the connection is of the claimed generation (replaced meanwhile: the lease is let go,
    the new generation stays due at once). ``alerts_seen``: how many alerts the poll read. On
    success the cursor becomes ``changes_since``, the error is cleared and the failures in a row
    are 0; on failure ``error`` is recorded with its time, the failures in a row + 1, the cursor kept.
    """
    async with pool.acquire() as conn, conn.transaction():
        generation = await conn.fetchval(
            "SELECT generation FROM graph_connections WHERE tenant_id = $1 AND lease_owner = $2 FOR UPDATE",
            claimed.tenant_id, owner)
        if generation is None:
            return False
        if generation != claimed.generation:
            await conn.execute(
                "UPDATE graph_connections SET lease_owner = NULL, lease_until = NULL WHERE tenant_id = $1",
                claimed.tenant_id)
            return False
        if ok:
            await conn.execute(
                """UPDATE graph_connections SET lease_owner = NULL, lease_until = NULL, next_poll_at = $2,
                       last_success_at = now(), last_error = NULL, last_error_at = NULL, consecutive_failures = 0,
                       last_poll_alerts = $3, changes_since = $4
                   WHERE tenant_id = $1""",
                claimed.tenant_id, next_poll_at, alerts_seen, changes_since)
        else:
            await conn.execute(
                """UPDATE graph_connections SET lease_owner = NULL, lease_until = NULL, next_poll_at = $2,
                       last_error = $3, last_error_at = now(), consecutive_failures = consecutive_failures + 1,
                       last_poll_alerts = $4
                   WHERE tenant_id = $1""",
                claimed.tenant_id, next_poll_at, error or "the poll failed", alerts_seen)
    return True


async def mark_seen(
    conn: asyncpg.Connection, tenant_id: str, alerts: Iterable[tuple[str, datetime | None]], *, now: datetime
) -> int:
    """Record, in the caller's transaction (a poll's recording), that Partner Center showed these alerts
    (``(alert id, its newest activity)``, ``domain.newest_activity``); how many were new to it.

    A new alert gets a ``synced`` row, last synced ``now``. A known ``synced`` one whose newest activity
    moved on (Partner Center changed it) is synced again ``now``. A ``pending`` or ``failed`` one keeps
    its state (the poll decides with :func:`pending_writebacks` / :func:`supersede_writeback`); its
    newest activity is noted. An event for each new row and each synced one that moved; nothing for
    an alert seen as it was (a re-read is no change).
    """
    newest: dict[str, datetime | None] = {}
    for alert_id, activity_at in alerts:  # an alert twice in one call: its newest activity
        known = newest.get(alert_id)
        newest[alert_id] = max((t for t in (known, activity_at) if t is not None), default=None)
    if not newest:
        return 0
    ids = sorted(newest)  # one lock order for every writer of these rows
    rows = await conn.fetch(
        """INSERT INTO graph_alert_sync AS s (tenant_id, alert_id, state, last_synced_at, graph_activity_at)
           SELECT $1, u.alert_id, 'synced', $4, u.activity_at
           FROM unnest($2::text[], $3::timestamptz[]) WITH ORDINALITY AS u(alert_id, activity_at, n) ORDER BY n
           ON CONFLICT (tenant_id, alert_id) DO UPDATE SET
               graph_activity_at = excluded.graph_activity_at,
               last_synced_at = CASE WHEN s.state = 'synced' THEN excluded.last_synced_at ELSE s.last_synced_at END
           WHERE excluded.graph_activity_at > s.graph_activity_at
              OR (s.graph_activity_at IS NULL AND excluded.graph_activity_at IS NOT NULL)
           RETURNING s.*, (xmax = 0) AS created, clock_timestamp() AS event_at""",
        tenant_id, ids, [newest[i] for i in ids], now,
    )
    await outbox.enqueue_many(conn, [
        (Topic.alert_sync, sync_changed(tenant_id, row, row["event_at"]))
        for row in rows if row["created"] or row["state"] == "synced"
    ])
    return sum(1 for row in rows if row["created"])


# --- write-backs -------------------------------------------------------------------------------------


async def pending_writebacks(
    conn: asyncpg.Connection, tenant_id: str, alert_ids: Sequence[str]
) -> dict[str, PendingWriteback]:
    """The responses of these alerts that Partner Center has not taken (``pending``, or ``failed``:
    refused), by alert id, their rows locked ``FOR UPDATE`` in the caller's transaction (a poll's): a
    response recorded or written back meanwhile waits for the poll's decision."""
    rows = await conn.fetch(
        """SELECT * FROM graph_alert_sync
           WHERE tenant_id = $1 AND alert_id = ANY($2::text[]) AND state IN ('pending', 'failed')
           ORDER BY alert_id FOR UPDATE""",
        tenant_id, sorted(set(alert_ids)),
    )
    return {
        row["alert_id"]: PendingWriteback(
            alert_id=row["alert_id"], state=row["state"], pending_status=row["pending_status"],
            pending_resolved_reason=row["pending_resolved_reason"], changed_at=row["changed_at"],
            changed_by=row["changed_by"], attempts=row["attempts"],
        )
        for row in rows
    }


@dataclass(frozen=True)
class SyncRow:
    """What a poll needs to know of an alert's sync row (read without a lock)."""

    state: str
    last_synced_at: datetime | None


async def sync_rows(conn: asyncpg.Connection, tenant_id: str, alert_ids: Sequence[str]) -> dict[str, SyncRow]:
    """The sync rows of these alerts, by alert id; an alert missing has never been seen in Partner Center."""
    rows = await conn.fetch(
        """SELECT alert_id, state, last_synced_at FROM graph_alert_sync
           WHERE tenant_id = $1 AND alert_id = ANY($2::text[])""",
        tenant_id, list(set(alert_ids)),
    )
    return {row["alert_id"]: SyncRow(row["state"], row["last_synced_at"]) for row in rows}


async def writeback_state(pool: asyncpg.Pool, w: ClaimedWriteback) -> str | None:
    """The state of the write-back's row if it still holds the change ``w`` was claimed for; else None."""
    return await pool.fetchval(
        "SELECT state FROM graph_alert_sync WHERE tenant_id = $1 AND alert_id = $2 AND changed_at = $3",
        w.tenant_id, w.alert_id, w.changed_at,
    )


async def request_writeback(
    conn: asyncpg.Connection,
    tenant_id: str,
    alert_id: str,
    *,
    status: str,
    resolved_reason: str | None,
    changed_at: datetime,
    changed_by: str | None,
) -> bool:
    """Queue a response for Partner Center, in the caller's transaction (the one recording it); False
    (nothing queued) for an alert that did not come from Partner Center (no sync row).

    The row becomes ``pending`` with this change, due now, 0 attempts; it replaces a change not
    written yet (the newest response is the one to write). A write-back in flight keeps its lease:
    this change is taken once it ended.
    """
    row = await conn.fetchrow(
        """UPDATE graph_alert_sync SET state = 'pending', pending_status = $3, pending_resolved_reason = $4,
               changed_at = $5, changed_by = $6, attempts = 0, next_attempt_at = now(), last_error = NULL
           WHERE tenant_id = $1 AND alert_id = $2
           RETURNING *, clock_timestamp() AS event_at""",
        tenant_id, alert_id, status, resolved_reason, changed_at, changed_by,
    )
    if row is None:
        return False
    await outbox.enqueue(conn, Topic.alert_sync, sync_changed(tenant_id, row, row["event_at"]))
    return True


async def supersede_writeback(
    conn: asyncpg.Connection, tenant_id: str, alert_id: str, *, graph_activity_at: datetime | None, now: datetime
) -> bool:
    """Drop the response waiting for Partner Center (``pending`` or ``failed``), in the caller's
    transaction, because Partner Center changed the alert after it (the newest activity wins): the
    row is ``synced`` at ``now``. False if nothing was waiting. A write-back in flight keeps its lease
    (its outcome is then not recorded)."""
    row = await conn.fetchrow(
        """UPDATE graph_alert_sync SET state = 'synced', pending_status = NULL, pending_resolved_reason = NULL,
               attempts = 0, next_attempt_at = NULL, last_error = NULL, last_synced_at = $3,
               graph_activity_at = greatest(graph_activity_at, $4)
           WHERE tenant_id = $1 AND alert_id = $2 AND state IN ('pending', 'failed')
           RETURNING *, clock_timestamp() AS event_at""",
        tenant_id, alert_id, now, graph_activity_at,
    )
    if row is None:
        return False
    await outbox.enqueue(conn, Topic.alert_sync, sync_changed(tenant_id, row, row["event_at"]))
    return True


async def claim_due_writebacks(pool: asyncpg.Pool, *, limit: int, lease_seconds: float) -> list[ClaimedWriteback]:
    """Take up to ``limit`` due write-backs (``pending``, ``next_attempt_at`` passed, no lease or an
    expired one) of enabled connections, the longest due first, each leased for ``lease_seconds``,
    its attempts + 1. ``FOR UPDATE SKIP LOCKED``: instances claiming together take different rows,
    and a row being changed by a recording is left for the next round."""
    rows = await pool.fetch(
        """WITH due AS (
               SELECT s.tenant_id, s.alert_id FROM graph_alert_sync s
               JOIN graph_connections c ON c.tenant_id = s.tenant_id AND c.enabled
               WHERE s.state = 'pending' AND s.next_attempt_at <= now()
                 AND (s.lease_until IS NULL OR s.lease_until <= now())
               ORDER BY s.next_attempt_at LIMIT $1
               FOR UPDATE OF s SKIP LOCKED)
           UPDATE graph_alert_sync s SET lease_until = now() + make_interval(secs => $2), attempts = s.attempts + 1
           FROM due JOIN graph_connections c ON c.tenant_id = due.tenant_id
           WHERE s.tenant_id = due.tenant_id AND s.alert_id = due.alert_id
           RETURNING s.*, c.directory_id, c.client_id, c.credential_type, c.sealed_credentials, c.generation""",
        limit, lease_seconds,
    )
    return sorted(
        (ClaimedWriteback(
            tenant_id=row["tenant_id"], alert_id=row["alert_id"], pending_status=row["pending_status"],
            pending_resolved_reason=row["pending_resolved_reason"], changed_at=row["changed_at"],
            changed_by=row["changed_by"], attempts=row["attempts"], lease_until=row["lease_until"],
            directory_id=row["directory_id"], client_id=row["client_id"],
            credential_type=row["credential_type"], sealed_credentials=row["sealed_credentials"],
            generation=row["generation"],
        ) for row in rows),
        key=lambda w: w.changed_at,
    )


async def writeback_succeeded(
    pool: asyncpg.Pool, w: ClaimedWriteback, *, now: datetime, graph_activity_at: datetime | None
) -> bool:
    """Partner Center took the change (or already showed it): ``synced`` at ``now``, its newest
    activity noted. True if recorded; False if the row holds another change now or the lease was lost
    (then only the activity is noted and the lease let go)."""
    return await _settle(
        pool, w,
        """state = 'synced', last_synced_at = $5, graph_activity_at = greatest(graph_activity_at, $6),
           pending_status = NULL, pending_resolved_reason = NULL, attempts = 0, next_attempt_at = NULL,
           last_error = NULL""",
        now, graph_activity_at, noted_activity=graph_activity_at,
    )


async def writeback_retry(pool: asyncpg.Pool, w: ClaimedWriteback, *, error: str, next_attempt_at: datetime) -> bool:
    """Partner Center did not take the change this time (down, throttling, a sign-in to fix): it stays
    ``pending``, due at ``next_attempt_at``, with ``error``. True if recorded (see :func:`writeback_succeeded`)."""
    return await _settle(pool, w, "last_error = $5, next_attempt_at = $6", error, next_attempt_at)


async def writeback_failed(pool: asyncpg.Pool, w: ClaimedWriteback, *, error: str) -> bool:
    """Partner Center refused the change for good: ``failed`` with ``error`` (shown on the alert and
    counted on the connection) until a new response or Partner Center's own change. True if recorded
    (see :func:`writeback_succeeded`)."""
    return await _settle(pool, w, "state = 'failed', last_error = $5, next_attempt_at = NULL", error)


async def release_writeback(pool: asyncpg.Pool, w: ClaimedWriteback) -> None:
    """Let go of a write-back's lease without an outcome (the change was dropped meanwhile, e.g. by
    :func:`supersede_writeback`), so a newer change of the alert is taken at once."""
    await pool.execute(
        "UPDATE graph_alert_sync SET lease_until = NULL WHERE tenant_id = $1 AND alert_id = $2 AND lease_until = $3",
        w.tenant_id, w.alert_id, w.lease_until)


async def _settle(
    pool: asyncpg.Pool, w: ClaimedWriteback, assignments: str, *values: object,
    noted_activity: datetime | None = None,
) -> bool:
    """Apply ``assignments`` (whose values are ``$5`` on) to the write-back's row if it still holds the
    change written, under this lease, and tell of it; else let go of the lease (if still ours)."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            f"""UPDATE graph_alert_sync SET {assignments}, lease_until = NULL
                WHERE tenant_id = $1 AND alert_id = $2 AND state = 'pending' AND changed_at = $3
                  AND lease_until = $4
                RETURNING *, clock_timestamp() AS event_at""",
            w.tenant_id, w.alert_id, w.changed_at, w.lease_until, *values,
        )
        if row is None:
            await conn.execute(
                """UPDATE graph_alert_sync SET graph_activity_at = greatest(graph_activity_at, $4),
                       lease_until = CASE WHEN lease_until = $3 THEN NULL ELSE lease_until END
                   WHERE tenant_id = $1 AND alert_id = $2""",
                w.tenant_id, w.alert_id, w.lease_until, noted_activity)
            return False
        await outbox.enqueue(conn, Topic.alert_sync, sync_changed(w.tenant_id, row, row["event_at"]))
    return True
