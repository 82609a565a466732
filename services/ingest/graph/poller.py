"""Polling Partner Center: ``GET /beta/security/partner/securityAlerts`` per connection, every
``GRAPH_POLL_INTERVAL``.

A connection is taken under a lease (``store.claim_due_connection``), so several instances never
poll the same one at once. Every page read goes through the one recording path of the write API
(``services.ingest.recording``): created, updated or duplicate exactly as a webhook post, no second
dedupe. Graph offers no change tracking for these alerts, so after the first poll only the open
alerts and those resolved since the last poll are asked for (``domain.poll_filter``).

In the poll's transaction, per alert: a response recorded here and not yet written back stays (the
newest activity wins; Partner Center's copy is older), unless Partner Center changed the alert
after it (then that change wins and the write-back is dropped); Partner Center's echo of our own
write-back (an activity entry by our application) is the system's, not a new response.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import asyncpg

from services.ingest.graph import domain, reconcile, store
from services.ingest.graph.client import GraphError, GraphThrottled
from services.ingest.graph.clients import GraphClients
from services.ingest.parsing import alerts_from_document
from services.ingest.recording import AlertEvents, record_alerts
from services.ingest.store import AlertStates
from shared.alerts import Alert
from shared.http import Problem
from shared.wire import utcnow

log = logging.getLogger(__name__)


def _parsed(
    tenant_id: str, page: list[dict], now: datetime, client_id: str
) -> tuple[list[Alert], dict[str, datetime | None]]:
    """The page's alerts that parse (one unreadable alert must not block the others for ever), and when
    someone in Partner Center last acted on each (our own application's changes not counted)."""
    alerts: list[Alert] = []
    activity: dict[str, datetime | None] = {}
    for raw in page:
        try:
            alert = alerts_from_document(raw, 1, now=now)[0]
        except (Problem, IndexError) as exc:
            log.warning("tenant %s: alert %r from Partner Center unreadable, skipped: %s",
                        tenant_id, raw.get("id") if isinstance(raw, dict) else None, getattr(exc, "detail", exc))
            continue
        alerts.append(alert)
        activity[alert.id] = domain.newest_activity(raw, ignoring_client_id=client_id)
    return alerts, activity


async def apply_graph_alerts(
    pool: asyncpg.Pool, settings, tenant_id: str, page: list[dict], *, client_id: str
) -> AlertEvents:
    """Record one page of Partner Center's alerts for ``tenant_id``; the events it yielded."""
    alerts, activity = _parsed(tenant_id, page, utcnow(), client_id)
    if not alerts:
        return []

    async def adjust(conn: asyncpg.Connection, states: AlertStates, posted: list[Alert], now: datetime) -> list[Alert]:
        pending = await store.pending_writebacks(conn, tenant_id, [a.id for a in posted])
        adjusted = []
        for alert in posted:
            alert = reconcile.own_echo_as_system(alert, client_id)
            waiting = pending.get(alert.id)
            previous = states.previous(alert.id)
            graph_at = activity.get(alert.id)
            if waiting is not None and previous is not None:
                if graph_at is not None and graph_at > waiting.changed_at:
                    await store.supersede_writeback(conn, tenant_id, alert.id, graph_activity_at=graph_at, now=now)
                else:
                    alert = reconcile.keep_local_response(alert, previous)
            adjusted.append(alert)
        return adjusted

    async def after(conn: asyncpg.Connection, states: AlertStates, events: AlertEvents, now: datetime) -> None:
        await store.mark_seen(conn, tenant_id, [(a.id, activity.get(a.id)) for a in alerts], now=now)

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
        client = self._clients.for_credentials(
            claimed.tenant_id, claimed.generation, claimed.directory_id, claimed.client_id, claimed.sealed_credentials
        )
        seen = 0
        try:
            async for page in client.list_alerts(filter=domain.poll_filter(claimed.changes_since)):
                await apply_graph_alerts(self._pool, self._settings, claimed.tenant_id, page,
                                         client_id=claimed.client_id)
                seen += len(page)
        except GraphError as exc:
            wait = domain.next_poll_after_failure(claimed.consecutive_failures + 1, interval)
            if isinstance(exc, GraphThrottled):
                wait = max(wait, timedelta(seconds=exc.retry_after))
            log.warning("tenant %s: poll of Partner Center failed after %d alerts, next in %.0f s: %s",
                        claimed.tenant_id, seen, wait.total_seconds(), exc)
            await store.finish_poll(self._pool, claimed, owner=self._owner, ok=False, error=str(exc),
                                    alerts_seen=seen, next_poll_at=utcnow() + wait,
                                    changes_since=claimed.changes_since)
            return True
        except Problem as exc:
            # The database went away mid-poll: what was recorded stays; the lease runs out and the
            # connection is polled again.
            log.warning("tenant %s: poll interrupted: %s", claimed.tenant_id, exc.detail)
            return True
        log.info("tenant %s: polled Partner Center, %d alerts read", claimed.tenant_id, seen)
        await store.finish_poll(self._pool, claimed, owner=self._owner, ok=True, error=None, alerts_seen=seen,
                                next_poll_at=started + interval, changes_since=started)
        return True
