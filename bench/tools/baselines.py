"""The baselines beside which the APIs are measured: bare endpoints on the same stack (uvicorn, FastAPI,
the same event loop and HTTP parser as the services), each doing the one unavoidable thing.

- ``post_app``: ``POST /v1/tenants/{t}/alerts`` reads and parses the body with the write API's parsing,
  then awaits one Kafka acknowledgement (idempotent producer, acks=all, as the services' producers)
  for one record on a topic of its own (``BENCH_BASELINE_TOPIC``); no auth, no database.
- ``read_app``: ``GET /v1/tenants/{t}/security-score`` answers the JSON held by one Redis key
  (``BENCH_BASELINE_KEY``); no auth.

Run by uvicorn as factories: ``uvicorn bench.tools.baselines:post_app --factory``.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from redis.asyncio import Redis

from services.ingest.parsing import alerts_from_document, parse_json


def _ready(app: FastAPI) -> None:
    @app.get("/health/ready")
    async def ready() -> dict:
        return {"status": "ready"}


def post_app() -> FastAPI:
    topic = os.environ["BENCH_BASELINE_TOPIC"]
    producer = AIOKafkaProducer(bootstrap_servers=os.environ["KAFKA_BOOTSTRAP_SERVERS"], acks="all",
                                enable_idempotence=True)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await producer.start()
        yield
        await producer.stop()

    app = FastAPI(lifespan=lifespan)
    _ready(app)

    @app.post("/v1/tenants/{tenant_id}/alerts", status_code=202)
    async def accept(tenant_id: str, request: Request) -> JSONResponse:
        body = await request.body()
        alerts = alerts_from_document(parse_json(body), 1000)
        await producer.send_and_wait(topic, body, key=tenant_id.encode())
        return JSONResponse({"accepted": len(alerts)}, status_code=202)

    return app


def read_app() -> FastAPI:
    key = os.environ["BENCH_BASELINE_KEY"]
    redis = Redis.from_url(os.environ["REDIS_URL"])

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await redis.aclose()

    app = FastAPI(lifespan=lifespan)
    _ready(app)

    @app.get("/v1/tenants/{tenant_id}/security-score")
    async def score(tenant_id: str) -> Response:
        value = await redis.get(key)
        if value is None:
            return JSONResponse({"title": "no such key"}, status_code=404)
        return JSONResponse(json.loads(value))

    return app
