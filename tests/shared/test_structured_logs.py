"""Structured logs (``shared.logs``): one JSON object per line outside development, a readable line in
development, the ids of what a record is about (tenant, alert, event, trace) bound once per Kafka
message or HTTP request and found on every line logged inside, and the repeat limiter still in front.
No I/O: the handler writes to a string, FastStream's in-memory test broker, an ASGI app called in place."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from uuid import uuid4

import httpx
import pytest
import structlog
from aiokafka.structs import ConsumerRecord
from fastapi import FastAPI
from faststream._internal.logger.logger_proxy import RealLoggerObject
from faststream.kafka import KafkaBroker, TestKafkaBroker
from opentelemetry.sdk.trace import TracerProvider

from shared.logs import (
    HttpLogContextMiddleware,
    LogContextMiddleware,
    RepeatLimiter,
    batch_log_fields,
    bound_record,
    configure_logging,
    log_format_for,
    record_log_fields,
)
from tests.faults.observe import RECORD_KIND, RECORD_START

LOGGERS = ("", "faststream", "aiokafka", "uvicorn.access")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Logs:
    """The process's logging as configure_logging leaves it, written to a string instead of stdout."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch
        self.stream = io.StringIO()

    def configure(self, log_format: str | None = None, *, service: str = "ingest") -> None:
        self.stream = io.StringIO()
        configure_logging(service, "INFO", log_format=log_format, stream=self.stream)  # type: ignore[arg-type]

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.text.splitlines()]

    def limiter(self) -> RepeatLimiter:
        (handler,) = logging.getLogger().handlers
        (limiter,) = [f for f in handler.filters if isinstance(f, RepeatLimiter)]
        return limiter


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Logs]:
    saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).level, logging.getLogger(n).propagate)
             for n in LOGGERS}
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    structlog.contextvars.clear_contextvars()
    yield Logs(monkeypatch)
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()
    for name, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


# --- the line -------------------------------------------------------------------------------------------


def test_a_record_of_any_logger_is_one_json_object_on_one_line(logs):
    logs.configure("json")
    logging.getLogger("services.ingest.handlers").info("published %s status for %s", "compliant", "contoso")
    logging.getLogger("aiokafka.conn").warning("Unable connect to node with id %s", 1)
    logging.getLogger("uvicorn.error").info("Application startup complete.")

    first, second, third = logs.lines()
    assert list(first) == ["timestamp", "level", "logger", "service", "message"]
    assert first["level"] == "info" and first["logger"] == "services.ingest.handlers"
    assert first["service"] == "ingest" and first["message"] == "published compliant status for contoso"
    stamp = datetime.fromisoformat(first["timestamp"])
    assert stamp.utcoffset() == UTC.utcoffset(None) and first["timestamp"].endswith("Z")
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 60
    assert (second["level"], second["logger"], second["message"]) == (
        "warning", "aiokafka.conn", "Unable connect to node with id 1")
    assert (third["logger"], third["message"]) == ("uvicorn.error", "Application startup complete.")


def test_a_traceback_stays_inside_its_json_line(logs):
    logs.configure("json")
    try:
        raise ConnectionRefusedError("refused")
    except ConnectionRefusedError:
        logging.getLogger("shared.kafka").exception("handler failed")

    assert len(logs.text.splitlines()) == 1
    (line,) = logs.lines()
    assert line["level"] == "error" and line["message"] == "handler failed"
    assert line["exception"].startswith("Traceback") and "ConnectionRefusedError: refused" in line["exception"]
    assert list(line)[-1] == "exception"


def test_structlogs_own_loggers_write_key_values_through_the_same_handler(logs):
    logs.configure("json")
    structlog.get_logger("services.notifier.channels").warning("delivery slow", channel="email", seconds=1.5)

    (line,) = logs.lines()
    assert line["logger"] == "services.notifier.channels" and line["level"] == "warning"
    assert line["message"] == "delivery slow" and line["channel"] == "email" and line["seconds"] == 1.5
    assert line["service"] == "ingest"


