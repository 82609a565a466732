"""Wires the write API: settings, PostgreSQL, the Kafka producer, the routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.ingest import routes_alerts, routes_channels, routes_contacts, routes_deliveries, routes_signals
from services.ingest.config import get_settings
from shared.auth import KeyStore
from shared.db import create_pool
from shared.http import Health, create_app as create_http_app
from shared.kafka import make_broker


def create_app() -> FastAPI:
    settings = get_settings()
    broker = make_broker(settings, client_id="ingest")
    state: dict = {}

    async def database_answers() -> None:
        await state["pool"].fetchval("SELECT 1")

    async def broker_answers() -> None:
        if not await broker.ping(timeout=2):
            raise ConnectionError("the Kafka broker does not answer")

    health = Health("ingest", {"postgres": database_answers, "kafka": broker_answers})

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state["pool"] = app.state.pool = await create_pool(settings.database_url)
        app.state.settings = settings
        app.state.broker = broker
        app.state.keys = KeyStore(settings.operator_api_key.get_secret_value(), app.state.pool)
        await broker.start()
        try:
            yield
        finally:
            await broker.stop()
            await app.state.pool.close()

    app = create_http_app(
        title="CSP alert triage: write API",
        version="1",
        description="Alerts, security contact, channels and requirement signals in; events out to Kafka.",
        health=health,
        lifespan=lifespan,
    )
    for module in (routes_alerts, routes_contacts, routes_signals, routes_channels, routes_deliveries):
        app.include_router(module.router)
    return app
