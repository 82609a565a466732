"""Prometheus metrics every service shares, and the ``GET /metrics`` that serves them (#16).

The names and labels are a contract with the alert rules and the dashboard
(``infra/observability``, ``docs/observability.md``): change one only with them. No label holds a
tenant id, an alert id, an event id or a raw path: every label has a handful of values.

- HTTP: :class:`HttpMetrics`, a pure ASGI middleware (the write API is performance-critical, #15): a
  request costs a dictionary look-up and two metric updates, labelled by the route's template
  (``/v1/tenants/{tenant_id}/alerts``), ``unmatched`` when no route took it.
- Events: ``csp_events_processed_total`` (counted by the broker's middleware of ``shared.kafka``, a
  batch handler's events each), ``csp_dead_letters_total`` (poison records sent to the dead-letter topic).
- Gauges read when Prometheus scrapes (:func:`on_scrape`): each consumer's lag (:func:`consumer_lag`,
  from the state aiokafka keeps anyway: no request to the broker), each outbox's backlog
  (``shared.outbox.report_backlog``).

Counters of one service alone live in ``services/<svc>/metrics.py``, in the same registry.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.events import Topic

log = logging.getLogger(__name__)

# --- the shared metrics ---------------------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "csp_http_requests_total", "HTTP requests answered.", ["service", "method", "route", "status"])
HTTP_DURATION = Histogram(
    "csp_http_request_duration_seconds", "HTTP request time, from the request to the last byte of the answer.",
    ["service", "method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
# multiprocess_mode: how the gauges of a service's worker processes (shared.service) add up; each
# process holds its own partitions, and every one reads the same outbox.
CONSUMER_LAG = Gauge(
    "csp_consumer_lag", "End offset minus the consumer group's position, summed over the partitions this process "
    "holds.", ["service", "topic"], multiprocess_mode="livesum")
EVENTS_PROCESSED = Counter(
    "csp_events_processed_total", "Events handled (a batch handler counts each event): processed, or dropped as "
    "a duplicate already applied.", ["service", "topic", "outcome"])
DEAD_LETTERS = Counter(
    "csp_dead_letters_total", "Records sent to the dead-letter topic (poison records), by the topic they came from.",
    ["service", "topic"])
OUTBOX_WAITING = Gauge("csp_outbox_waiting", "Rows waiting in this service's outbox.", ["service"],
                       multiprocess_mode="livemostrecent")
OUTBOX_OLDEST_AGE = Gauge(
    "csp_outbox_oldest_age_seconds", "Age of the oldest waiting outbox row (0 when empty).", ["service"],
    multiprocess_mode="livemostrecent")

UNMATCHED = "unmatched"
OTHER = "other"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_TOPICS = tuple(sorted((t.value for t in Topic), key=len, reverse=True))


@lru_cache(maxsize=256)
def topic_label(name: str) -> str:
    """The logical topic of a topic's name (``test-1a2b-alerts`` -> ``alerts``): a deployment's prefix is
    no label value; a name of no known topic is ``other``, so a label never takes arbitrary values."""
    for topic in _TOPICS:
        if name.endswith(topic):
            return topic
    return OTHER


# --- the events a consumer handled ----------------------------------------------------------------------


@dataclass
class EventTally:
    """What one consumed message came to, filled in while its handler runs (:func:`current_tally`): a
    batch handler says how many events it had (:func:`count_batch`) and a handler how many of them were
    duplicates (:func:`count_duplicates`); a single record without either counts as one processed."""

    events: int | None = None
    duplicates: int = 0


_TALLY: contextvars.ContextVar[EventTally | None] = contextvars.ContextVar("csp_event_tally", default=None)


def start_tally() -> tuple[EventTally, contextvars.Token]:
    tally = EventTally()
    return tally, _TALLY.set(tally)


def end_tally(token: contextvars.Token) -> None:
    _TALLY.reset(token)


def count_batch(events: int) -> None:
    """A batch handler's events (what ``shared.kafka.batch_events`` parsed, poison ones left out)."""
    if (tally := _TALLY.get()) is not None:
        tally.events = (tally.events or 0) + events


