"""Prometheus metrics (#16): GET /metrics on every app, HTTP requests by route template, events processed
and dead-lettered, consumer lag from the consumers' own state, outbox backlog; topics made as the
settings say. The names are those of /tmp/team/METRICS.md (docs/observability.md)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from contextlib import asynccontextmanager
from types import SimpleNamespace

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition
from faststream.kafka import KafkaRouter
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel, ValidationError

from shared.events import Topic
from shared.http import Health, create_app
from shared.kafka import (
    TOPIC_SPECS,
    Context,
    TopicOptions,
    batch_events,
    ensure_topics,
    make_broker,
    new_topic,
    raw_records,
    subscriber_options,
    topic_name,
    topic_options,
)
from shared.metrics import (
    HttpMetrics,
    _forget_ended_processes,
    consumer_lag,
    count_batch,
    count_duplicates,
    topic_label,
)
from shared.settings import CommonSettings
from tests.conftest import AUTH
from tests.support.kafka import Pinged, produce
from tests.support.polling import eventually


def sample(name: str, **labels: str) -> float:
    """The value of one series of the process's registry (0 when it has not been touched)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scraped(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """A /metrics answer as {(sample name, sorted labels): value}: it must parse as Prometheus text."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def small_app(service: str):
    @asynccontextmanager
    async def lifespan(_):
        yield

    app = create_app(title="t", version="1", description="d", health=Health(service, {}), lifespan=lifespan)

    @app.get("/v1/things/{thing_id}")
    async def thing(thing_id: str) -> dict:
        return {"id": thing_id}

    @app.get("/boom")
    async def boom() -> dict:
        raise RuntimeError("a bug")

    return app


def client_of(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                             base_url="http://service")


# --- HTTP ------------------------------------------------------------------------------------------------


async def test_requests_are_counted_by_route_template_method_and_status_and_served_at_metrics():
    service = f"svc-{uuid.uuid4().hex[:6]}"
    route = "/v1/things/{thing_id}"
    async with client_of(small_app(service)) as client:
        for n in range(3):
            assert (await client.get(f"/v1/things/t{n}")).status_code == 200
        assert (await client.get("/no/such/path/42")).status_code == 404
        assert (await client.request("BREW", "/v1/things/t1")).status_code == 405
        assert (await client.get("/boom")).status_code == 500
        answer = await client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    series = scraped(answer.text)
    labels = (("method", "GET"), ("route", route), ("service", service), ("status", "200"))
    assert series[("csp_http_requests_total", labels)] == 3
    # One series per template, never per path: no thing id is a label value.
    assert not any("t1" in value for (_, ls) in series for _, value in ls)
    assert series[("csp_http_requests_total", (("method", "GET"), ("route", "unmatched"), ("service", service),
                                               ("status", "404")))] == 1
    # A method of the client's own invention is `other`: a label never takes arbitrary values.
    assert sample("csp_http_requests_total", service=service, method="other", route=route, status="405") == 1
    assert sample("csp_http_requests_total", service=service, method="GET", route="/boom", status="500") == 1
    assert series[("csp_http_request_duration_seconds_count",
                   (("method", "GET"), ("route", route), ("service", service)))] == 3
    # FastStream's and the process's own metrics are in the same registry.
    assert any(name.startswith("process_") for name, _ in series)


async def test_metrics_needs_no_key_and_is_not_in_the_openapi_document():
    app = small_app("svc-doc")
    async with client_of(app) as client:
        document = (await client.get("/openapi.json")).json()
        answer = await client.get("/metrics")
    assert "/metrics" not in document["paths"]
    assert answer.status_code == 200


async def test_a_refresher_that_fails_or_hangs_does_not_fail_the_scrape(monkeypatch):
    from shared import metrics

    monkeypatch.setattr(metrics, "REFRESH_TIMEOUT_SECONDS", 0.2)
    app = small_app("svc-refresh")
    calls = []

    async def broken() -> None:
        calls.append("broken")
        raise ConnectionError("database away")

    async def hangs() -> None:
        calls.append("hangs")
        await asyncio.sleep(60)

    metrics.on_scrape(app, broken)
    metrics.on_scrape(app, hangs)
    async with client_of(app) as client:
        started = time.monotonic()
        answer = await client.get("/metrics")
    assert answer.status_code == 200 and "csp_http_requests_total" in answer.text
    assert sorted(calls) == ["broken", "hangs"] and time.monotonic() - started < 5


