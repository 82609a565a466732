"""Wires the write API: settings, PostgreSQL, the Kafka producers, the routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.ingest import (
    routes_alerts,
    routes_audit,
    routes_channels,
    routes_contacts,
    routes_deliveries,
    routes_keys,
    routes_signals,
)
from services.ingest.config import get_settings
from services.ingest.publisher import EventPublisher
from services.ingest.webhook_auth import WebhookSecrets
from shared.auth import KeyStore
from shared.catalogue import load_catalogue_or_exit
from shared.db import create_pool
from shared.http import Health
from shared.http import create_app as create_http_app
from shared.kafka import make_broker


def create_app() -> FastAPI:
    settings = get_settings()
    catalogue = load_catalogue_or_exit(settings.catalogue_path)
    # The shared broker publishes everything but alerts (contacts, signals...); a request must fail
    # within seconds, not the client's 40 s default, when the broker is away.
    request_timeout_ms = max(1000, int(settings.publish_timeout_seconds * 1000))
    broker = make_broker(settings, client_id="ingest", request_timeout_ms=request_timeout_ms)
    event_publisher = EventPublisher(settings)
    state: dict = {}

    async def database_answers() -> None:
        await state["pool"].fetchval("SELECT 1")

    async def broker_answers() -> None:
        if not await broker.ping(timeout=2):
            raise ConnectionError("the Kafka broker does not answer")

    health = Health("ingest", {"postgres": database_answers, "kafka": broker_answers})

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # #11 transitional: notifier (channels_store writes notification_channels, redelivery reads and
        # writes notification_deliveries) still crosses; the search path becomes "ingest" alone.
        state["pool"] = app.state.pool = await create_pool(settings.database_url, schema="ingest, notifier")
        app.state.settings = settings
        app.state.catalogue = catalogue
        app.state.broker = broker
        app.state.event_publisher = event_publisher
        app.state.keys = KeyStore(settings.operator_api_key.get_secret_value(), app.state.pool)
        app.state.webhook_secrets = WebhookSecrets(
            app.state.pool,
            settings.webhook_secret.get_secret_value(),
            ttl=settings.webhook_secret_cache_seconds,
        )
        await broker.start()
        await event_publisher.start()
        try:
            yield
        finally:
            await app.state.keys.close()
            await event_publisher.close()
            await broker.stop()
            await app.state.pool.close()

    app = create_http_app(
        title="CSP alert triage: write API",
        version="1",
        description="Alerts, security contact, channels and requirement signals in; events out to Kafka.",
        health=health,
        lifespan=lifespan,
    )
    for module in (routes_alerts, routes_contacts, routes_signals, routes_channels, routes_deliveries,
                   routes_keys, routes_audit):
        app.include_router(module.router)
    default_openapi = app.openapi

    def openapi() -> dict:
        # The alert routes parse their bodies by hand (to check signatures over the raw bytes), so
        # FastAPI does not see their schemas; add them for the request bodies that refer to them.
        if app.openapi_schema is None:
            schema = default_openapi()
            schema.setdefault("components", {}).setdefault("schemas", {}).update(
                routes_alerts.openapi_schemas()
            )
        return app.openapi_schema

    app.openapi = openapi
    return app
