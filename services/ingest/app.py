"""Wires the write API: settings, PostgreSQL, the outbox relay, the deliveries consumer, the routes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from services.ingest import (
    channels_store,
    routes_actions,
    routes_alerts,
    routes_audit,
    routes_bulk_actions,
    routes_bulk_alerts,
    routes_channels,
    routes_contacts,
    routes_deliveries,
    routes_escalation,
    routes_graph,
    routes_keys,
    routes_offboarding,
    routes_signals,
    routes_triage,
    routes_webhook_secrets,
    signals_store,
)
from services.ingest.config import get_settings
from services.ingest.graph import store as graph_store
from services.ingest.graph.sync import GraphSync
from services.ingest.handlers import build_router
from services.ingest.health import IngestHealth
from services.ingest.store import USED_LINK_MEMORY, prune_used_action_links
from services.ingest.webhook_auth import WebhookSecrets
from shared.asyncapi import asyncapi_routes
from shared.auth import KeyStore
from shared.catalogue import load_catalogue_or_exit
from shared.db import create_pool, prune_forever, prune_processed_events_forever
from shared.hot_routes import serve_ahead
from shared.http import create_app as create_http_app
from shared.kafka import make_broker
from shared.metrics import watch_consumer_lag
from shared.outbox import OutboxRelay, watch_backlog
from shared.tracing import configure as configure_tracing


def create_app() -> FastAPI:
    settings = get_settings()
    catalogue = load_catalogue_or_exit(settings.catalogue_path)
    configure_tracing(settings, "ingest")  # before the broker and the app: both are instrumented if it is on
    # Every event the write API publishes goes out through its outbox (shared/outbox.py); the broker
    # consumes the notifier's delivery changes (and dead-letters a poison one).
    broker = make_broker(settings, client_id="ingest")
    broker.include_router(build_router(settings))
    relay = OutboxRelay(settings, schema="ingest", client_id="ingest-outbox", max_record_bytes=settings.max_event_bytes)
    state: dict = {}

    async def database_answers() -> None:
        await state["pool"].fetchval("SELECT 1")

    health = IngestHealth("ingest", {"postgres": database_answers}, relay=relay, broker=broker)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state["pool"] = app.state.pool = await create_pool(settings.database_url, schema="ingest")
        health.pool = app.state.pool
        app.state.settings = settings
        app.state.catalogue = catalogue
        app.state.broker = broker
        app.state.relay = relay
        app.state.keys = KeyStore(settings.operator_api_key.get_secret_value(), app.state.pool)
        app.state.webhook_secrets = WebhookSecrets(
            app.state.pool,
            settings.webhook_secret.get_secret_value(),
            ttl=settings.webhook_secret_cache_seconds,
        )
        # State no event told of yet (an upgraded deployment's), told once, so the compacted topics
        # hold every channel and every customer's figures.
        await channels_store.announce_unpublished(app.state.pool, settings.sealing_key_list)
        await signals_store.announce_customer_mfa(app.state.pool)
        # Graph credentials sealed under a key that is no longer first are sealed again under it.
        await graph_store.reseal_credentials(app.state.pool, settings.sealing_key_list)
        await relay.start()
        broker.context.set_global("pool", app.state.pool)
        await broker.start()
        used_links = f"used one-click links issued more than {USED_LINK_MEMORY.days} days ago"
        pruning = [asyncio.create_task(prune_processed_events_forever(app.state.pool), name="prune-ledger"),
                   asyncio.create_task(prune_forever(partial(prune_used_action_links, app.state.pool), used_links),
                                       name="prune-used-links")]
        graph_sync = GraphSync(app.state.pool, settings) if settings.graph_sync_enabled else None
        if graph_sync is not None:
            graph_sync.start()
        try:
            yield
        finally:
            if graph_sync is not None:
                await graph_sync.close()
            await app.state.keys.close()
            for task in pruning:
                task.cancel()
            await broker.stop()
            await relay.close()
            await app.state.pool.close()

    app = create_http_app(
        title="CSP alert triage: write API",
        version="1",
        description="Alerts, security contact, channels and requirement signals in; events out to Kafka.",
        health=health,
        lifespan=lifespan,
    )
    watch_consumer_lag(app, "ingest", broker)
    watch_backlog(app, "ingest", lambda: state.get("pool"))
    # Outermost, so a preflight is answered before the guards ask for a key, and every answer (a
    # problem too) carries the headers the dashboard's browser needs to read it.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.dashboard_origin_list,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
        expose_headers=["Location", "Retry-After"],
        max_age=600,
    )
    for module in (routes_alerts, routes_contacts, routes_signals, routes_channels, routes_deliveries,
                   routes_keys, routes_audit, routes_graph, routes_actions, routes_bulk_actions, routes_escalation,
                   routes_triage, routes_bulk_alerts, routes_webhook_secrets):
        # A tenant offboarded takes no more writes (410); the offboarding itself may be run again.
        app.include_router(module.router, dependencies=[Depends(routes_offboarding.refuse_writes_of_offboarded)])
    app.include_router(routes_offboarding.router)
    # The commonest write (a webhook per alert), answered before FastAPI's routing and parameter machinery;
    # the offboarding check runs first all the same (#15).
    serve_ahead(app, routes_alerts.post_alerts)
    default_openapi = app.openapi

    def openapi() -> dict:
        # The alert routes parse their bodies by hand (to check signatures over the raw bytes), so
        # FastAPI does not see their schemas; add them for the request bodies that refer to them.
        if app.openapi_schema is None:
            schema = default_openapi()
            schema.setdefault("components", {}).setdefault("schemas", {}).update(
                routes_alerts.openapi_schemas()
            )
            routes_offboarding.document_gone(schema)
        return app.openapi_schema

    app.openapi = openapi
    # Its topics and events (AsyncAPI 3.0), as published in docs/asyncapi/.
    app.include_router(asyncapi_routes(broker, "ingest", topic_prefix=settings.kafka_topic_prefix))
    return app
