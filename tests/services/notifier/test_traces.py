"""Traces (#16) through the delivery log: a delivery row keeps the W3C trace context (``traceparent``) of
the alert event that made it (its record's, or the current span's), a timer keeps it for the reminder or
escalation it fires, and the delivery worker sends each row in a span of that trace (the SMTP send under
it); a digest is sent in the trace of the alert that opened it and links to the others'. With tracing off
nothing is stored. On PostgreSQL (a database of each test's own: no notifier process takes these rows)
and a real SMTP server (aiosmtpd)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace

import asyncpg
import pytest
import pytest_asyncio
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.notifier import store
from services.notifier.config import Settings
from services.notifier.domain import StormPolicy
from services.notifier.handlers import record_traces
from services.notifier.transports import Transports
from services.notifier.worker import DeliveryWorker
from shared import tracing
from shared.db import create_pool
from shared.egress import webhook_client
from shared.events import Actor, ActorType, AlertCreated, RedeliveryRequested
from tests.services.notifier.helpers import alert_created, deliveries

HOUR = 3600.0
TENANT = "t-traced"


@pytest.fixture
def tracing_off() -> Iterator[None]:
    previous = tracing.use_provider(None)
    yield
    tracing.use_provider(previous)


@pytest_asyncio.fixture
async def pool(own_database: str) -> AsyncIterator[asyncpg.Pool]:
    """The notifier's schema in a database of this test's own; the tenant has a contact."""
    pool = await create_pool(own_database, schema="notifier")
    await pool.execute("INSERT INTO notifier_contacts (tenant_id, name, email, occurred_at) "
                       "VALUES ($1, 'SOC', 'soc@partner.example', now())", TENANT)
    yield pool
    await pool.close()


def webhook_trace(name: str) -> tuple[str, trace.SpanContext]:
    """The traceparent a record of the webhook ``name``'s event carries, and its span's context."""
    with tracing.span(name) as span:
        assert span is not None
        return tracing.trace_headers()[tracing.TRACEPARENT], span.get_span_context()


def trace_rows(rows: list[asyncpg.Record]) -> dict[tuple[str, str, str], str | None]:
    return {(r["subject_id"], r["channel"], r["kind"]): r["traceparent"] for r in rows}


async def apply(pool: asyncpg.Pool, events: list[AlertCreated], traces: dict[str, str], *,
                escalation_after: float = 20 * HOUR, storm: StormPolicy | None = None) -> None:
    batch = store.AlertsBatch(HOUR, escalation_after, storm, traces=traces)
    assert await store.apply_alert_events(pool, events, batch) == (len(events), 0)


def test_a_batch_s_traces_are_its_records_traceparents_by_event_id():
    traced = SimpleNamespace(headers=[("eventType", b"alert-created"), ("eventId", b"e1"),
                                      ("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")])
    untraced = SimpleNamespace(headers=[("eventType", b"alert-created"), ("eventId", b"e2")])
    tombstone = SimpleNamespace(headers=None)
    assert record_traces([traced, untraced, tombstone]) == {
        "e1": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}


async def test_with_tracing_off_no_trace_is_stored(pool, tracing_off):
    assert not tracing.enabled()
    event = alert_created(TENANT, "a1")
    # (Escalation due at once: its timer fires into a delivery too.)
    await apply(pool, [event], {}, escalation_after=-1)
    while await store.fire_due_timers(pool, escalation_email=False, limit=100):
        pass
    rows = await deliveries(pool, TENANT)
    assert {r["kind"] for r in rows} == {"alert", "escalation"}
    assert {r["traceparent"] for r in rows} == {None}
    assert {r["traceparent"] for r in await pool.fetch("SELECT traceparent FROM notification_timers")} == {None}
    [claimed, *_] = await store.claim_due_deliveries(pool, limit=10, lease_seconds=60)
    assert claimed["traceparent"] is None


async def test_an_alerts_deliveries_and_timers_keep_its_trace_and_so_does_the_escalation_they_fire(pool, spans):
    traced, untraced = alert_created(TENANT, "a1"), alert_created(TENANT, "a2")
    a1_trace, _ = webhook_trace("POST a1")
    # a2's record carried none: its rows take the trace of the code writing them (the batch's span, here).
    with tracing.span("batch"):
        batch_trace = tracing.trace_headers()[tracing.TRACEPARENT]
        await apply(pool, [traced, untraced], {str(traced.event_id): a1_trace}, escalation_after=-1)
    timers = await pool.fetch("SELECT alert_id, kind, traceparent FROM notification_timers")
    assert {(t["alert_id"], t["kind"]): t["traceparent"] for t in timers} == {
        ("a1", "reminder"): a1_trace, ("a1", "escalation"): a1_trace,
        ("a2", "reminder"): batch_trace, ("a2", "escalation"): batch_trace}

    # The escalation, fired later by the worker (outside any span), keeps the alert's trace.
    while await store.fire_due_timers(pool, escalation_email=False, limit=100):
        pass
    assert trace_rows(await deliveries(pool, TENANT)) == {
        ("a1", "email:contact", "alert"): a1_trace, ("a2", "email:contact", "alert"): batch_trace,
        ("a1", "email:contact", "escalation"): a1_trace, ("a2", "email:contact", "escalation"): batch_trace}
    claimed = await store.claim_due_deliveries(pool, limit=10, lease_seconds=60)
    assert {(r["subject_id"], r["kind"]): r["traceparent"] for r in claimed} == {
        ("a1", "alert"): a1_trace, ("a2", "alert"): batch_trace,
        ("a1", "escalation"): a1_trace, ("a2", "escalation"): batch_trace}


def settings_for(smtp_port: int) -> Settings:
    return Settings(environment="development", smtp_host="127.0.0.1", smtp_port=smtp_port, smtp_timeout_seconds=4,
                    delivery_lease_seconds=30, requirement_help_url="https://help.example/")


def finished(spans: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.name == name]


@pytest.mark.timeout(60)
async def test_the_worker_sends_each_delivery_in_its_trace_and_a_digest_links_the_other_alerts(
    pool, spans, smtp_server
):
    # A storm from the second alert on: a1 is sent alone, a2 opens a digest, a3 joins it.
    storm = StormPolicy(threshold=1, window_seconds=120, digest_wait_seconds=0, digest_max_alerts=5)
    events = [alert_created(TENANT, f"a{n}") for n in (1, 2, 3)]
    posts = [webhook_trace(f"POST a{n}") for n in (1, 2, 3)]
    await apply(pool, events, {str(e.event_id): tp for e, (tp, _) in zip(events, posts, strict=True)}, storm=storm)
    [digest] = await deliveries(pool, TENANT, kind="digest")
    assert digest["traceparent"] == posts[1][0]  # the alert that opened it
    assert await store.digest_traceparents(pool, digest["delivery_id"]) == [posts[1][0], posts[2][0]]

    await pool.execute("UPDATE notification_deliveries SET next_attempt_at = now() WHERE kind = 'digest'")
    settings = settings_for(smtp_server.port)
    async with webhook_client(True, follow_redirects=False) as http:
        worker = DeliveryWorker(settings, pool, Transports(settings, pool, http))
        # Delivered inside a span of the test's: each delivery's span is in its row's trace all the same.
        with tracing.span("elsewhere"):
            for row in await store.claim_due_deliveries(pool, limit=10, lease_seconds=30):
                await worker.deliver(row)
    assert {m["X-CSP-Delivery-Kind"] for m in smtp_server.mail.for_tenant(TENANT)} == {"alert", "digest"}

    [alert_span] = finished(spans, "deliver alert")
    [digest_span] = finished(spans, "deliver digest")
    for delivered, (_, post) in ((alert_span, posts[0]), (digest_span, posts[1])):
        assert delivered.parent is not None
        assert (delivered.parent.trace_id, delivered.parent.span_id) == (post.trace_id, post.span_id)
        assert delivered.attributes["csp.delivery_outcome"] == "delivered"
        [smtp] = [s for s in finished(spans, "smtp send")
                  if s.attributes["csp.delivery_id"] == delivered.attributes["csp.delivery_id"]]
        assert smtp.kind is trace.SpanKind.CLIENT and smtp.parent is not None
        assert (smtp.context.trace_id, smtp.parent.span_id) == (post.trace_id, delivered.context.span_id)
    # The digest's other alert is a link (its opener is the parent).
    assert [(link.context.trace_id, link.context.span_id) for link in digest_span.links] == [
        (posts[2][1].trace_id, posts[2][1].span_id)]
    assert not alert_span.links


@pytest.mark.timeout(60)
async def test_a_row_without_a_trace_is_sent_in_a_trace_of_its_own(pool, smtp_server, spans):
    # Made with tracing off (or before migration 0081), sent with it on.
    provider = tracing.use_provider(None)
    try:
        await apply(pool, [alert_created(TENANT, "old")], {})
    finally:
        tracing.use_provider(provider)
    settings = settings_for(smtp_server.port)
    async with webhook_client(True, follow_redirects=False) as http:
        worker = DeliveryWorker(settings, pool, Transports(settings, pool, http))
        with tracing.span("elsewhere") as elsewhere:
            assert elsewhere is not None
            [row] = await store.claim_due_deliveries(pool, limit=10, lease_seconds=30)
            assert row["traceparent"] is None
            await worker.deliver(row)
    [delivered] = finished(spans, "deliver alert")
    assert delivered.parent is None
    assert delivered.context.trace_id != elsewhere.get_span_context().trace_id
    [smtp] = finished(spans, "smtp send")
    assert smtp.parent is not None and smtp.parent.span_id == delivered.context.span_id


async def test_a_redelivery_is_sent_in_the_trace_of_its_command_with_tracing_on(pool, spans):
    alert_trace, _ = webhook_trace("POST a1")
    event = alert_created(TENANT, "a1")
    await apply(pool, [event], {str(event.event_id): alert_trace})
    [row] = await deliveries(pool, TENANT, kind="alert")
    await pool.execute("UPDATE notification_deliveries SET state = 'dead' WHERE delivery_id = $1", row["delivery_id"])

    def command() -> RedeliveryRequested:
        return RedeliveryRequested(tenant_id=TENANT, delivery_id=row["delivery_id"], actor=Actor(type=ActorType.user))

    with tracing.span("POST redeliver"):
        command_trace = tracing.trace_headers()[tracing.TRACEPARENT]
        assert await store.requeue_dead(pool, command()) == (True, "pending")
    assert (await deliveries(pool, TENANT, kind="alert"))[0]["traceparent"] == command_trace

    # With tracing off, a redelivery keeps the trace the row has.
    await pool.execute("UPDATE notification_deliveries SET state = 'dead' WHERE delivery_id = $1", row["delivery_id"])
    previous = tracing.use_provider(None)
    try:
        assert await store.requeue_dead(pool, command()) == (True, "pending")
    finally:
        tracing.use_provider(previous)
    assert (await deliveries(pool, TENANT, kind="alert"))[0]["traceparent"] == command_trace
