"""One trace from the webhook to the consumer (#16), on the real broker and PostgreSQL: the write API and the
notifier run in this process with tracing on (the SDK's in-memory exporter), on topics and a database of
this test alone. A security contact put and an alert posted are each a server span; the events they
write go through the write API's outbox (its rows carry the request's ``traceparent``), its relay and
Kafka; the notifier's spans of consuming them are in the same traces; and the alert's e-mail, sent later by
the delivery worker from the row its consumer wrote (which keeps the trace's ``traceparent``), is sent in that
trace too: the SMTP send (to a real aiosmtpd receiver) is a span of the POST's trace, under the delivery's."""

from __future__ import annotations

import uuid

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.ingest.app import create_app as create_ingest
from services.notifier.app import create_app as create_notifier
from shared.kafka import ensure_topics
from tests.conftest import AUTH
from tests.support.polling import eventually

pytestmark = pytest.mark.timeout(300)

CONTACT = "trace-soc@partner.example"


def trace_id(span: ReadableSpan) -> str:
    return format(span.context.trace_id, "032x")


def server_span(spans: InMemorySpanExporter, method: str, route: str) -> ReadableSpan:
    def method_of(span: ReadableSpan) -> str | None:  # the stable semantic conventions' name, or the old one
        return span.attributes.get("http.request.method", span.attributes.get("http.method"))

    [found] = [s for s in spans.get_finished_spans() if s.kind is trace.SpanKind.SERVER
               and s.attributes.get("http.route") == route and method_of(s) == method]
    return found


async def test_a_webhook_and_a_contact_are_traced_into_the_notifier(
    spans, test_env, kafka_bootstrap, own_database, smtp_server, tenant_id, monkeypatch,
):
    prefix = f"{test_env['KAFKA_TOPIC_PREFIX']}trace-{uuid.uuid4().hex[:6]}-"
    await ensure_topics(kafka_bootstrap, prefix)
    for name, value in {"KAFKA_TOPIC_PREFIX": prefix, "DATABASE_URL": own_database, "SMTP_HOST": "127.0.0.1",
                        "SMTP_PORT": str(smtp_server.port), "WORKER_POLL_SECONDS": "0.2",
                        "CONSUMER_GROUP": ""}.items():
        monkeypatch.setenv(name, value)
    ingest, notifier = create_ingest(), create_notifier()
    base = f"/v1/tenants/{tenant_id}"
    async with (
        ingest.router.lifespan_context(ingest),
        notifier.router.lifespan_context(notifier),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=ingest), base_url="http://ingest", headers=AUTH) as api,
    ):
        contact = await api.put(f"{base}/security-contact", json={
            "name": "SOC", "email": CONTACT, "phone": "+44 20 7946 0000"})
        assert contact.status_code in (200, 201), contact.text
        posted = await api.post(f"{base}/alerts", json={
            "id": "alert-1", "displayName": "Unusual sign-in", "severity": "high",
            "detectedDateTime": "2026-11-27T08:00:00Z"})
        assert posted.status_code == 202, posted.text
        [mail] = await eventually(lambda: smtp_server.mail.for_tenant(tenant_id, "alert"), within=90, interval=0.3,
                                  what="the alert's e-mail")
        assert mail["To"] == CONTACT

        contact_put = server_span(spans, "PUT", "/v1/tenants/{tenant_id}/security-contact")
        alert_post = server_span(spans, "POST", "/v1/tenants/{tenant_id}/alerts")
        assert trace_id(contact_put) != trace_id(alert_post)

        def in_trace(of: ReadableSpan, name: str) -> list[ReadableSpan]:
            return [s for s in spans.get_finished_spans() if s.name == name and trace_id(s) == trace_id(of)]

        # The contact's event, consumed one record at a time: FastStream's span continues the request's trace.
        [contact_consumed] = await eventually(lambda: in_trace(contact_put, f"{prefix}security-contacts process"),
                                              what="the notifier's span of the contact's event")
        assert contact_consumed.kind is trace.SpanKind.CONSUMER
        # The alert's event, consumed in a batch: a span of the notifier in the webhook's trace, whose parent is
        # the request's (the span the outbox row was written in), and the batch's span links to it.
        [alert_consumed] = await eventually(lambda: [s for s in in_trace(alert_post, f"{prefix}alerts receive")
                                                     if s.attributes["csp.consumer"] == "notifier"],
                                            what="the notifier's span of the alert's event")
        assert alert_consumed.parent is not None and alert_consumed.parent.trace_id == alert_post.context.trace_id
        batches = [s for s in spans.get_finished_spans() if s.name == f"{prefix}alerts process"
                   and any(link.context.trace_id == alert_post.context.trace_id for link in s.links)]
        assert batches, "the notifier's batch span links to the webhook's trace"
        # The e-mail's SMTP conversation is a span of the webhook's trace: the delivery worker sent the row in
        # the trace its consumer stored with it, under a span of that delivery.
        def smtp_sends() -> list[ReadableSpan]:
            return [s for s in spans.get_finished_spans() if s.name == "smtp send"
                    and s.attributes.get("csp.tenant_id") == tenant_id]

        [smtp] = await eventually(lambda: [s for s in smtp_sends() if s.attributes["csp.delivery_kind"] == "alert"],
                                  what="the SMTP send's span")
        assert smtp.kind is trace.SpanKind.CLIENT
        assert trace_id(smtp) == trace_id(alert_post)
        # Every e-mail about the alert is: the escalation too (its detection is long past, so its timer fires at
        # once), which keeps the alert's trace through the timer.
        assert {trace_id(s) for s in smtp_sends()} == {trace_id(alert_post)}
        # (An attempt before the contact's event was consumed found no contact: an attempt of its own, in the
        # same trace; the one that sent is the SMTP span's parent.)
        [delivered] = await eventually(lambda: [s for s in in_trace(alert_post, "deliver alert")
                                                if s.attributes["csp.delivery_outcome"] == "delivered"],
                                       what="the delivery's span")
        assert smtp.parent is not None and smtp.parent.span_id == delivered.context.span_id
        assert delivered.attributes["csp.delivery_id"] == smtp.attributes["csp.delivery_id"]
        # Its parent is the span the alert's event was written in (the request's, or one under it).
        assert delivered.parent is not None and delivered.parent.span_id == alert_consumed.parent.span_id