def count_duplicates(duplicates: int = 1) -> None:
    """Events of the message being handled that were dropped as already applied (the dedupe ledger)."""
    if duplicates and (tally := _TALLY.get()) is not None:
        tally.duplicates += duplicates


def record_tally(service: str, topic: str, tally: EventTally) -> None:
    events = 1 if tally.events is None else tally.events
    duplicates = min(tally.duplicates, events)
    label = topic_label(topic)
    if events - duplicates:
        EVENTS_PROCESSED.labels(service, label, "processed").inc(events - duplicates)
    if duplicates:
        EVENTS_PROCESSED.labels(service, label, "duplicate").inc(duplicates)


def count_dead_letter(service: str, topic: str) -> None:
    DEAD_LETTERS.labels(service, topic_label(topic)).inc()


# --- HTTP ---------------------------------------------------------------------------------------------


class HttpMetrics:
    """Pure ASGI middleware: counts and times each HTTP request by method, route template and status.

    The route is the template of the route that took the request (Starlette puts it in the scope while
    routing; the scope is the same dictionary here), so ``/v1/tenants/t1/alerts`` and
    ``/v1/tenants/t2/alerts`` are one series. The labelled children are cached: a request costs a dict
    look-up, a counter increment and a histogram observation (no ``BaseHTTPMiddleware``, no task).
    """

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._timers: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers if the app raises before it answered

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            self._observe(scope["method"], getattr(route, "path", None) or UNMATCHED, status,
                          time.perf_counter() - started)

    def _observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        counter = self._counters.get(key)
        if counter is None:
            label = method if method in _METHODS else OTHER
            counter = self._counters[key] = HTTP_REQUESTS.labels(self.service, label, route, str(status))
        counter.inc()
        timer = self._timers.get(key[:2])
        if timer is None:
            label = method if method in _METHODS else OTHER
            timer = self._timers[key[:2]] = HTTP_DURATION.labels(self.service, label, route)
        timer.observe(seconds)


# --- GET /metrics ---------------------------------------------------------------------------------------

Refresh = Callable[[], Awaitable[None]]
# A gauge refreshed on scrape may take this long; past it, the scrape answers with its last value.
REFRESH_TIMEOUT_SECONDS = 2.0


def on_scrape(app: FastAPI, refresh: Refresh) -> None:
    """Run ``refresh`` (which sets gauges) before each scrape of ``app``'s ``/metrics``."""
    app.state.metrics_refreshers.append(refresh)


async def _refresh(refreshers: Iterable[Refresh]) -> None:
    async def one(refresh: Refresh) -> None:
        try:
            async with asyncio.timeout(REFRESH_TIMEOUT_SECONDS):
                await refresh()
        except Exception as exc:  # a gauge that cannot be read now keeps its last value; the rest are served
            log.debug("a metric could not be refreshed: %s: %s", type(exc).__name__, exc)

    await asyncio.gather(*(one(r) for r in refreshers))


# A service run as several processes (shared.service): each keeps its metrics in files of this directory,
# and a scrape, answered by any one of them, reads them all (prometheus_client's multiprocess mode).
MULTIPROCESS_DIRECTORY = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
# There, each process refreshes its own gauges this often (a scrape reaches one process only).
MULTIPROCESS_REFRESH_SECONDS = 5.0


