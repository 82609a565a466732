"""The delivery loop of a notifier process: fires due timers, sends due deliveries; beside it, the
dead letters are published.

Runs beside the Kafka consumer, outside its critical path: handlers only record what must be sent.
Several notifier processes may run at once; ``FOR UPDATE SKIP LOCKED`` gives each row to one.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import asyncpg
from faststream.kafka import KafkaBroker

from services.notifier import domain, store
from services.notifier.config import Settings
from services.notifier.transports import Transports
from shared.dead_letters import dead_delivery, publish_dead_letter
from shared.events import Topic
from shared.kafka import topic_name

log = logging.getLogger(__name__)

_DEAD_LETTER_NAMESPACE = uuid.UUID("b5e0f2a4-17c3-4d8e-a1f6-0c2d9e8b7a31")


class DeliveryWorker:
    def __init__(
        self, settings: Settings, pool: asyncpg.Pool, broker: KafkaBroker, transports: Transports
    ) -> None:
        self.settings, self.pool, self.broker, self.transports = settings, pool, broker, transports
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
        """Keep up to WORKER_BATCH_SIZE sends in flight; claim more as soon as one finishes.

        The dead letters are published by a task of their own beside this loop, so a broker that
        does not answer holds back neither the timers nor the sends.
        """
        in_flight: set[asyncio.Task] = set()
        dead_letters = asyncio.create_task(self.publish_dead_letters_forever(), name="dead-letters")
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
            dead_letters.cancel()  # what it had not published yet stays in the delivery log
            await asyncio.wait({dead_letters}, timeout=5)
            # Sends cut short stay claimed and are taken again when their lease expires.
            if in_flight:
                await asyncio.wait(in_flight, timeout=5)
                for task in in_flight:
                    task.cancel()

    async def run_once(self, in_flight: set[asyncio.Task]) -> bool:
        """One pass; True if it found work (so the next pass starts at once if there is room)."""
        s = self.settings
        fired = await store.fire_due_timers(
            self.pool, escalation_email=bool(s.escalation_email), limit=s.worker_batch_size
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
            log.exception("outcome of delivery %s could not be recorded", row["delivery_id"])
            return
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

    async def publish_dead_letters_forever(self) -> None:
        """Publish the dead letters every WORKER_POLL_SECONDS; after a failure, try again later."""
        s = self.settings
        while True:
            pause = s.worker_poll_seconds
            try:
                await self.publish_dead_letters()
            except TimeoutError:
                pause = max(pause, s.dead_letter_publish_timeout_seconds)
                log.warning(
                    "the broker did not acknowledge a dead letter within %g s; trying again in %g s",
                    s.dead_letter_publish_timeout_seconds,
                    pause,
                )
            except Exception as exc:  # the database or the broker away now is no reason to stop
                pause = max(pause, s.dead_letter_publish_timeout_seconds)
                log.warning("publishing dead letters failed (%s); trying again in %g s", exc, pause)
            await asyncio.sleep(pause)

    async def publish_dead_letters(self) -> None:
        """Publish what is still to publish; raises TimeoutError when the broker does not acknowledge
        one within DEAD_LETTER_PUBLISH_TIMEOUT_SECONDS (that row and those after it stay to publish)."""
        # An outbox: the row is marked dead first, the event published after, so a crash between
        # the two (or a publish cut short by the timeout, which the broker may still take) publishes
        # it on a later pass: the same eventId, consumers dedupe.
        for row in await store.unpublished_dead_letters(self.pool, self.settings.worker_batch_size):
            letter = dead_delivery(
                event_id=uuid.uuid5(_DEAD_LETTER_NAMESPACE, f"{row['delivery_id']}:{row['redeliveries']}"),
                tenant_id=row["tenant_id"],
                delivery_id=str(row["delivery_id"]),
                alert_id=row["alert_id"],
                channel=row["channel"],
                kind=row["kind"],
                attempts=row["attempts"],
                last_error=row["last_error"] or "unknown",
                last_attempt_date_time=row["last_attempt_at"],
            )
            await publish_dead_letter(self.broker, topic_name(self.settings, Topic.dead_letter), letter,
                                      timeout=self.settings.dead_letter_publish_timeout_seconds)
            await store.mark_dead_letter_published(self.pool, row["delivery_id"], row["redeliveries"])