def test_ids_bound_in_the_context_are_on_every_line_logged_inside_and_only_there(logs):
    logs.configure("json")
    log = logging.getLogger("services.scoring.handlers")
    with structlog.contextvars.bound_contextvars(tenant_id="contoso", alert_id="alert-1", event_id="e-1"):
        log.info("score changed")
        structlog.get_logger("x").info("also here")
    log.info("after")

    inside, also, after = logs.lines()
    for line in (inside, also):
        assert (line["tenant_id"], line["alert_id"], line["event_id"]) == ("contoso", "alert-1", "e-1")
    assert list(inside)[5:] == ["tenant_id", "alert_id", "event_id"]  # after the envelope, in that order
    assert "tenant_id" not in after and "alert_id" not in after


def test_ids_given_as_extra_are_kept_and_a_librarys_private_extras_are_not(logs):
    logs.configure("json")
    logging.getLogger("uvicorn.error").info("started", extra={"color_message": "\x1b[32mstarted\x1b[0m"})
    logging.getLogger("services.notifier.handlers").info("sent", extra={"alert_id": "a-9", "tenant_id": "t1"})

    started, sent = logs.lines()
    assert "color_message" not in started
    assert (sent["tenant_id"], sent["alert_id"]) == ("t1", "a-9")


def test_the_trace_and_span_ids_are_those_of_the_current_span(logs):
    logs.configure("json")
    tracer = TracerProvider().get_tracer(__name__)
    log = logging.getLogger("services.ingest.routes_alerts")
    with tracer.start_as_current_span("POST /v1/tenants/{tenant_id}/alerts") as span:
        log.info("inside")
    log.info("outside")

    inside, outside = logs.lines()
    context = span.get_span_context()
    assert inside["trace_id"] == f"{context.trace_id:032x}" and inside["span_id"] == f"{context.span_id:016x}"
    assert re.fullmatch(r"[0-9a-f]{32}", inside["trace_id"]) and re.fullmatch(r"[0-9a-f]{16}", inside["span_id"])
    assert "trace_id" not in outside and "span_id" not in outside


# --- the format by environment --------------------------------------------------------------------------


def test_development_writes_readable_lines_the_fault_suite_still_reads(logs, monkeypatch):
    monkeypatch.setenv("ENVIRONMENT", "development")
    logs.configure()
    with structlog.contextvars.bound_contextvars(tenant_id="contoso", alert_id="a 1"):
        logging.getLogger("aiokafka.conn").error("Unable connect to node with id %s", 1)
    try:
        raise KeyError("k")
    except KeyError:
        logging.getLogger("shared.kafka").exception("handler failed")

    lines = logs.text.splitlines()
    assert not lines[0].startswith("{")
    assert RECORD_START.match(lines[0].encode())
    level, logger, message = (g.decode() for g in RECORD_KIND.match(lines[0].encode()).groups())
    assert (level, logger) == ("ERROR", "aiokafka.conn")
    assert lines[0].endswith("ingest aiokafka.conn: Unable connect to node with id 1 tenant_id=contoso alert_id='a 1'")
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ERROR   ingest ", lines[0])
    # The traceback on the lines after its record, as a terminal shows it.
    assert lines[1].endswith("shared.kafka: handler failed") and lines[2] == "Traceback (most recent call last):"
    assert lines[-1] == "KeyError: 'k'"


def test_production_writes_json_and_log_format_forces_either(monkeypatch):
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    monkeypatch.setenv("ENVIRONMENT", "production")
    assert log_format_for() == "json"
    monkeypatch.delenv("ENVIRONMENT")
    assert log_format_for() == "json"  # the settings' default environment is production
    monkeypatch.setenv("ENVIRONMENT", "development")
    assert log_format_for() == "console"
    monkeypatch.setenv("LOG_FORMAT", "json")
    assert log_format_for() == "json"
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("LOG_FORMAT", "Console")
    assert log_format_for() == "console"