def install_metrics(app: FastAPI, service: str) -> None:
    """``GET /metrics`` (Prometheus text, no key, not in the OpenAPI document) and the HTTP middleware."""
    app.state.metrics_refreshers = []
    app.add_middleware(HttpMetrics, service=service)

    async def metrics(request: Request) -> Response:
        await _refresh(request.app.state.metrics_refreshers)
        return Response(generate_latest(_scraped_registry()), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route("/metrics", metrics, methods=["GET"], include_in_schema=False)
    if MULTIPROCESS_DIRECTORY:
        _refresh_in_the_background(app)


def _scraped_registry() -> CollectorRegistry:
    """This process's registry; with several processes, one that reads every process's files (those of
    processes that ended keep their counts; their live gauges are dropped)."""
    if not MULTIPROCESS_DIRECTORY:
        return REGISTRY
    _forget_ended_processes(MULTIPROCESS_DIRECTORY)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=MULTIPROCESS_DIRECTORY)
    return registry


def _forget_ended_processes(directory: str) -> None:
    # A live gauge's file is gauge_live<mode>_<pid>.db; a process that ended has no /proc entry.
    pids = {name.removesuffix(".db").rpartition("_")[2] for name in os.listdir(directory)
            if name.startswith("gauge_live")}
    for pid in pids:
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            multiprocess.mark_process_dead(int(pid), directory)


def _refresh_in_the_background(app: FastAPI) -> None:
    """Run the app's refreshers every MULTIPROCESS_REFRESH_SECONDS while it runs, so the gauges of the
    processes a scrape does not reach are recent too."""
    inner = app.router.lifespan_context

    async def refresh_forever() -> None:
        while True:
            await asyncio.sleep(MULTIPROCESS_REFRESH_SECONDS)
            await _refresh(app.state.metrics_refreshers)

    @asynccontextmanager
    async def lifespan(running: FastAPI) -> AsyncIterator[Any]:
        async with inner(running) as state:
            task = asyncio.create_task(refresh_forever(), name="metrics-refresh")
            try:
                yield state
            finally:
                task.cancel()

    app.router.lifespan_context = lifespan


# --- consumer lag ---------------------------------------------------------------------------------------


def consumer_lag(consumers: Iterable[Any]) -> dict[str, int]:
    """Per topic (its label), the records not consumed yet on the partitions ``consumers`` hold: the last
    stable offset (read_committed; the high watermark otherwise) less the position, from what each
    aiokafka consumer learned at its last fetch. A partition fetched nothing yet counts 0."""
    lag: dict[str, int] = {}
    for consumer in consumers:
        try:
            assignment = consumer.assignment()
        except Exception:  # noqa: BLE001 - a consumer stopping or rebalancing: nothing to say now
            continue
        for partition in assignment:
            behind = _partition_lag(consumer, partition)
            label = topic_label(partition.topic)
            lag[label] = lag.get(label, 0) + behind
    return lag


def _partition_lag(consumer: Any, partition: Any) -> int:
    try:
        state = consumer._subscription.subscription.assignment.state_value(partition)
        if state is None or not state.has_valid_position:
            return 0
        end = state.lso if state.lso is not None and state.lso >= 0 else state.highwater
        return max(0, end - state.position) if end is not None else 0
    except Exception:  # noqa: BLE001 - aiokafka's internals moved on: report no lag rather than fail a scrape
        return 0


def broker_consumers(broker: Any) -> list[Any]:
    """The aiokafka consumers of a FastStream Kafka broker's subscribers (those started)."""
    consumers: list[Any] = []
    for subscriber in broker.subscribers:
        group = getattr(subscriber, "consumer_subgroup", None)
        if group:
            consumers.extend(group)
        elif getattr(subscriber, "consumer", None) is not None:
            consumers.append(subscriber.consumer)
    return consumers


def watch_consumer_lag(app: FastAPI, service: str, broker: Any) -> None:
    """``csp_consumer_lag`` of ``broker``'s consumers, computed at each scrape of ``app``; a topic no
    longer held reads 0."""
    seen: set[str] = set()

    async def refresh() -> None:
        lag = consumer_lag(broker_consumers(broker))
        for topic in seen - lag.keys():
            CONSUMER_LAG.labels(service, topic).set(0)
        for topic, behind in lag.items():
            CONSUMER_LAG.labels(service, topic).set(behind)
        seen.update(lag)

    on_scrape(app, refresh)
