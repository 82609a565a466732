"""Wires the scoring service: Redis, PostgreSQL, the Kafka consumer, the read API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from redis.asyncio import Redis

from services.scoring import routes_alerts, routes_customers, routes_deliveries, routes_response_time, routes_score
from services.scoring.config import get_settings
from shared.auth import KeyStore
from shared.db import create_pool
from shared.http import Health, create_app as create_http_app
from shared.kafka import make_broker


def create_app() -> FastAPI:
    settings = get_settings()
    broker = make_broker(settings, client_id="scoring")
    state: dict = {}

    async def database_answers() -> None:
        await state["pool"].fetchval("SELECT 1")

    async def redis_answers() -> None:
        await state["redis"].ping()

    async def broker_answers() -> None:
        if not await broker.ping(timeout=2):
            raise ConnectionError("the Kafka broker does not answer")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state["pool"] = app.state.pool = await create_pool(settings.database_url)
        state["redis"] = app.state.redis = Redis.from_url(settings.redis_url, decode_responses=True)
        app.state.settings = settings
        app.state.keys = KeyStore(settings.operator_api_key.get_secret_value(), app.state.pool)
        broker.context.set_global("pool", app.state.pool)
        broker.context.set_global("redis", app.state.redis)
        broker.context.set_global("settings", settings)
        await broker.start()
        try:
            yield
        finally:
            await broker.stop()
            await app.state.redis.aclose()
            await app.state.pool.close()

    app = create_http_app(
        title="CSP alert triage: read API",
        version="1",
        description="The live security score, its requirements and history, response time, alerts.",
        health=Health("scoring", {"postgres": database_answers, "redis": redis_answers, "kafka": broker_answers}),
        lifespan=lifespan,
    )
    for module in (routes_score, routes_response_time, routes_alerts, routes_customers, routes_deliveries):
        app.include_router(module.router)
    return app
