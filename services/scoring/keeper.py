"""Keeps the score live: applies status events, keeps the Redis cache in step, rebuilds it when lost,
records preview requirements becoming active on their date, and on start records what a changed
catalogue changed in the stored scores.

Every write goes to PostgreSQL first (the durable source, with the ``score-changed`` events in its
outbox, which the app's outbox relay publishes), then the tenant's whole state is merged into Redis.
Merges keep the newest observation, so they commute: event handling, rebuilds and several instances
may interleave in any order. Nothing here waits for the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime

import asyncpg

from services.scoring import domain, store
from services.scoring.cache import ScoreCache
from services.scoring.changes import ChangeKind, Changes
from services.scoring.metrics import SCORE_CHANGES
from shared.catalogue import Catalogue
from shared.events import RequirementStatusObserved
from shared.wire import utcnow

log = logging.getLogger(__name__)


class ScoreKeeper:
    def __init__(
        self,
        pool: asyncpg.Pool,
        cache: ScoreCache,
        catalogue: Catalogue,
        *,
        check_seconds: float = 1.0,
        activation_check_max_seconds: float = 60.0,
        clock: Callable[[], datetime] = utcnow,
        changes: Changes | None = None,
    ) -> None:
        self.pool = pool
        self.changes = changes  # None: nobody is told (tests of the keeper alone)
        self.cache = cache
        self.catalogue = catalogue
        self.check_seconds = check_seconds
        self.activation_check_max_seconds = activation_check_max_seconds
        self.clock = clock
        self._rebuild_lock = asyncio.Lock()
        self._rebuild_wanted = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    # --- events ----------------------------------------------------------------------------------------

    async def apply(self, event: RequirementStatusObserved) -> store.Applied:
        if self.catalogue.get(event.requirement_type) is None:
            log.info(
                "status of %s for tenant %s kept, but the catalogue does not list that requirement",
                event.requirement_type,
                event.tenant_id,
            )
        applied = await store.apply_observation(self.pool, self.catalogue, event, self.clock())
        # Also on a redelivery: the previous attempt may have stopped after its commit.
        await self.sync_tenant(event.tenant_id)
        if applied.claimed and applied.score_changed:
            SCORE_CHANGES.inc()
        if applied.claimed and (applied.superseded or applied.score_changed):
            await self._tell(event.tenant_id)
        return applied

    async def apply_batch(self, events: Sequence[RequirementStatusObserved]) -> list[store.Applied]:
        """:meth:`apply` of a batch: one transaction (``store.apply_observations``), then each of its
        tenants merged into Redis, all read in one go; each outcome in the events' order."""
        if not events:
            return []
        for event in events:
            if self.catalogue.get(event.requirement_type) is None:
                log.info("status of %s for tenant %s kept, but the catalogue does not list that requirement",
                         event.requirement_type, event.tenant_id)
        outcomes = await store.apply_observations(self.pool, self.catalogue, events, self.clock())
        tenants = sorted({event.tenant_id for event in events})
        # Also on a redelivery: the previous attempt may have stopped after its commit.
        await self._merge(await store.snapshots(self.pool, tenants))
        SCORE_CHANGES.inc(sum(1 for applied in outcomes if applied.claimed and applied.score_changed))
        told = {event.tenant_id for event, applied in zip(events, outcomes, strict=True)
                if applied.claimed and (applied.superseded or applied.score_changed)}
        for tenant_id in sorted(told):
            await self._tell(tenant_id)
        return outcomes

    async def _tell(self, tenant_id: str) -> None:
        """The tenant's streams: its score or a requirement's status changed (committed and in Redis)."""
        if self.changes is not None:
            await self.changes.publish(tenant_id, ChangeKind.score)

    async def sync_tenant(self, tenant_id: str) -> None:
        await self._merge(await store.snapshots(self.pool, [tenant_id]))

    async def _merge(self, snapshots: list[store.TenantSnapshot]) -> None:
        """Merge each tenant's state into Redis, then forget any of them offboarded meanwhile: a snapshot
        read just before an offboarding committed must not bring back the hash it deleted after."""
        for snapshot in snapshots:
            await self.cache.merge(snapshot)
        for tenant_id in await store.offboarded_now(self.pool, [s.tenant_id for s in snapshots]):
            await self.cache.forget(tenant_id)

    # --- preview requirements becoming active -----------------------------------------------------------

    async def rescore_everyone(self) -> int:
        """Recompute every tenant's score now; returns how many changed."""
        changed = 0
        now = self.clock()
        async for tenants in store.every_tenant(self.pool):
            for tenant_id in tenants:
                if await store.rescore(self.pool, self.catalogue, tenant_id, now):
                    changed += 1
                    SCORE_CHANGES.inc()
                    await self.sync_tenant(tenant_id)
                    await self._tell(tenant_id)
        return changed

    async def _activation_timer(self) -> None:
        # Scores read from the cache already count a preview requirement from its date on; this
        # records the change (history entry, score-changed event) when the date passes.
        last_check = self.clock()
        # On start, once: the stored scores may predate this catalogue (a weight, an assumed status or
        # a requirement changed, a preview date passed while no instance ran). A rescore that changes
        # nothing writes nothing.
        try:
            changed = await self.rescore_everyone()
            if changed:
                log.info("the catalogue changed %d stored score(s) since they were recorded", changed)
        except Exception:
            log.exception("recording the catalogue's changes to the stored scores failed")
        while True:
            due = domain.next_activation(self.catalogue, last_check)
            now = self.clock()
            wait = self.activation_check_max_seconds if due is None else (due - now).total_seconds()
            await asyncio.sleep(min(max(wait, 0.0), self.activation_check_max_seconds))
            now = self.clock()
            if due is not None and due <= now:
                try:
                    changed = await self.rescore_everyone()
                    log.info(
                        "preview requirement(s) active since %s: %d score(s) changed",
                        due.isoformat(),
                        changed,
                    )
                    last_check = due
                except Exception:
                    log.exception("recording preview activation failed; trying again")
                    await asyncio.sleep(self.check_seconds)

    # --- the cache and its rebuild -----------------------------------------------------------------------

    def request_rebuild(self) -> None:
        self._rebuild_wanted.set()

    async def rebuild(self) -> bool:
        """Refill Redis from PostgreSQL; True once the cache is complete (marked ready)."""
        async with self._rebuild_lock:
            if await self.cache.is_ready():
                return True
            run_id = await self.cache.server_run_id()
            token = await self.cache.begin_rebuild()
            tenants = 0
            async for batch in store.every_tenant(self.pool):
                await self._merge(await store.snapshots(self.pool, batch))
                tenants += len(batch)
            done = await self.cache.finish_rebuild(token, run_id)
            if done:
                log.info("score cache rebuilt from PostgreSQL: %d tenant(s)", tenants)
            else:
                log.warning("Redis lost data again during the rebuild; rebuilding once more")
            return done

    async def _watch_cache(self) -> None:
        while True:
            # Cleared before the check, so a read asking during the check is not lost.
            self._rebuild_wanted.clear()
            try:
                if not await self.cache.is_ready():
                    log.warning("the score cache in Redis is missing; rebuilding it from PostgreSQL")
                    await self.rebuild()
            except Exception:
                log.exception("checking the score cache failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._rebuild_wanted.wait(), self.check_seconds)

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._watch_cache(), name="scoring-cache-watch"),
            asyncio.create_task(self._activation_timer(), name="scoring-activation-timer"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