async def test_the_middleware_costs_a_few_microseconds_per_request():
    """The write API is performance-critical (#15): the same request through a bare ASGI app and through
    the middleware, measured in one run; the difference is reported and bounded generously (a shared
    machine), far below the write API's own cost of a request (milliseconds: PostgreSQL's commit)."""

    async def bare(scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    measured = HttpMetrics(bare, service="svc-bench")

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_message) -> None:
        return None

    route = SimpleNamespace(path="/v1/tenants/{tenant_id}/alerts")

    async def per_request(app, n: int = 20_000) -> float:
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for _ in range(n):
                await app({"type": "http", "method": "POST", "path": "/v1/tenants/t/alerts", "route": route},
                          receive, send)
            best = min(best, (time.perf_counter() - started) / n)
        return best

    overhead = await per_request(measured) - await per_request(bare)
    print(f"HttpMetrics: {overhead * 1e6:.2f} µs per request")
    assert overhead < 50e-6, f"{overhead * 1e6:.1f} µs per request"


# --- labels and tallies ------------------------------------------------------------------------------------


def test_topic_labels_drop_the_deployment_prefix_and_never_take_arbitrary_values():
    assert topic_label("alerts") == "alerts"
    assert topic_label("test-1a2b3c-notifier-alerts") == "alerts"
    assert topic_label("prod-alert-response-times") == "alert-response-times"
    assert topic_label("someone-elses-topic") == "other"


def test_counting_outside_a_consumed_message_changes_nothing():
    before = [(m.name, s.labels, s.value) for m in REGISTRY.collect() if m.name == "csp_events_processed"
              for s in m.samples]
    count_batch(5)
    count_duplicates(2)
    after = [(m.name, s.labels, s.value) for m in REGISTRY.collect() if m.name == "csp_events_processed"
             for s in m.samples]
    assert after == before


def test_consumer_lag_sums_each_topics_assigned_partitions_from_the_consumers_state():
    def state(position, lso, highwater, valid=True):
        return SimpleNamespace(has_valid_position=valid, position=position, lso=lso, highwater=highwater)

    states = {
        TopicPartition("p-alerts", 0): state(10, 15, 16),       # read_committed: the last stable offset
        TopicPartition("p-alerts", 1): state(4, -1, 9),         # read_uncommitted (-1): the high watermark
        TopicPartition("p-deliveries", 0): state(0, None, None),  # nothing fetched yet
        TopicPartition("p-deliveries", 1): state(0, 3, 3, valid=False),  # no position yet
    }
    consumer = SimpleNamespace(
        assignment=lambda: set(states),
        _subscription=SimpleNamespace(subscription=SimpleNamespace(assignment=SimpleNamespace(
            state_value=states.get))))
    stopped = SimpleNamespace(assignment=lambda: (_ for _ in ()).throw(RuntimeError("stopped")))
    assert consumer_lag([consumer, stopped]) == {"alerts": 5 + 5, "deliveries": 0}


# --- on the real broker ------------------------------------------------------------------------------------


async def test_consumer_lag_of_a_real_consumer_is_what_it_has_not_consumed_yet(kafka_bootstrap, topic_prefix):
    prefix = f"{topic_prefix}lag-{uuid.uuid4().hex[:6]}-"
    [spec] = [s for s in TOPIC_SPECS if s.topic is Topic.delivery_commands]
    await ensure_topics(kafka_bootstrap, prefix, [spec], TopicOptions(partitions=1))
    topic = f"{prefix}{Topic.delivery_commands.value}"
    for n in range(7):
        await produce(kafka_bootstrap, topic, f'{{"n": {n}}}'.encode(), key=b"k")
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, group_id=f"lag-{uuid.uuid4().hex[:6]}",
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                isolation_level="read_committed")
    await consumer.start()
    try:
        taken = 0
        while taken < 3:
            batch = await consumer.getmany(timeout_ms=1000, max_records=3 - taken)
            taken += sum(len(records) for records in batch.values())
        assert consumer_lag([consumer]) == {"delivery-commands": 4}
    finally:
        await consumer.stop()


