"""Publishes the ``securityAlertsPromptlyResolved`` requirement status when the figures change.

Every applied batch of alert events marks its tenants *dirty* in the same transaction; this task
takes the marks and re-evaluates those tenants as soon as it is woken (after each commit, with a short
pause so a burst yields one evaluation), each tenant again at its next *edge* (recorded at each
evaluation: when its earliest response leaves the 30-day window, its oldest open alert becomes near the
limit, or its open alerts' ages make ``atRisk`` flip), so such a change publishes on time with no new
event, and every tenant on a timer (a safety net). That sweep goes on in short slices with the changed
and due tenants evaluated between two of them, so a sweep over many tenants never delays a change.

Per tenant, one transaction holds the tenant's status row locked, computes the figures and, if they
changed, enqueues the status in the outbox and records it as published: several instances never
interleave, and the status goes out once that transaction commits (the outbox relay publishes it;
``on_enqueued`` wakes the relay at once). A broker outage does not touch the evaluation: the statuses
wait in the outbox and go out, in order, when the broker is back.

``observedDateTime`` is strictly increasing per tenant whatever the instances' clocks say: each is
``max(now, last published + 1 µs)``, so a later evaluation on an instance whose clock lags is never
dropped by scoring as older.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import asyncpg

from services.response_time import domain, metrics, store
from services.response_time.config import Settings
from shared.events import ComplianceStatus, RequirementStatusObserved
from shared.response_time import ResponseTimeFigures, figures
from shared.wire import utcnow

log = logging.getLogger(__name__)

SOURCE = "response-time"


def status_event(tenant_id: str, current: ResponseTimeFigures, now: datetime) -> RequirementStatusObserved:
    return RequirementStatusObserved(
        tenant_id=tenant_id, requirement_type=domain.REQUIREMENT_TYPE,
        compliance_status=ComplianceStatus.compliant if current.compliant else ComplianceStatus.noncompliant,
        observed_date_time=now, source=SOURCE, insights=current.model_dump(mode="json"))


MICROSECOND = timedelta(microseconds=1)
# How long a sweep goes on before the changed and due tenants get their turn again.
SWEEP_SLICE_SECONDS = 0.5
# Evaluations failing one after the other that mean an outage rather than one bad tenant.
OUTAGE_AFTER_FAILURES = 3


def next_observed(now: datetime, last_observed: datetime | None) -> datetime:
    """Strictly after the last published ``observedDateTime`` of the tenant, even if this clock lags."""
    return now if last_observed is None else max(now, last_observed + MICROSECOND)


async def evaluate_tenant(pool: asyncpg.Pool, tenant_id: str) -> bool:
    """Recompute the tenant's figures; if they changed, enqueue the status. True if enqueued."""
    async with pool.acquire() as conn, conn.transaction():
        last = await store.lock_tenant(conn, tenant_id)
        if last is None:  # offboarded: nothing of it is evaluated again
            return False
        now = utcnow()
        aggregates = await store.window_aggregates(conn, tenant_id, now)
        current = figures(aggregates, now)
        await store.record_next_edge(conn, tenant_id, domain.next_edge(aggregates, now))
        if not domain.should_publish(last.key, current):
            return False
        await store.record_published(conn, status_event(tenant_id, current, next_observed(now, last.observed_at)),
                                     current)
    metrics.count_status(current)  # once committed
    return True