def test_an_unknown_log_format_stops_the_process_with_one_line(logs, monkeypatch, capsys):
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(SystemExit) as stopped:
        configure_logging("ingest", "INFO")
    assert stopped.value.code == 2
    assert capsys.readouterr().err == "invalid settings: LOG_FORMAT must be one of json, console, not 'xml'\n"


# --- the repeat limiter, still in front -----------------------------------------------------------------


def test_the_limiter_holds_back_a_storm_and_the_next_json_line_says_how_many(logs):
    logs.configure("json")
    clock = logs.limiter().clock = Clock()
    for i in range(500):
        logging.getLogger("aiokafka.conn").error("Unable connect to node with id %s: %s", 1, f"attempt {i}")
    clock.now += 11
    logging.getLogger("aiokafka.conn").error("Unable connect to node with id %s: %s", 1, "again")

    first, then = logs.lines()
    assert first["message"] == "Unable connect to node with id 1: attempt 0"
    assert then["message"] == "Unable connect to node with id 1: again (499 similar suppressed in the last 11 s)"


def test_the_limiter_tells_structlog_events_apart_by_their_event_not_their_key_values(logs):
    logs.configure("json")
    clock = logs.limiter().clock = Clock()
    log = structlog.get_logger("services.notifier.channels")
    for i in range(20):
        log.warning("channel failing", channel=f"c{i}")
    log.warning("another kind")  # not a repeat of the first: every structlog record is a dict
    clock.now += 10
    log.warning("channel failing", channel="c20")

    lines = logs.lines()
    assert [(line["message"], line.get("channel")) for line in lines] == [
        ("channel failing", "c0"),
        ("another kind", None),
        ("channel failing (19 similar suppressed in the last 10 s)", "c20"),
    ]


def test_info_lines_are_never_held_back(logs):
    logs.configure("json")
    for i in range(30):
        logging.getLogger("faststream.notifier").info("Consumer %s assigned", f"c-{i}")
    assert len(logs.lines()) == 30


# --- Kafka: what a record is about -----------------------------------------------------------------------


def record(topic: str = "test-alerts", key: bytes | None = b"contoso:alert-1", **headers: str) -> ConsumerRecord:
    return ConsumerRecord(topic=topic, partition=0, offset=0, timestamp=0, timestamp_type=0, key=key,
                          value=b"{}", checksum=None, serialized_key_size=0, serialized_value_size=0,
                          headers=[(k, v.encode()) for k, v in headers.items()])


def test_a_records_ids_come_from_its_headers_and_its_key():
    event_id = str(uuid4())
    assert record_log_fields(record(eventType="alert-updated", eventId=event_id, tenantId="contoso")) == {
        "topic": "test-alerts", "event_id": event_id, "event_type": "alert-updated",
        "tenant_id": "contoso", "alert_id": "alert-1"}
    # Keys with a suffix after the alert id (shared.events: each model's kafka_key).
    note = record("test-alert-triage", b"contoso:alert:7:note:n-1", eventType="alert-note-added", tenantId="contoso")
    assert record_log_fields(note)["alert_id"] == "alert:7"
    assigned = record("test-alert-triage", b"contoso:a-2:assignee", eventType="alert-assigned", tenantId="contoso")
    assert record_log_fields(assigned)["alert_id"] == "a-2"
    # Not an alert's key: no alert id.
    status = record("test-requirement-status", b"contoso:mfaEnforcedForAdmins",
                    eventType="requirement-status-observed", tenantId="contoso")
    assert "alert_id" not in record_log_fields(status)
    # A tombstone has no headers: the tenant is its key's first part.
    assert record_log_fields(record("test-deliveries", b"fabrikam:d-1")) == {
        "topic": "test-deliveries", "tenant_id": "fabrikam"}