class Ping(BaseModel):
    n: int


async def test_events_processed_duplicates_and_dead_letters_are_counted_per_service_and_topic(
    kafka_bootstrap, topic_prefix,
):
    settings = CommonSettings(environment="development",
                              kafka_topic_prefix=f"{topic_prefix}count-{uuid.uuid4().hex[:6]}-")
    await ensure_topics(kafka_bootstrap, settings.kafka_topic_prefix)
    service = f"count-{uuid.uuid4().hex[:6]}"
    broker = make_broker(settings, client_id=service)
    router = KafkaRouter()
    singles, batches = [], []

    @router.subscriber(topic_name(settings, Topic.notifications), **{**subscriber_options(settings),
                                                                       "group_id": service})
    async def single(message: Ping) -> None:
        if message.n == 2:
            count_duplicates()  # as a handler whose ledger already had the event says
        singles.append(message.n)

    @router.subscriber(topic_name(settings, Topic.alerts), **{**subscriber_options(settings), "group_id": service},
                       batch=True, decoder=raw_records)
    async def batch(records: list, broker=Context("broker")) -> None:
        events = await batch_events(records, {"pinged": Pinged}, broker=broker, consumer=service,
                                    dead_letter_topic=topic_name(settings, Topic.dead_letter))
        batches.extend(events)

    broker.include_router(router)
    for n in (1, 2, 3):
        await produce(kafka_bootstrap, topic_name(settings, Topic.notifications), f'{{"n": {n}}}'.encode(), key=b"k")
    await produce(kafka_bootstrap, topic_name(settings, Topic.notifications), b'{"n": "x"}', key=b"k")
    for n in (1, 2):
        event = Pinged(tenant_id="t-1", n=n)
        await produce(kafka_bootstrap, topic_name(settings, Topic.alerts), event.model_dump_json().encode(),
                      key=event.kafka_key(), headers={"eventType": "pinged"})
    await produce(kafka_bootstrap, topic_name(settings, Topic.alerts), b"{not json", key=b"t-1:a-1",
                  headers={"eventType": "pinged"})
    await broker.start()
    try:
        await eventually(lambda: (sorted(singles), len(batches)), lambda got: got == ([1, 2, 3], 2),
                         what="every good record handled")
        await eventually(lambda: sample("csp_dead_letters_total", service=service, topic="alerts"),
                         lambda n: n == 1, what="the batch's poison record counted")
        # The single subscriber's poison record comes after 3 on its partition: counted a moment after 3.
        await eventually(lambda: sample("csp_dead_letters_total", service=service, topic="notifications"),
                         lambda n: n == 1, what="the single subscriber's poison record counted")
    finally:
        await broker.stop()
    assert sample("csp_events_processed_total", service=service, topic="notifications", outcome="processed") == 2
    assert sample("csp_events_processed_total", service=service, topic="notifications", outcome="duplicate") == 1
    assert sample("csp_events_processed_total", service=service, topic="alerts", outcome="processed") == 2
    assert sample("csp_dead_letters_total", service=service, topic="notifications") == 1
    # FastStream's own, labelled with the service as app_name.
    assert sample("faststream_received_messages_total", app_name=service, broker="kafka",
                  handler=topic_name(settings, Topic.notifications)) == 4


async def test_the_write_api_serves_its_metrics(test_env, tenant_id):
    from tests.services.ingest.support import running_ingest

    async with running_ingest() as client:
        posted = await client.post(f"/v1/tenants/{tenant_id}/alerts", headers=AUTH, json={
            "id": "alert-1", "displayName": "x", "severity": "high", "detectedDateTime": "2026-11-27T08:00:00Z"})
        assert posted.status_code == 202, posted.text
        series = scraped((await client.get("/metrics")).text)
    route = "/v1/tenants/{tenant_id}/alerts"
    assert series[("csp_http_requests_total", (("method", "POST"), ("route", route), ("service", "ingest"),
                                               ("status", "202")))] >= 1
    assert ("csp_outbox_waiting", (("service", "ingest"),)) in series
    assert ("csp_outbox_oldest_age_seconds", (("service", "ingest"),)) in series
    # Its consumer of the notifier's deliveries, once it holds partitions, reports its lag.
    assert all(value >= 0 for (name, _), value in series.items() if name == "csp_consumer_lag")


