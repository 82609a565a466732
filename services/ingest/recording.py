"""Recording alerts: one path for every way an alert comes in or changes (SPEC §2).

A webhook or API post, a change through the API (``PATCH``) and a poll of Microsoft Graph
(``services.ingest.graph.poller``) all lock the alerts' last known states, decide (``domain``), and
record the new states with their events in the outbox, in the database transaction holding the
locks: both commit, or neither. There is no second dedupe: an alert a poll reads that changes
nothing is a duplicate here exactly as a repeated webhook is.

Two hooks let the Partner Center connection take part in the same transaction: ``adjust`` sees the
locked states before the decision (a poll keeps a response recorded here that Partner Center has not
seen yet), ``after`` sees the events (a response recorded here is queued for the write-back).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from datetime import datetime

import asyncpg

from services.ingest.domain import decide
from services.ingest.outgoing import EventTooLarge, checked_values, enqueue
from services.ingest.store import AlertStates, insert_new_alert, lock_alert_states, prune_webhook_ids
from shared.alerts import Alert
from shared.events import Actor, AlertCreated, AlertUpdated, Topic
from shared.http import Problem
from shared.wire import built_of_checked_text, utcnow

log = logging.getLogger(__name__)

# Share of signed requests that also forget expired webhook-ids (keeps that table small, cheaply).
_PRUNE_SHARE = 0.01

AlertEvents = list[AlertCreated | AlertUpdated]
# (the transaction's connection, the locked states, the alerts as posted, the events' time) -> the alerts to decide on
Adjust = Callable[[asyncpg.Connection, AlertStates, list[Alert], datetime], Awaitable[list[Alert]]]
# (the transaction's connection, the locked states, the events decided, their time)
After = Callable[[asyncpg.Connection, AlertStates, AlertEvents, datetime], Awaitable[None]]


def unavailable(what: str, settings) -> Problem:
    return Problem(
        503,
        "Service unavailable",
        f"{what}: nothing was stored; retry later",
        headers={"Retry-After": str(settings.retry_after_seconds)},
    )


def _too_large(events: AlertEvents, exc: EventTooLarge) -> Problem:
    alert_id = events[exc.index].alert.id
    return Problem(
        413,
        "Alert too large",
        f"alert {alert_id!r} makes a {exc.size}-byte event; at most {exc.limit} bytes",
        alertId=alert_id,
    )


async def record_alerts(
    pool: asyncpg.Pool,
    settings,
    tenant_id: str,
    alerts: list[Alert],
    *,
    api_actor: Actor | None = None,
    patch: Callable[[Alert, datetime], Alert] | None = None,
    webhook_id: str | None = None,
    adjust: Adjust | None = None,
    after: After | None = None,
) -> AlertEvents:
    """Lock, decide, record the states and their events. With ``patch``, the alerts must exist and each is posted as
    ``patch(its last known state, now)``. A signed post (``webhook_id``) already accepted yields no event.

    Raises :class:`Problem` 404 (a patched alert unknown), 413 (an event too large) or 503 (the
    database away, or a lock conflict): then nothing was recorded.
    """
    try:
        if len(alerts) == 1 and patch is None and adjust is None and after is None and webhook_id is None:
            # The commonest post (one webhook per alert) is of an alert never seen: then one statement
            # records it, as the locked path below would (the same state, event and order). A known
            # alert is left untouched by it, and decided below under its lock, at a time read then.
            created = decide(tenant_id, alerts[0], None, now=utcnow(), api_actor=api_actor)
            try:
                [value] = checked_values([created], settings.max_event_bytes)
            except EventTooLarge as exc:
                raise _too_large([created], exc) from None
            if await insert_new_alert(pool, created, value):
                return [created]
        async with lock_alert_states(
            pool, tenant_id, alerts, insert_new=patch is None, webhook_id=webhook_id
        ) as states:
            # The time of the events is read once the locks are held: a request that waited behind
            # another one must not publish a newer state with an older time (consumers keep the
            # state of the newest time and would drop it).
            now = utcnow()
            if states.replayed:
                log.info("webhook %r of tenant %s already accepted: a duplicate", webhook_id, tenant_id)
                return []
            if patch is not None:
                if missing := [a.id for a in alerts if states.previous(a.id) is None]:
                    raise Problem(404, "Not found", f"no alert {missing[0]!r} for tenant {tenant_id}")
                alerts = [patch(states.previous(a.id), now) for a in alerts]
            if adjust is not None:
                alerts = await adjust(states.connection, states, alerts, now)
            events: AlertEvents = []
            for alert in alerts:
                previous, version = states.previous(alert.id), states.version(alert.id)
                with built_of_checked_text():  # of alerts read through a model and states from storage
                    event = decide(
                        tenant_id, alert, previous, now=now, previous_version=version, api_actor=api_actor,
                        created_json=states.created_json(alert),
                    )
                if event is not None:
                    events.append(event)
            try:
                await enqueue(states.connection, [(Topic.alerts, e) for e in events],
                              max_event_bytes=settings.max_event_bytes)
            except EventTooLarge as exc:
                raise _too_large(events, exc) from None
            await states.save([e for e in events if isinstance(e, AlertUpdated)])
            if after is not None:
                await after(states.connection, states, events, now)
    except (
        OSError,
        asyncpg.PostgresConnectionError,
        asyncpg.InterfaceError,
        asyncpg.CannotConnectNowError,
    ) as exc:
        log.warning("database unavailable: %s", exc)
        raise unavailable("the database is unavailable", settings) from None
    except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError) as exc:
        # Sorted locking should make this impossible; if PostgreSQL still picks this request as a
        # deadlock victim, nothing was recorded and a retry succeeds.
        log.warning("lock conflict: %s", exc)
        raise unavailable("a concurrent post of the same alerts conflicted", settings) from None
    if webhook_id is not None and random.random() < _PRUNE_SHARE:
        try:
            await prune_webhook_ids(pool)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("could not prune old webhook-ids: %s", exc)
    return events
