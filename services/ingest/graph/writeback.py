"""Writing responses recorded here back to Partner Center (``PATCH .../securityAlerts/{id}``).

A response (a change of ``status`` or ``resolvedReason`` through this system: the API, and later the
dashboard, a one-click link, a ticketing callback) to an alert that came from Partner Center is
queued in the transaction that records it (:func:`queue_writebacks`, the ``after`` hook of
``services.ingest.recording``). The queue is ``graph_alert_sync`` itself: one row per alert holding
the newest change to write, so a second response before the first was written replaces it.

:class:`WritebackWorker` takes due rows under a lease (several instances never write the same one),
reads Partner Center's copy first, then:
- Partner Center's copy changed after our response (newest activity wins): our change is dropped
  and Partner Center's state is recorded through the poll path;
- it already shows our change: synced, no PATCH;
- otherwise PATCH. Throttling (429, ``Retry-After``), Graph away (5xx, no answer) and a refused
  sign-in (a secret to fix: the connection shows it) keep the row pending, retried with backoff;
  a permanent refusal (another 4xx, 404 included) marks it failed, visible on the alert.
Changes that came from Partner Center are never queued: the poll path has no ``after`` hook that
queues, so nothing loops.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import asyncpg

from services.ingest.graph import domain, store
from services.ingest.graph.client import GraphRefused, GraphThrottled, GraphUnavailable, SignInRefused
from services.ingest.graph.clients import GraphClients
from services.ingest.graph.poller import apply_graph_alerts
from services.ingest.metrics import GRAPH_WRITEBACKS
from services.ingest.recording import AlertEvents
from services.ingest.store import AlertStates
from shared.events import AlertUpdated
from shared.sealed import SealBroken
from shared.wire import utcnow

log = logging.getLogger(__name__)


async def queue_writebacks(conn: asyncpg.Connection, states: AlertStates, events: AlertEvents, now: datetime) -> None:
    """Queue each response of ``events`` for Partner Center, in the transaction recording it (an alert
    that did not come from Partner Center has no sync row and is left alone)."""
    for event in events:
        if not isinstance(event, AlertUpdated) or not event.status_changes:
            continue
        alert = event.alert
        await store.request_writeback(
            conn,
            event.tenant_id,
            event.alert_id,
            status=alert.status.value if alert.status else "active",
            resolved_reason=alert.resolved_reason.value if alert.resolved_reason else None,
            changed_at=now,
            changed_by=event.actor.id,
        )


class WritebackWorker:
    """Writes due write-backs one at a time: each is claimed just before it is written, so its lease
    (``GRAPH_LEASE_SECONDS``) covers one GET and one PATCH, never a queue of others' slow ones."""

    def __init__(self, pool: asyncpg.Pool, settings, clients: GraphClients) -> None:
        self._pool, self._settings, self._clients = pool, settings, clients

    async def run_once(self) -> int:
        """Write the next due write-back, if any; how many were taken (0 or 1)."""
        claimed = await store.claim_due_writebacks(
            self._pool, limit=1, lease_seconds=self._settings.graph_lease_seconds
        )
        for writeback in claimed:
            try:
                await self._write(writeback)
            except (SealBroken, ValueError) as exc:
                GRAPH_WRITEBACKS.labels("error").inc()
                await self._retry(writeback, f"the stored credentials cannot be opened ({exc}): put the "
                                  "connection again with its secret or certificate", self._backoff(writeback))
            except Exception as exc:  # one bad row must not stop the others: it waits and says why
                GRAPH_WRITEBACKS.labels("error").inc()
                log.exception("write-back of alert %r (tenant %s) failed unexpectedly",
                              writeback.alert_id, writeback.tenant_id)
                await self._retry(writeback, f"unexpected {type(exc).__name__}: {exc}"[:500], self._backoff(writeback))
        return len(claimed)

    def _backoff(self, writeback) -> float:
        return domain.writeback_backoff(
            writeback.attempts, max_seconds=self._settings.graph_writeback_max_backoff_seconds)

    async def _write(self, writeback) -> None:
        client = self._clients.for_credentials(
            writeback.tenant_id, writeback.generation, writeback.directory_id, writeback.client_id,
            writeback.sealed_credentials,
        )
        what = f"write-back of alert {writeback.alert_id!r} (tenant {writeback.tenant_id})"
        try:
            current = await client.get_alert(writeback.alert_id)
            graph_at = domain.newest_activity(current, ignoring_client_id=writeback.client_id)
            if graph_at is not None and graph_at > writeback.changed_at:
                log.info("%s: Partner Center changed it later (%s): its change wins", what, graph_at.isoformat())
                await apply_graph_alerts(
                    self._pool, self._settings, writeback.tenant_id, [current], client_id=writeback.client_id
                )
                if await store.writeback_state(self._pool, writeback) == "pending":
                    # Partner Center's copy could not be recorded (it does not read): not a tight loop.
                    await self._retry(writeback, "Partner Center changed the alert later, but its copy could "
                                      "not be recorded", self._backoff(writeback))
                else:
                    await store.release_writeback(self._pool, writeback)
                GRAPH_WRITEBACKS.labels("ok").inc()  # Graph answered; its newer change won
                return
            if _shows(current, writeback):
                await store.writeback_succeeded(self._pool, writeback, now=utcnow(), graph_activity_at=graph_at)
                GRAPH_WRITEBACKS.labels("ok").inc()
                return
            result = await client.update_alert(
                writeback.alert_id,
                status=writeback.pending_status,
                resolved_reason=writeback.pending_resolved_reason,
            )
            await store.writeback_succeeded(
                self._pool, writeback, now=utcnow(),
                graph_activity_at=domain.newest_activity(result, ignoring_client_id=writeback.client_id),
            )
            GRAPH_WRITEBACKS.labels("ok").inc()
            log.info("%s: written (status %s)", what, writeback.pending_status)
        except GraphThrottled as exc:
            GRAPH_WRITEBACKS.labels("throttled").inc()
            await self._retry(writeback, str(exc), max(exc.retry_after, self._backoff(writeback)))
        except (GraphUnavailable, SignInRefused) as exc:
            GRAPH_WRITEBACKS.labels("error").inc()
            # Graph away, or a credential the partner must fix (the connection's state says so): the
            # response waits, never lost.
            await self._retry(writeback, str(exc), self._backoff(writeback))
        except GraphRefused as exc:
            GRAPH_WRITEBACKS.labels("error").inc()
            if exc.status == 401:  # a token refused twice: the sign-in to fix, not the change
                await self._retry(writeback, str(exc), self._backoff(writeback))
                return
            log.warning("%s refused for good: %s", what, exc)
            await store.writeback_failed(self._pool, writeback, error=str(exc))

    async def _retry(self, writeback, error: str, wait_seconds: float) -> None:
        log.info("write-back of alert %r (tenant %s) retried in %.0f s: %s",
                 writeback.alert_id, writeback.tenant_id, wait_seconds, error)
        await store.writeback_retry(
            self._pool, writeback, error=error, next_attempt_at=utcnow() + timedelta(seconds=wait_seconds)
        )


def _shows(current: dict, writeback) -> bool:
    """Partner Center's copy already has the change (a PATCH whose outcome we did not record, say)."""
    return current.get("status") == writeback.pending_status and (
        current.get("resolvedReason") or None) == (writeback.pending_resolved_reason or None)
