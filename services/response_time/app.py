"""Wires the response-time service: PostgreSQL, the Kafka consumer, the status publisher, the outbox relay,
health endpoints."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.response_time.config import get_settings
from services.response_time.handlers import build_router
from services.response_time.metrics import watch_tenants_at_risk
from services.response_time.status import StatusPublisher
from shared import outbox
from shared.asyncapi import asyncapi_routes
from shared.db import create_pool, prune_processed_events_forever
from shared.http import Health
from shared.http import create_app as create_http_app
from shared.kafka import make_broker
from shared.metrics import watch_consumer_lag
from shared.tracing import configure as configure_tracing


def create_app() -> FastAPI:
    settings = get_settings()
    configure_tracing(settings, "response-time")  # before the broker and the app: both instrumented if it is on
    broker = make_broker(settings, client_id="response-time")
    broker.include_router(build_router(settings))
    # Publishes what the consumer and the status publisher write to the response_time schema's outbox.
    relay = outbox.OutboxRelay(settings, schema="response_time", client_id="response-time-outbox",
                               publish_timeout_seconds=settings.response_time_publish_timeout_seconds)
    state: dict = {}

    async def database_answers() -> None:
        await state["pool"].fetchval("SELECT 1")

    async def status_publisher_runs() -> None:
        await state["status"].check_running()

    async def broker_answers() -> None:
        if not await broker.ping(timeout=2):
            raise ConnectionError("the Kafka broker does not answer")

    async def outbox_flows() -> None:
        waiting, oldest_age = await outbox.backlog(state["pool"])
        if oldest_age is not None and oldest_age > settings.outbox_alarm_seconds:
            relay_state = relay.state()
            raise RuntimeError(
                f"{waiting} event(s) waiting, the oldest for {oldest_age:.0f} s; this process's relay: "
                f"{'leader' if relay_state['leader'] else 'not the leader'}, {relay_state['published']} published, "
                f"last error: {relay_state['lastError']}")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state["pool"] = await create_pool(settings.database_url, schema="response_time")
        broker.context.set_global("pool", state["pool"])
        broker.context.set_global("settings", settings)
        status = state["status"] = StatusPublisher(state["pool"], settings, on_enqueued=relay.wake)
        broker.context.set_global("status", status)
        broker.context.set_global("relay", relay)
        await relay.start()
        await broker.start()
        status.start()
        pruning = asyncio.create_task(prune_processed_events_forever(state["pool"]), name="prune-ledger")
        try:
            yield
        finally:
            pruning.cancel()
            await status.stop()
            await broker.stop()
            await relay.close()
            await state["pool"].close()

    app = create_http_app(
        title="CSP alert triage: response-time service",
        version="1",
        description="Consumes alert events; keeps per-alert latency and the 30-day average in PostgreSQL.",
        health=Health("response-time", {"postgres": database_answers, "kafka": broker_answers,
                                         "statusPublisher": status_publisher_runs, "outbox": outbox_flows}),
        lifespan=lifespan,
    )
    watch_consumer_lag(app, "response-time", broker)
    outbox.watch_backlog(app, "response-time", lambda: state.get("pool"))
    watch_tenants_at_risk(app, lambda: state.get("pool"))
    # Its topics and events (AsyncAPI 3.0), as published in docs/asyncapi/.
    app.include_router(asyncapi_routes(broker, "response-time", topic_prefix=settings.kafka_topic_prefix))
    return app
