"""The delivery loop of a notifier process: fires due timers, sends due deliveries.

Runs beside the Kafka consumer, outside its critical path: handlers only record what must be sent.
Several notifier processes may run at once; ``FOR UPDATE SKIP LOCKED`` gives each row to one. It
never talks to Kafka: what it records is published by the outbox relay (``shared/outbox.py``), so
a broker that does not answer holds back no send.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from services.notifier import domain, metrics, store
from services.notifier.config import Settings
from services.notifier.transports import Transports

log = logging.getLogger(__name__)

# Due timers turned into deliveries per pass (one transaction, a few statements whatever the count):
# they send nothing themselves, so a burst of alerts already past their reminder or escalation is
# not fired WORKER_BATCH_SIZE at a time.
TIMERS_PER_PASS = 500


class DeliveryWorker:
    def __init__(self, settings: Settings, pool: asyncpg.Pool, transports: Transports) -> None:
        self.settings, self.pool, self.transports = settings, pool, transports
        self.policy = domain.RetryPolicy(
            settings.max_attempts,
            settings.retry_base_seconds,
            settings.retry_max_seconds,
            settings.max_retry_after_seconds,
        )
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """New work was recorded: look now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Keep up to WORKER_BATCH_SIZE sends in flight; claim more as soon as one finishes."""
        in_flight: set[asyncio.Task] = set()
        try:
            while True:
                self._wake.clear()
                in_flight -= {task for task in in_flight if task.done()}
                try:
                    busy = await self.run_once(in_flight)
                except Exception:
                    log.exception("delivery loop failed; trying again after a pause")
                    busy = False
                if busy and len(in_flight) < self.settings.worker_batch_size:
                    continue  # more may be due right now
                woken = asyncio.ensure_future(self._wake.wait())
                try:
                    await asyncio.wait(
                        {woken, *in_flight},
                        timeout=self.settings.worker_poll_seconds,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    woken.cancel()
        finally:
            # Sends cut short stay claimed and are taken again when their lease expires.
            if in_flight:
                await asyncio.wait(in_flight, timeout=5)
                for task in in_flight:
                    task.cancel()

    async def run_once(self, in_flight: set[asyncio.Task]) -> bool:
        """One pass; True if it found work (so the next pass starts at once if there is room)."""
        s = self.settings
        fired = await store.fire_due_timers(
            self.pool, escalation_email=bool(s.escalation_email), limit=TIMERS_PER_PASS
        )
        room = s.worker_batch_size - len(in_flight)
        rows = []
        if room > 0:
            rows = await store.claim_due_deliveries(
                self.pool, limit=room, lease_seconds=s.delivery_lease_seconds
            )
            in_flight.update(asyncio.create_task(self.deliver(row)) for row in rows)
        return bool(fired or rows)

    async def deliver(self, row: asyncpg.Record) -> None:
        attempt = await self.transports.send(row)
        decision = domain.decide(row["attempts"], attempt, self.policy)
        try:
            recorded = await store.record_outcome(self.pool, row, decision, attempt)
        except Exception:
            # The row stays claimed: it is sent again, with the same Idempotency-Key, after its lease.
            metrics.count_delivery(row["channel"], None)
            log.exception("outcome of delivery %s could not be recorded", row["delivery_id"])
            return
        # (A row that moved on meanwhile records nothing: its attempt is counted as what was decided.)
        metrics.count_delivery(row["channel"], recorded or decision.state)
        if recorded == "pending" and decision.state == "skipped":
            self.wake()  # the contact arrived while this send looked for it: due again now
        log.info(
            "delivery %s %s/%s to %s, attempt %d: %s%s%s",
            row["delivery_id"],
            row["kind"],
            row["subject_id"],
            row["channel"],
            row["attempts"],
            recorded or decision.state,
            f" in {decision.delay_seconds:.1f} s" if recorded == "pending" else "",
            f" ({attempt.error})" if attempt.error else "",
        )
        if not recorded:
            log.warning(
                "delivery %s changed while it was sent; outcome %s not recorded",
                row["delivery_id"],
                decision.state,
            )

    async def prune_forever(self) -> None:
        """Keep the delivery log and the timers from growing without bound (DELIVERY_LOG_RETENTION_DAYS)."""
        while True:
            try:
                deliveries, timers, marks = await store.prune_finished(
                    self.pool, self.settings.delivery_log_retention_days
                )
                if deliveries or timers or marks:
                    log.info("pruned %d finished deliveries, %d finished timers and %d closed-alert marks",
                             deliveries, timers, marks)
            except Exception as exc:  # the database being away now is no reason to stop trying later
                log.warning("pruning the delivery log failed: %s", exc)
            await asyncio.sleep(self.settings.prune_every_seconds)

    async def announce_earlier_deliveries(self) -> None:
        """Publish, once, the deliveries logged before each change was published (an upgrade from
        before #11); retried until it is done."""
        while True:
            try:
                announced = await store.announce_unannounced_deliveries(self.pool)
            except Exception as exc:  # the database being away now is no reason to give up
                log.warning("announcing the earlier deliveries failed: %s", exc)
                await asyncio.sleep(max(5.0, self.settings.worker_poll_seconds))
                continue
            if announced:
                log.info("published %d deliveries logged before their changes were published", announced)
            return
