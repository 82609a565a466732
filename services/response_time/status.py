"""Publishes the ``securityAlertsPromptlyResolved`` requirement status when the figures change.

Every applied batch of alert events marks its tenants *dirty* in the same transaction; this task
takes the marks and re-evaluates those tenants as soon as it is woken (after each commit, with a short
pause so a burst yields one evaluation), and every tenant on a timer, so a response leaving the
30-day window changes the figures and the status with no new event. Per tenant, the
evaluation holds the tenant's status row locked while it publishes and records what it published,
so several instances never interleave, and a crash before the record only publishes again
(at-least-once; scoring keeps the newest ``observedDateTime``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
from faststream.kafka import KafkaBroker

from services.response_time import domain, store
from services.response_time.config import Settings
from shared.events import ComplianceStatus, RequirementStatusObserved, Topic
from shared.kafka import publish_event
from shared.wire import utcnow

log = logging.getLogger(__name__)

SOURCE = "response-time"


def status_event(tenant_id: str, figures: domain.ResponseTimeFigures, now) -> RequirementStatusObserved:
    return RequirementStatusObserved(
        tenant_id=tenant_id, requirement_type=domain.REQUIREMENT_TYPE,
        compliance_status=ComplianceStatus.compliant if figures.compliant else ComplianceStatus.noncompliant,
        observed_date_time=now, source=SOURCE, insights=figures.model_dump(mode="json"))


async def evaluate_tenant(pool: asyncpg.Pool, broker: KafkaBroker, settings: Settings,
                          tenant_id: str) -> bool:
    """Recompute the tenant's figures; publish them if they changed. True if published."""
    async with pool.acquire() as conn, conn.transaction():
        last_key = await store.lock_tenant(conn, tenant_id)
        now = utcnow()
        figures = await store.current_figures(conn, tenant_id, now)
        if not domain.should_publish(last_key, figures):
            return False
        await publish_event(broker, settings, Topic.requirement_status, status_event(tenant_id, figures, now))
        await store.record_published(conn, tenant_id, figures, now)
        return True


class StatusPublisher:
    """The background task: wake-ups after commits, and the periodic re-evaluation of every tenant."""

    def __init__(self, pool: asyncpg.Pool, broker: KafkaBroker, settings: Settings) -> None:
        self.pool, self.broker, self.settings = pool, broker, settings
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
        while True:
            sweep = loop.time() >= next_sweep
            if sweep:
                next_sweep = loop.time() + self.settings.response_time_reevaluate_seconds
            self._wake.clear()
            await self._round(sweep)
            if not await self._any_dirty():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), max(0.0, next_sweep - loop.time()))
            # Let a burst of events land first: one evaluation (and at most one publish) per tenant
            # and pause, not one per event.
            await asyncio.sleep(self.settings.response_time_status_pause_seconds)

    async def _round(self, sweep: bool) -> None:
        tenants: list[str] = []
        try:
            tenants = await (store.all_tenants(self.pool) if sweep else store.take_dirty(self.pool))
            while tenants:
                if await evaluate_tenant(self.pool, self.broker, self.settings, tenants[0]):
                    log.info("published %s status for %s", domain.REQUIREMENT_TYPE, tenants[0])
                tenants.pop(0)
        except Exception:
            log.exception("re-evaluating response-time figures failed")
            # Those not done are marked again; a later round (at the latest the sweep) retries them.
            with contextlib.suppress(Exception):
                await store.mark_dirty(self.pool, tenants)
            await asyncio.sleep(1.0)

    async def _any_dirty(self) -> bool:
        try:
            return await store.any_dirty(self.pool)
        except Exception:
            return False
