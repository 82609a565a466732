"""Wires the notifier: PostgreSQL (delivery log, timers, contacts, channels), the Kafka consumer, the
delivery worker, the outbox relay that publishes what they record, health."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.notifier import domain
from services.notifier.config import Settings, get_settings
from services.notifier.handlers import build_router
from services.notifier.templates import EmailTemplates, TemplateProblem
from services.notifier.transports import Transports
from services.notifier.worker import DeliveryWorker
from shared import outbox
from shared.asyncapi import asyncapi_routes
from shared.db import create_pool, prune_processed_events_forever
from shared.egress import webhook_client
from shared.http import Health
from shared.http import create_app as create_http_app
from shared.kafka import make_broker
from shared.metrics import watch_consumer_lag
from shared.tracing import configure as configure_tracing

log = logging.getLogger(__name__)


def checked_templates(settings: Settings) -> EmailTemplates:
    """The e-mail templates, each loaded and rendered with sample data now: a broken one stops the
    process here, naming its file (exit code 2, like a bad setting), not at the first alert."""
    templates = EmailTemplates(settings.notifier_template_dir)
    try:
        templates.check(domain.sample_contexts())
    except TemplateProblem as exc:
        print(f"invalid templates: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if overridden := templates.overridden():
        log.info("e-mail templates from %s: %s", settings.notifier_template_dir, ", ".join(overridden))
    return templates


def create_app() -> FastAPI:
    settings = get_settings()
    templates = checked_templates(settings)
    configure_tracing(settings, "notifier")  # before the broker and the app: both are instrumented if it is on
    broker = make_broker(settings, client_id="notifier")
    relay = outbox.OutboxRelay(settings, schema="notifier", client_id="notifier-outbox")
    state: dict = {}
    broker.include_router(
        build_router(settings, lambda: state["worker"].wake() if "worker" in state else None)
    )

    async def database_answers() -> None:
        await state["pool"].fetchval("SELECT 1")

    async def broker_answers() -> None:
        if not await broker.ping(timeout=2):
            raise ConnectionError("the Kafka broker does not answer")

    async def worker_runs() -> None:
        task = state.get("worker_task")
        if task is None or task.done():
            raise RuntimeError("the delivery worker is not running")

    async def outbox_flows() -> None:
        # Any process's relay may lead (one per schema): the table's backlog says whether one publishes.
        waiting, oldest_age = await outbox.backlog(state["pool"])
        if oldest_age is not None and oldest_age > settings.outbox_alarm_seconds:
            relay_state = relay.state()
            raise RuntimeError(
                f"{waiting} event(s) waiting, the oldest for {oldest_age:.0f} s; this process's "
                f"relay: {'leading' if relay_state['leader'] else 'not leading'}, "
                f"{relay_state['published']} published, last error: {relay_state['lastError']}")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state["pool"] = await create_pool(settings.database_url, schema="notifier")
        broker.context.set_global("pool", state["pool"])
        broker.context.set_global("settings", settings)
        await relay.start()
        try:
            # Redirects are not followed: a ticketing URL that redirects is misconfigured (a 3xx is permanent).
            async with webhook_client(settings.webhook_allow_private_addresses, follow_redirects=False) as http:
                state["worker"] = worker = DeliveryWorker(
                    settings, state["pool"], Transports(settings, state["pool"], http, templates))
                await broker.start()
                state["worker_task"] = asyncio.create_task(worker.run(), name="delivery-worker")
                background = [
                    asyncio.create_task(prune_processed_events_forever(state["pool"]), name="prune-ledger"),
                    asyncio.create_task(worker.prune_forever(), name="prune-delivery-log"),
                    asyncio.create_task(worker.announce_earlier_deliveries(), name="announce-earlier-deliveries"),
                ]
                try:
                    yield
                finally:
                    for task in background:
                        task.cancel()
                    state["worker_task"].cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await state["worker_task"]
                    await broker.stop()
        finally:
            await relay.close()  # what it had not published yet waits in the outbox for the next start
        await state["pool"].close()

    app = create_http_app(
        title="CSP alert triage: notifier",
        version="1",
        description="Routes alerts to the security contact and ticketing webhooks.",
        health=Health(
            "notifier",
            {"postgres": database_answers, "kafka": broker_answers, "worker": worker_runs, "outbox": outbox_flows},
        ),
        lifespan=lifespan,
    )
    watch_consumer_lag(app, "notifier", broker)
    outbox.watch_backlog(app, "notifier", lambda: state.get("pool"))
    # Its topics and events (AsyncAPI 3.0), as published in docs/asyncapi/.
    app.include_router(asyncapi_routes(broker, "notifier", topic_prefix=settings.kafka_topic_prefix))
    return app
