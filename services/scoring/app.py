"""Wires the scoring service: Redis, PostgreSQL, the Kafka consumer, the outbox relay, the read API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.scoring import (
    routes_alerts,
    routes_changes,
    routes_customers,
    routes_dashboard,
    routes_deliveries,
    routes_me,
    routes_response_time,
    routes_score,
    routes_timeline,
)
from services.scoring.cache import ScoreCache, connect_redis
from services.scoring.changes import Changes
from services.scoring.config import get_settings
from services.scoring.handlers import build_router
from services.scoring.keeper import ScoreKeeper
from shared import outbox
from shared.asyncapi import asyncapi_routes
from shared.auth import KeyStore
from shared.catalogue import load_catalogue_or_exit
from shared.db import create_pool, prune_processed_events_forever
from shared.hot_routes import serve_ahead
from shared.http import Health
from shared.http import create_app as create_http_app
from shared.kafka import make_broker
from shared.metrics import watch_consumer_lag
from shared.tracing import configure as configure_tracing


def create_app() -> FastAPI:
    settings = get_settings()
    catalogue = load_catalogue_or_exit(settings.catalogue_path)
    configure_tracing(settings, "scoring")  # before the broker and the app: both are instrumented if it is on
    broker = make_broker(settings, client_id="scoring")
    broker.include_router(build_router(settings))
    # Publishes the score-changed events the store writes to the scoring schema's outbox.
    relay = outbox.OutboxRelay(settings, schema="scoring", client_id="scoring-outbox",
                               publish_timeout_seconds=settings.score_publish_timeout_seconds)
    state: dict = {}

    async def database_answers() -> None:
        await state["pool"].fetchval("SELECT 1")

    async def redis_answers() -> None:
        await state["redis"].ping()  # on a Redis Cluster every node's (redis-py sends PING to all)

    async def broker_answers() -> None:
        if not await broker.ping(timeout=2):
            raise ConnectionError("the Kafka broker does not answer")

    async def outbox_flows() -> None:
        waiting, oldest_age = await outbox.backlog(state["pool"])
        if oldest_age is not None and oldest_age > settings.outbox_alarm_seconds:
            relay_state = relay.state()
            raise RuntimeError(
                f"{waiting} event(s) waiting, the oldest for {oldest_age:.0f} s; this process's "
                f"relay: {'leading' if relay_state['leader'] else 'not leading'}, "
                f"{relay_state['published']} published, last error: {relay_state['lastError']}")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state["pool"] = app.state.pool = await create_pool(settings.database_url, schema="scoring")
        # One Redis server, or a Redis Cluster with REDIS_CLUSTER (cache.connect_redis): the cache, the change
        # hints and the health check take either.
        state["redis"] = app.state.redis = connect_redis(settings)
        app.state.settings = settings
        app.state.catalogue = catalogue
        app.state.keys = KeyStore(settings.operator_api_key.get_secret_value(), app.state.pool)
        app.state.cache = ScoreCache(app.state.redis, settings.redis_key_prefix)
        app.state.changes = Changes(app.state.redis, settings.redis_key_prefix)
        app.state.keeper = keeper = ScoreKeeper(
            app.state.pool,
            app.state.cache,
            catalogue,
            check_seconds=settings.cache_check_seconds,
            activation_check_max_seconds=settings.activation_check_max_seconds,
            changes=app.state.changes,
        )
        broker.context.set_global("pool", app.state.pool)
        broker.context.set_global("redis", app.state.redis)
        broker.context.set_global("settings", settings)
        broker.context.set_global("keeper", keeper)
        broker.context.set_global("changes", app.state.changes)
        app.state.changes.start()
        await broker.start()
        await relay.start()
        keeper.start()
        pruning = asyncio.create_task(prune_processed_events_forever(app.state.pool), name="prune-ledger")
        try:
            yield
        finally:
            await app.state.keys.close()
            pruning.cancel()
            await keeper.stop()
            await relay.close()
            await broker.stop()
            await app.state.changes.stop()
            await app.state.redis.aclose()
            await app.state.pool.close()

    app = create_http_app(
        title="CSP alert triage: read API",
        version="1",
        description="The live security score, its requirements and history, response time, alerts.",
        health=Health(
            "scoring",
            {"postgres": database_answers, "redis": redis_answers, "kafka": broker_answers, "outbox": outbox_flows},
        ),
        lifespan=lifespan,
    )
    for module in (routes_me, routes_score, routes_response_time, routes_alerts, routes_timeline, routes_customers,
                   routes_deliveries, routes_changes, routes_dashboard):
        app.include_router(module.router)
    # The routes polled hardest, answered before FastAPI's routing and parameter machinery (#15).
    serve_ahead(app, routes_score.get_security_score)
    serve_ahead(app, routes_alerts.get_alert)
    watch_consumer_lag(app, "scoring", broker)
    outbox.watch_backlog(app, "scoring", lambda: state.get("pool"))
    # Its topics and events (AsyncAPI 3.0), as published in docs/asyncapi/.
    app.include_router(asyncapi_routes(broker, "scoring", topic_prefix=settings.kafka_topic_prefix))
    return app