# --- topics as the settings say ------------------------------------------------------------------------------


def test_new_topics_take_partitions_and_replicas_from_the_settings():
    options = topic_options(CommonSettings(environment="development", kafka_replication_factor=3,
                                           kafka_partitions=12, kafka_min_insync_replicas=2))
    made = {spec.topic: new_topic(spec, "p-", options) for spec in TOPIC_SPECS}
    assert made[Topic.alerts].name == "p-alerts"
    assert {t.replication_factor for t in made.values()} == {3}
    assert made[Topic.alerts].num_partitions == 12
    assert made[Topic.dead_letter].num_partitions == 1  # operators read it in order
    assert made[Topic.alerts].topic_configs["min.insync.replicas"] == "2"
    assert made[Topic.alerts].topic_configs["retention.ms"]  # each topic's own configuration is kept
    default = {spec.topic: new_topic(spec) for spec in TOPIC_SPECS}
    assert default[Topic.alerts].num_partitions == 6 and default[Topic.alerts].replication_factor == 1
    assert "min.insync.replicas" not in default[Topic.alerts].topic_configs


def test_min_insync_replicas_over_the_replication_factor_is_refused():
    with pytest.raises(ValidationError, match="KAFKA_MIN_INSYNC_REPLICAS"):
        CommonSettings(environment="development", kafka_replication_factor=1, kafka_min_insync_replicas=2)


async def test_ensure_topics_creates_them_with_the_settings_partitions(kafka_bootstrap, topic_prefix):
    prefix = f"{topic_prefix}parts-{uuid.uuid4().hex[:6]}-"
    specs = [s for s in TOPIC_SPECS if s.topic in (Topic.alerts, Topic.dead_letter)]
    created = await ensure_topics(kafka_bootstrap, prefix, specs, TopicOptions(replication_factor=1, partitions=2,
                                                                               min_insync_replicas=1))
    assert sorted(created) == [f"{prefix}alerts", f"{prefix}dead-letter"]
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        described = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(created)}
    finally:
        await admin.close()
    assert described == {f"{prefix}alerts": 2, f"{prefix}dead-letter": 1}
    assert await ensure_topics(kafka_bootstrap, prefix, specs) == []  # there: left as they are


@pytest.mark.parametrize("service", ["ingest", "scoring", "response-time", "notifier"])
async def test_every_service_serves_metrics_on_its_http_port(test_env, service):
    import importlib

    module = importlib.import_module(f"services.{service.replace('-', '_')}.app")
    app = module.create_app()  # not started: its gauges read at scrape time have nothing to read yet
    async with client_of(app) as client:
        first = await client.get("/metrics")
        document = (await client.get("/openapi.json")).json()
        second = await client.get("/metrics")
    assert first.status_code == 200
    assert "/metrics" not in document["paths"]
    # The first scrape, counted once answered, is in the second (labelled with the service's own name).
    assert ("csp_http_requests_total", (("method", "GET"), ("route", "/metrics"), ("service", service),
                                        ("status", "200"))) in scraped(second.text)


def test_a_worker_that_ended_keeps_its_counts_but_not_its_live_gauges(tmp_path) -> None:
    """Several processes of a service (shared.service): a scrape forgets the live gauges (the lag of the
    partitions it held) of a worker that ended, and keeps its counters."""
    worker = ("from prometheus_client import Counter, Gauge; Counter('c', 'c').inc(); "
              "Gauge('g', 'g', multiprocess_mode='livesum').set(3)")
    subprocess.run([sys.executable, "-c", worker], env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)},
                   check=True)
    assert list(tmp_path.glob("gauge_livesum_*.db")) and list(tmp_path.glob("counter_*.db"))
    _forget_ended_processes(str(tmp_path))
    assert not list(tmp_path.glob("gauge_livesum_*.db"))
    assert list(tmp_path.glob("counter_*.db"))
