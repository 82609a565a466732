"""Polling Partner Center: ``GET /beta/security/partner/securityAlerts`` per connection, every
``GRAPH_POLL_INTERVAL``.

A connection is taken under a lease (``store.claim_due_connection``), renewed after every page, so
several instances never poll the same one at once (a poll that lost its lease stops). Every page read
goes through the one recording path of the write API (``services.ingest.recording``): created,
updated or duplicate exactly as a webhook post, no second dedupe. Graph offers no change tracking for
these alerts, so after the first poll only the open alerts and those resolved since the last poll are
asked for (``domain.poll_filter``); if Graph refuses that filter, the poll reads every alert.

In the poll's transaction, per alert (the newest activity wins; ``reconcile`` holds the rules):
- a response recorded here and not yet written back stays, unless Partner Center changed the alert
  after it (then that change wins and the write-back is dropped);
- a response written back after the page was read stays (the page is older than Partner Center is);
- a response recorded here before the alert was first seen in Partner Center (alerts that came
  through a webhook before the connection) stays and is queued for Partner Center, unless Partner
  Center changed the alert after it;
- Partner Center's echo of our own write-back (an entry by our application) is the system's.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import asyncpg

from services.ingest.graph import domain, reconcile, store
from services.ingest.graph.client import GraphClient, GraphError, GraphRefused, GraphThrottled
from services.ingest.graph.clients import GraphClients
from services.ingest.metrics import GRAPH_POLLS
from services.ingest.parsing import alerts_from_document
from services.ingest.recording import AlertEvents, record_alerts
from services.ingest.store import AlertStates
from shared.alerts import Alert
from shared.http import Problem
from shared.sealed import SealBroken
from shared.wire import utcnow

log = logging.getLogger(__name__)


def _parsed(
    tenant_id: str, page: list[dict], now: datetime, client_id: str
) -> tuple[list[Alert], dict[str, datetime | None]]:
    """The page's alerts that parse, each id once (the last copy); one unreadable alert must not
    block the others for ever. And when someone in Partner Center last acted on each (our own
    application's changes not counted)."""
    alerts: dict[str, Alert] = {}
    activity: dict[str, datetime | None] = {}
    for raw in page:
        try:
            alert = alerts_from_document(raw, 1, now=now)[0]
        except (Problem, IndexError) as exc:
            log.warning("tenant %s: alert %r from Partner Center unreadable, skipped: %s",
                        tenant_id, raw.get("id") if isinstance(raw, dict) else None, getattr(exc, "detail", exc))
            continue
        alerts[alert.id] = alert
        activity[alert.id] = domain.newest_activity(raw, ignoring_client_id=client_id)
    return list(alerts.values()), activity


async def apply_graph_alerts(
    pool: asyncpg.Pool, settings, tenant_id: str, page: list[dict], *, client_id: str,
    read_at: datetime | None = None,
) -> AlertEvents:
    """Record one page of Partner Center's alerts for ``tenant_id`` (read at ``read_at``); the events it
    yielded. An alert too large for an event is skipped (logged); the others are recorded."""
    read_at = read_at or utcnow()
    alerts, activity = _parsed(tenant_id, page, read_at, client_id)
    if not alerts:
        return []
    try:
        return await _record(pool, settings, tenant_id, alerts, activity, client_id, read_at)
    except Problem as exc:
        if exc.status != 413 or len(alerts) == 1:
            raise
    events: AlertEvents = []
    for alert in alerts:  # one at a time: only the oversized one is left out
        try:
            events += await _record(pool, settings, tenant_id, [alert], activity, client_id, read_at)
        except Problem as exc:
            if exc.status != 413:
                raise
            log.warning("tenant %s: alert %r from Partner Center too large to record, skipped: %s",
                        tenant_id, alert.id, exc.detail)
    return events


async def _record(
    pool, settings, tenant_id: str, alerts: list[Alert], activity: dict[str, datetime | None], client_id: str,
    read_at: datetime,
) -> AlertEvents:
    to_queue: list[tuple[Alert, datetime]] = []  # local responses Partner Center never had

    async def adjust(conn: asyncpg.Connection, states: AlertStates, posted: list[Alert], now: datetime) -> list[Alert]:
        ids = [a.id for a in posted]
        pending = await store.pending_writebacks(conn, tenant_id, ids)
        seen = await store.sync_rows(conn, tenant_id, ids)
        adjusted = []
        for alert in posted:
            previous = states.previous(alert.id)
            alert = reconcile.own_echo_as_system(alert, client_id, previous)
            graph_at = activity.get(alert.id)
            waiting = pending.get(alert.id)
            row = seen.get(alert.id)
            if previous is not None and waiting is not None:
                if graph_at is not None and graph_at > waiting.changed_at:
                    await store.supersede_writeback(conn, tenant_id, alert.id, graph_activity_at=graph_at, now=now)
                else:
                    alert = reconcile.keep_local_response(alert, previous)
            elif previous is not None and row is not None and row.last_synced_at and row.last_synced_at > read_at:
                alert = reconcile.keep_local_response(alert, previous)  # written back after this page was read
            elif previous is not None and row is None and reconcile.differs(alert, previous):
                answered_at = reconcile.local_response_time(previous)
                if answered_at is not None and (graph_at is None or answered_at > graph_at):
                    alert = reconcile.keep_local_response(alert, previous)
                    to_queue.append((previous, answered_at))
            adjusted.append(alert)
        return adjusted

    async def after(conn: asyncpg.Connection, states: AlertStates, events: AlertEvents, now: datetime) -> None:
        await store.mark_seen(conn, tenant_id, [(a.id, activity.get(a.id)) for a in alerts], now=now)
        for local, answered_at in to_queue:
            await store.request_writeback(
                conn, tenant_id, local.id,
                status=local.status.value if local.status else "active",
                resolved_reason=local.resolved_reason.value if local.resolved_reason else None,
                changed_at=answered_at, changed_by=reconcile.local_responder(local),
            )

    return await record_alerts(pool, settings, tenant_id, alerts, adjust=adjust, after=after)


class Poller:
    def __init__(self, pool: asyncpg.Pool, settings, clients: GraphClients, *, owner: str) -> None:
        self._pool, self._settings, self._clients, self._owner = pool, settings, clients, owner

    async def run_once(self) -> bool:
        """Poll one due connection, if any; True if one was polled."""
        claimed = await store.claim_due_connection(
            self._pool, owner=self._owner, lease_seconds=self._settings.graph_lease_seconds
        )
        if claimed is None:
            return False
        started = utcnow()
        interval = timedelta(seconds=self._settings.graph_poll_interval)
        seen = 0
        try:
            client = self._clients.for_credentials(
                claimed.tenant_id, claimed.generation, claimed.directory_id, claimed.client_id,
                claimed.sealed_credentials,
            )
            seen = await self._read(claimed, client)
        except GraphError as exc:
            GRAPH_POLLS.labels("throttled" if isinstance(exc, GraphThrottled) else "error").inc()
            wait = domain.next_poll_after_failure(claimed.consecutive_failures + 1, interval)
            if isinstance(exc, GraphThrottled):
                wait = max(wait, timedelta(seconds=exc.retry_after))
            await self._failed(claimed, str(exc), seen, wait)
            return True
        except (SealBroken, ValueError) as exc:
            GRAPH_POLLS.labels("error").inc()
            await self._failed(claimed, f"the stored credentials cannot be opened ({exc}): put the connection "
                               "again with its secret or certificate", seen, interval)
            return True
        except _LeaseLost:
            log.warning("tenant %s: the poll lost its lease (taken over, or the connection replaced): stopped",
                        claimed.tenant_id)
            return True
        except Problem as exc:
            # The database went away mid-poll: what was recorded stays; the lease runs out and the
            # connection is polled again.
            GRAPH_POLLS.labels("error").inc()
            log.warning("tenant %s: poll interrupted: %s", claimed.tenant_id, exc.detail)
            return True
        except Exception as exc:  # a bug must show on the connection, not only in a log
            GRAPH_POLLS.labels("error").inc()
            log.exception("tenant %s: poll failed unexpectedly", claimed.tenant_id)
            await self._failed(claimed, f"unexpected {type(exc).__name__}: {exc}"[:500], seen,
                               domain.next_poll_after_failure(claimed.consecutive_failures + 1, interval))
            return True
        GRAPH_POLLS.labels("ok").inc()
        log.info("tenant %s: polled Partner Center, %d alerts read", claimed.tenant_id, seen)
        await store.finish_poll(self._pool, claimed, owner=self._owner, ok=True, error=None, alerts_seen=seen,
                                next_poll_at=started + interval, changes_since=started)
        return True

    async def _read(self, claimed: store.ClaimedConnection, client: GraphClient) -> int:
        query = domain.poll_filter(claimed.changes_since)
        try:
            return await self._pages(claimed, client, query)
        except GraphRefused as exc:
            if query is None or exc.status != 400:
                raise
            # Graph refused the filter (the beta API may change what it accepts): read everything.
            log.warning("tenant %s: Graph refused the poll's $filter (%s); reading every alert", claimed.tenant_id, exc)
            return await self._pages(claimed, client, None)

    async def _pages(self, claimed: store.ClaimedConnection, client: GraphClient, query: str | None) -> int:
        seen = 0
        async for page in client.list_alerts(filter=query):
            await apply_graph_alerts(self._pool, self._settings, claimed.tenant_id, page,
                                     client_id=claimed.client_id, read_at=utcnow())
            seen += len(page)
            if not await store.renew_poll_lease(self._pool, claimed, owner=self._owner,
                                                lease_seconds=self._settings.graph_lease_seconds):
                raise _LeaseLost()
        return seen

    async def _failed(self, claimed: store.ClaimedConnection, error: str, seen: int, wait: timedelta) -> None:
        log.warning("tenant %s: poll of Partner Center failed after %d alerts, next in %.0f s: %s",
                    claimed.tenant_id, seen, wait.total_seconds(), error)
        await store.finish_poll(self._pool, claimed, owner=self._owner, ok=False, error=error,
                                alerts_seen=seen, next_poll_at=utcnow() + wait, changes_since=claimed.changes_since)


class _LeaseLost(Exception):
    """The poll's lease was taken over, or its connection replaced: stop reading."""