class StatusPublisher:
    """The background task: wake-ups after commits, and the periodic re-evaluation of every tenant.

    ``on_enqueued`` is called after each committed status (the outbox relay's ``wake``).
    """

    def __init__(self, pool: asyncpg.Pool, settings: Settings, *,
                 on_enqueued: Callable[[], None] = lambda: None) -> None:
        self.pool, self.settings, self.on_enqueued = pool, settings, on_enqueued
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    def wake(self) -> None:
        self._wake.set()

    async def check_running(self) -> None:
        """Readiness: the task must be alive (it never ends on its own)."""
        if self._task is None or self._task.done():
            raise RuntimeError("the status publisher is not running")

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="response-time-status")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_sweep = loop.time()  # at start, every tenant: the window may have moved while down
        unswept: list[str] = []  # the sweep under way, last tenant first (taken with pop())
        while True:
            if not unswept and loop.time() >= next_sweep:
                unswept, retry = await self._all_tenants()
                next_sweep = loop.time() + (1.0 if retry else self.settings.response_time_reevaluate_seconds)
            self._wake.clear()
            await self._evaluate_changed()
            if unswept:
                # A sweep of many tenants takes a while: it goes on in slices, and the changed and due
                # tenants are evaluated between two slices, so a sweep never holds back a change.
                await self._sweep_slice(unswept)
                if not self._wake.is_set():
                    continue
            elif not await self._any_dirty():
                wake_in = min(next_sweep - loop.time(), await self._seconds_to_next_edge())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), max(0.0, wake_in))
            # Let a burst of events land first: one evaluation (and at most one publish) per tenant
            # and pause, not one per event.
            await asyncio.sleep(self.settings.response_time_status_pause_seconds)

    async def _evaluate_changed(self) -> None:
        """The tenants whose alerts changed, and those whose figures reached an edge (no event needed).

        One tenant failing does not hold back the others; it is marked again and retried in a later
        round. Several failing in a row is an outage (of the database): the rest are marked again
        at once rather than each waiting for its own timeout.
        """
        tenants: list[str] = []
        try:
            tenants = await store.take_dirty(self.pool)  # taken: ours to evaluate or to mark again
            tenants = sorted(set(tenants) | set(await store.due_tenants(self.pool, utcnow())))
        except Exception:
            log.exception("listing the response-time tenants to re-evaluate failed")
            await self._mark_again(tenants)
            return
        failed: list[str] = []
        failures_in_a_row = 0
        for position, tenant in enumerate(tenants):
            try:
                await self.evaluate(tenant)
                failures_in_a_row = 0
            except Exception:
                log.exception("re-evaluating the response-time figures of %s failed", tenant)
                failed.append(tenant)
                failures_in_a_row += 1
                if failures_in_a_row >= OUTAGE_AFTER_FAILURES:
                    failed += tenants[position + 1:]
                    break
        if failed:
            await self._mark_again(failed)

    async def _mark_again(self, tenants: list[str]) -> None:
        """Mark ``tenants`` for a later round (at the latest the sweep retries them) and back off."""
        with contextlib.suppress(Exception):
            await store.mark_dirty(self.pool, tenants)
        await asyncio.sleep(1.0)

    async def _sweep_slice(self, unswept: list[str]) -> None:
        """Evaluate swept tenants for about ``SWEEP_SLICE_SECONDS``.

        Only the time ends a slice (not a wake-up): under steady traffic the sweep still advances at
        its own pace, and a change waits at most one slice.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SWEEP_SLICE_SECONDS
        while unswept and loop.time() < deadline:
            tenant = unswept.pop()
            try:
                await self.evaluate(tenant)
            except Exception:
                log.exception("re-evaluating the response-time figures of %s failed", tenant)
                await self._mark_again([tenant])
                return

    async def evaluate(self, tenant_id: str) -> None:
        """One tenant's evaluation (raises if it fails: the caller marks the tenant again)."""
        if await evaluate_tenant(self.pool, tenant_id):
            self.on_enqueued()
            log.info("enqueued the %s status of %s", domain.REQUIREMENT_TYPE, tenant_id)

    async def _all_tenants(self) -> tuple[list[str], bool]:
        """Every tenant, last first, for a sweep; and whether listing them failed (retry soon)."""
        try:
            return sorted(await store.all_tenants(self.pool), reverse=True), False
        except Exception:
            log.exception("listing the tenants to re-evaluate failed")
            return [], True

    async def _seconds_to_next_edge(self) -> float:
        """Until the earliest tenant edge (a response leaving the window, openAlertNearLimit or atRisk flipping)."""
        try:
            edge = await store.next_edge(self.pool)
        except Exception:
            return float("inf")  # the sweep still comes
        return float("inf") if edge is None else (edge - utcnow()).total_seconds()

    async def _any_dirty(self) -> bool:
        try:
            return await store.any_dirty(self.pool)
        except Exception:
            return False