def test_a_header_that_would_forge_a_line_or_a_field_is_not_bound():
    forged = record(eventType="alert-created\n2026-01-01T00:00:00 INFO x: forged", eventId="e\r1",
                    tenantId="not a tenant id")
    fields = record_log_fields(forged)
    assert "event_type" not in fields and "event_id" not in fields
    assert fields.get("tenant_id") != "not a tenant id"


def test_a_batch_is_bound_by_its_topic_size_and_shared_tenant_and_each_record_by_hand(logs):
    same = [record(eventType="alert-created", tenantId="contoso", eventId=f"e-{i}") for i in range(3)]
    assert batch_log_fields(same) == {"batch_size": 3, "topic": "test-alerts", "tenant_id": "contoso"}
    mixed = [*same, record(key=b"fabrikam:a-9", eventType="alert-created", tenantId="fabrikam")]
    assert batch_log_fields(mixed) == {"batch_size": 4, "topic": "test-alerts"}

    logs.configure("json")
    with bound_record(mixed[-1]):
        logging.getLogger("services.response_time.handlers").info("applied")
    (line,) = logs.lines()
    assert (line["tenant_id"], line["alert_id"], line["event_type"]) == ("fabrikam", "a-9", "alert-created")
    assert structlog.contextvars.get_contextvars() == {}


async def test_the_middleware_binds_a_messages_ids_for_every_line_about_it_and_unbinds_them(logs):
    logs.configure("json")
    broker = KafkaBroker(middlewares=(LogContextMiddleware,), logger=logging.getLogger("faststream.test"),
                         log_level=logging.INFO)
    seen_inside: list[dict] = []

    @broker.subscriber("test-alerts")
    async def handle(body: dict) -> None:
        seen_inside.append(structlog.contextvars.get_contextvars())
        logging.getLogger("services.scoring.handlers").info("applied")
        if body.get("fail"):
            raise RuntimeError("database down")

    event_id = str(uuid4())
    headers = {"eventType": "alert-updated", "eventId": event_id, "tenantId": "contoso"}
    async with TestKafkaBroker(broker) as test_broker:
        # The test broker gives FastStream a mock to write its own lines to; they are under test here.
        broker.config.logger.logger = RealLoggerObject(logging.getLogger("faststream.test"))
        await test_broker.publish({"ok": True}, "test-alerts", key=b"contoso:alert-1", headers=headers)
        assert structlog.contextvars.get_contextvars() == {}, "unbound after the message"
        with pytest.raises(RuntimeError):
            await test_broker.publish({"fail": True}, "test-alerts", key=b"contoso:alert-2",
                                      headers={**headers, "eventId": "e-2"})
        assert structlog.contextvars.get_contextvars() == {}, "unbound after a failed message too"

    expected = {"tenant_id": "contoso", "alert_id": "alert-1", "event_id": event_id, "event_type": "alert-updated",
                "topic": "test-alerts"}
    assert seen_inside[0] == expected
    by_message = {(line["logger"], line["message"], line.get("event_id")): line for line in logs.lines()}
    applied = by_message[("services.scoring.handlers", "applied", event_id)]
    received = by_message[("faststream.test", "Received", event_id)]
    for line in (applied, received):
        assert {k: line[k] for k in expected} == expected
    # FastStream reports the failure after every middleware has exited: its own log context carries the ids.
    (failed,) = [line for line in logs.lines() if line["level"] == "error"]
    assert failed["logger"] == "faststream.test" and failed["message"] == "RuntimeError: database down"
    assert (failed["tenant_id"], failed["alert_id"], failed["event_id"]) == ("contoso", "alert-2", "e-2")
    assert "RuntimeError: database down" in failed["exception"]


