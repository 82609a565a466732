"""The delivery loop of a notifier process: fires due timers, sends due deliveries.

Runs beside the Kafka consumer, outside its critical path: handlers only record what must be sent.
Several notifier processes may run at once; ``FOR UPDATE SKIP LOCKED`` gives each row to one. It
never talks to Kafka: what it records is published by the outbox relay (``shared/outbox.py``), so
a broker that does not answer holds back no send.

With tracing on (#16, ``shared.tracing``) each send is a span in the trace the row was made in (its
``traceparent``: the alert's webhook or POST), so the SMTP send or channel POST under it ends that trace.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from opentelemetry import trace
from opentelemetry.context import Context

from services.notifier import domain, metrics, store
from services.notifier.config import Settings
from services.notifier.domain import Kind
from services.notifier.transports import Transports
from shared import tracing
from shared.problems import DEPENDENCY_ERRORS

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
        """One attempt of ``row`` and its outcome; with tracing on, in a span of the row's trace."""
        if not tracing.enabled():  # the default: no trace stored, none to continue
            await self._deliver(row)
            return
        provider = tracing.provider()
        assert provider is not None
        parent = tracing.context_from({tracing.TRACEPARENT: row["traceparent"]}) if row["traceparent"] else None
        links = await self._digest_links(row) if row["kind"] == Kind.digest else []
        # A row made with tracing off (or before migration 0081) starts a trace of its own (an empty
        # context: not whatever span the caller may be in).
        with provider.get_tracer("csp_triage").start_as_current_span(
            f"deliver {row['kind']}", context=parent or Context(), links=links, attributes={
                "csp.tenant_id": row["tenant_id"], "csp.delivery_id": str(row["delivery_id"]),
                "csp.delivery_kind": str(row["kind"]), "csp.channel": row["channel"], "csp.attempt": row["attempts"]},
        ) as span:
            outcome = await self._deliver(row)
            span.set_attribute("csp.delivery_outcome", outcome or "unrecorded")

    async def _digest_links(self, row: asyncpg.Record) -> list[trace.Link]:
        """A digest tells of several alerts, each of its own trace: it is sent in the trace of the alert that
        opened it (its row's), and links to the trace of every other alert it lists, so each alert's trace
        is found from its e-mail and the other way round. A lookup that fails costs the links, not the send."""
        try:
            traceparents = await store.digest_traceparents(self.pool, row["delivery_id"])
        except Exception as exc:
            log.warning("trace links of digest %s not read: %s", row["delivery_id"], exc)
            return []
        links = []
        for traceparent in dict.fromkeys(traceparents):  # (in order, once each)
            if traceparent == row["traceparent"]:
                continue  # the parent's already
            context = tracing.context_from({tracing.TRACEPARENT: traceparent})
            if context is not None:
                links.append(trace.Link(trace.get_current_span(context).get_span_context()))
        return links

    async def _deliver(self, row: asyncpg.Record) -> str | None:
        """One attempt and its outcome; the state recorded (None: none could be)."""
        attempt = await self.transports.send(row)
        decision = domain.decide(row["attempts"], attempt, self.policy)
        try:
            recorded = await store.record_outcome(self.pool, row, decision, attempt)
        except DEPENDENCY_ERRORS as exc:
            # The row stays claimed: it is sent again, with the same Idempotency-Key, after its lease.
            # One line of one kind whatever the error, so a database that goes away under a batch of
            # sends in flight is told once per interval, not once per send with a traceback each.
            metrics.count_delivery(row["channel"], None)
            log.warning("outcome of a delivery could not be recorded (the database does not answer: %s); "
                        "sent again after its lease: %s", _reason(exc), row["delivery_id"])
            return None
        except Exception:
            metrics.count_delivery(row["channel"], None)
            log.exception("outcome of delivery %s could not be recorded", row["delivery_id"])
            return None
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
        return recorded

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


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
