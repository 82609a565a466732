"""Traces (#16, shared/tracing.py): nothing set up unless configured; once on, a span per HTTP request
continuing its caller's trace, an outbox row carrying its writer's trace context, and a consumer
(one record at a time, or a batch) continuing the trace a record carries. Spans are read from the
SDK's in-memory exporter."""

from __future__ import annotations

import asyncio
import json
import uuid
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from faststream.kafka import KafkaRouter
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME
from opentelemetry.sdk.trace import TracerProvider
from pydantic import BaseModel

from shared import tracing
from shared.events import Topic
from shared.http import Health, create_app
from shared.kafka import Context, batch_events, ensure_topics, make_broker, raw_records, subscriber_options, topic_name
from shared.outbox import outbox_row
from shared.settings import CommonSettings
from tests.support.kafka import Pinged, produce
from tests.support.polling import eventually


def small_app():
    @asynccontextmanager
    async def lifespan(_):
        yield

    app = create_app(title="t", version="1", description="d", health=Health("svc", {}), lifespan=lifespan)

    @app.get("/v1/things/{thing_id}")
    async def thing(thing_id: str) -> dict:
        return {"id": thing_id, "traceparent": tracing.trace_headers().get("traceparent")}

    return app


def client_of(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service")


# --- off by default -------------------------------------------------------------------------------------


async def test_off_by_default_nothing_is_set_up():
    assert tracing.provider() is None, "a test left tracing on"
    assert CommonSettings(environment="development").otel_exporter_otlp_endpoint is None
    assert tracing.configure(CommonSettings(environment="development"), "svc") is None
    assert tracing.trace_headers() == {}
    assert tracing.broker_middlewares() == ()
    with tracing.span("anything") as span:
        assert span is None
    app = small_app()
    assert not getattr(app, "_is_instrumented_by_opentelemetry", False)
    async with client_of(app) as client:
        answer = await client.get("/v1/things/t1")
    assert answer.json()["traceparent"] is None
    _, _, _, headers = outbox_row(Topic.alerts, Pinged(tenant_id="t-1", n=1))
    assert "traceparent" not in headers


def test_an_endpoint_sets_up_an_otlp_exporting_provider_named_after_the_service():
    previous = tracing.use_provider(None)
    try:
        settings = CommonSettings(environment="development", otel_exporter_otlp_endpoint="http://127.0.0.1:4318/",
                                  otel_traces_sampler_arg=0.5)
        provider = tracing.configure(settings, "notifier")
        assert isinstance(provider, TracerProvider)
        assert provider.resource.attributes[SERVICE_NAME] == "notifier"
        assert "0.5" in provider.sampler.get_description()
        assert tracing.configure(settings, "notifier") is provider  # one per process
        provider.shutdown()  # exported nothing: no span was made
    finally:
        tracing.use_provider(previous)


def test_a_bad_endpoint_is_refused():
    with pytest.raises(ValueError, match="otel_exporter_otlp_endpoint"):
        CommonSettings(environment="development", otel_exporter_otlp_endpoint="collector:4318")


# --- HTTP and the outbox ----------------------------------------------------------------------------------


async def test_a_request_is_a_server_span_continuing_its_callers_trace(spans):
    caller_trace, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    async with client_of(small_app()) as client:
        answer = await client.get("/v1/things/t1", headers={"traceparent": f"00-{caller_trace}-{caller_span}-01"})
        await client.get("/health/live")
        await client.get("/metrics")
    [server] = [s for s in spans.get_finished_spans() if s.kind is trace.SpanKind.SERVER]
    assert format(server.context.trace_id, "032x") == caller_trace
    assert format(server.parent.span_id, "016x") == caller_span
    assert server.attributes["http.route"] == "/v1/things/{thing_id}"
    # What the route would write to its outbox carries the request's trace.
    assert answer.json()["traceparent"].split("-")[1] == caller_trace


def test_an_outbox_row_carries_the_trace_context_of_its_writer(spans):
    with tracing.span("writer") as span:
        _, _, _, headers = outbox_row(Topic.alerts, Pinged(tenant_id="t-1", n=1))
    traceparent = json.loads(headers)["traceparent"]
    context = span.get_span_context()
    assert traceparent.startswith(f"00-{context.trace_id:032x}-{context.span_id:016x}-")
    _, _, _, outside = outbox_row(Topic.alerts, Pinged(tenant_id="t-1", n=2))
    assert "traceparent" not in json.loads(outside)
    # A writer inserting the rows of several requests together passes each one's context, taken where
    # its event was made.
    _, _, _, given = outbox_row(Topic.alerts, Pinged(tenant_id="t-1", n=3), trace={"traceparent": traceparent})
    assert json.loads(given)["traceparent"] == traceparent


# --- consumers, on the real broker ------------------------------------------------------------------------


class Ping(BaseModel):
    n: int


async def test_consumers_continue_the_trace_their_records_carry(spans, kafka_bootstrap, topic_prefix):
    settings = CommonSettings(environment="development",
                              kafka_topic_prefix=f"{topic_prefix}trace-{uuid.uuid4().hex[:6]}-")
    await ensure_topics(kafka_bootstrap, settings.kafka_topic_prefix)
    service = f"trace-{uuid.uuid4().hex[:6]}"
    broker = make_broker(settings, client_id=service)
    router = KafkaRouter()
    seen: dict[str, Any] = {}

    @router.subscriber(topic_name(settings, Topic.notifications), **{**subscriber_options(settings),
                                                                       "group_id": service})
    async def single(message: Ping) -> None:
        seen["single"] = trace.get_current_span().get_span_context()

    @router.subscriber(topic_name(settings, Topic.alerts), **{**subscriber_options(settings), "group_id": service},
                       batch=True, decoder=raw_records)
    async def batch(records: list, broker=Context("broker")) -> None:
        seen["batch"] = await batch_events(records, {"pinged": Pinged}, broker=broker, consumer=service,
                                           dead_letter_topic=topic_name(settings, Topic.dead_letter))

    broker.include_router(router)
    # As the outbox relay publishes a row written inside a traced request.
    one, two = "0af7651916cd43dd8448eb211c80319c", "5b8efff798038103d269b633813fc60c"
    parent = "b7ad6b7169203331"
    await produce(kafka_bootstrap, topic_name(settings, Topic.notifications), b'{"n": 1}', key=b"k",
                  headers={"traceparent": f"00-{one}-{parent}-01"})
    event = Pinged(tenant_id="t-1", n=2)
    await produce(kafka_bootstrap, topic_name(settings, Topic.alerts), event.model_dump_json().encode(),
                  key=event.kafka_key(), headers={"eventType": "pinged", "traceparent": f"00-{two}-{parent}-01"})
    await broker.start()
    try:
        await eventually(lambda: {"single", "batch"} <= seen.keys(), what="both records handled")
    finally:
        await broker.stop()
    assert format(seen["single"].trace_id, "032x") == one  # the handler runs inside the record's trace
    finished = spans.get_finished_spans()
    [received] = [s for s in finished if s.name == f"{topic_name(settings, Topic.alerts)} receive"]
    assert format(received.context.trace_id, "032x") == two and format(received.parent.span_id, "016x") == parent
    assert received.kind is trace.SpanKind.CONSUMER
    assert received.attributes["messaging.message.id"] == str(event.event_id)
    assert received.attributes["csp.consumer"] == service
    # FastStream's span of the batch links to the record's context.
    [processed] = [s for s in finished if s.name == f"{topic_name(settings, Topic.alerts)} process"]
    assert [format(link.context.trace_id, "032x") for link in processed.links] == [two]


async def test_a_span_is_current_inside_its_block(spans):
    with tracing.span("outer", attributes={"k": "v"}) as outer:
        with tracing.span("inner"):
            await asyncio.sleep(0)
    inner = next(s for s in spans.get_finished_spans() if s.name == "inner")
    assert inner.parent.span_id == outer.get_span_context().span_id
    assert next(s for s in spans.get_finished_spans() if s.name == "outer").attributes["k"] == "v"