async def test_the_middleware_puts_back_what_the_task_had_bound(logs):
    logs.configure("json")
    broker = KafkaBroker(middlewares=(LogContextMiddleware,), logger=logging.getLogger("faststream.test"))

    @broker.subscriber("test-alerts")
    async def handle(body: dict) -> None:
        logging.getLogger("h").info("inside")

    structlog.contextvars.bind_contextvars(tenant_id="outer", worker="w-1")
    async with TestKafkaBroker(broker) as test_broker:
        await test_broker.publish({}, "test-alerts", key=b"contoso:a-1",
                                  headers={"eventType": "alert-created", "tenantId": "contoso"})
    assert structlog.contextvars.get_contextvars() == {"tenant_id": "outer", "worker": "w-1"}
    (inside,) = [line for line in logs.lines() if line["message"] == "inside"]
    assert inside["tenant_id"] == "contoso" and inside["worker"] == "w-1"


# --- HTTP: what a request is about ----------------------------------------------------------------------


def http_app() -> FastAPI:
    app = FastAPI()

    @app.get("/v1/tenants/{tenant_id}/alerts/{alert_id}")
    async def alert(tenant_id: str, alert_id: str) -> dict:
        logging.getLogger("services.scoring.routes").info("read alert")
        return {}

    @app.get("/v1/keys")
    async def keys() -> dict:
        logging.getLogger("shared.auth").info("listed keys")
        return {}

    @app.get("/v1/tenants/{tenant_id}/broken")
    async def broken(tenant_id: str) -> dict:
        raise RuntimeError("bug")

    app.add_middleware(HttpLogContextMiddleware)
    return app


def app_lines(logs: Logs) -> list[dict]:
    """The app's lines (httpx, the client, writes one per request of its own)."""
    return [line for line in logs.lines() if line["logger"] != "httpx"]


@pytest.fixture
def client() -> Callable[[], httpx.AsyncClient]:
    return lambda: httpx.AsyncClient(transport=httpx.ASGITransport(app=http_app()), base_url="http://test")


async def test_a_request_binds_its_tenant_alert_and_request_id_and_answers_with_the_id(logs, client):
    logs.configure("json")
    async with client() as http:
        answer = await http.get("/v1/tenants/contoso/alerts/alert-1")
        given = await http.get("/v1/keys", headers={"X-Request-ID": "req-42.a"})
        forged = await http.get("/v1/keys", headers={"X-Request-ID": "x\tINFO forged"})
    assert structlog.contextvars.get_contextvars() == {}

    read, listed, refused = app_lines(logs)
    assert (read["tenant_id"], read["alert_id"]) == ("contoso", "alert-1")
    assert re.fullmatch(r"[0-9a-f]{32}", read["request_id"]) and answer.headers["x-request-id"] == read["request_id"]
    assert listed["request_id"] == "req-42.a" == given.headers["x-request-id"] and "tenant_id" not in listed
    assert refused["request_id"] != "x\tINFO forged" and forged.headers["x-request-id"] == refused["request_id"]


async def test_a_path_tenant_that_is_not_a_tenant_id_is_not_bound(logs, client):
    logs.configure("json")
    async with client() as http:
        await http.get("/v1/tenants/bad%20tenant/alerts/a-1")
    (line,) = app_lines(logs)
    assert "tenant_id" not in line and "alert_id" not in line and line["request_id"]


async def test_after_an_error_the_ids_stay_for_the_servers_traceback_line(logs, client):
    """The server logs the traceback of an app that raised after the app returned, in the request's own
    task (uvicorn: one task per request, whose context ends with it): that line names the request too."""
    logs.configure("json")
    async with client() as http:
        with pytest.raises(RuntimeError):
            await http.get("/v1/tenants/contoso/broken", headers={"X-Request-ID": "r-1"})
        logging.getLogger("uvicorn.error").error("Exception in ASGI application")
    (line,) = app_lines(logs)
    assert (line["logger"], line["tenant_id"], line["request_id"]) == ("uvicorn.error", "contoso", "r-1")
