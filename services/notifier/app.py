"""Wires the notifier: PostgreSQL (delivery log, timers), the Kafka consumer, health endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.notifier.config import get_settings
from shared.db import create_pool
from shared.http import Health, create_app as create_http_app
from shared.kafka import make_broker


def create_app() -> FastAPI:
    settings = get_settings()
    broker = make_broker(settings, client_id="notifier")
    state: dict = {}

    async def database_answers() -> None:
        await state["pool"].fetchval("SELECT 1")

    async def broker_answers() -> None:
        if not await broker.ping(timeout=2):
            raise ConnectionError("the Kafka broker does not answer")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state["pool"] = await create_pool(settings.database_url)
        broker.context.set_global("pool", state["pool"])
        broker.context.set_global("settings", settings)
        await broker.start()
        try:
            yield
        finally:
            await broker.stop()
            await state["pool"].close()

    return create_http_app(
        title="CSP alert triage: notifier",
        version="1",
        description="Routes alerts to the security contact and ticketing webhooks.",
        health=Health("notifier", {"postgres": database_answers, "kafka": broker_answers}),
        lifespan=lifespan,
    )
