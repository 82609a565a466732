"""Ingest throughput: accepted alerts per second and p50/p99 latency of ``POST /alerts``.

Subject: the real write API as a process (bearer auth, parsing, row locks in PostgreSQL, each
request's events written to its outbox in the transaction of the change, 202 once that commits), on
a database and topics of this run; its outbox relay publishes the events (idempotent producer,
acks=all) beside the requests. Baseline: a bare endpoint on the same stack (uvicorn + FastAPI, same
body reading and alert parsing) that stores and publishes nothing. Both are driven by the same
concurrent httpx clients, with lists of 1 and of 100 alerts. Every posted alert is new, so every
one yields an ``alert-created`` event; the run also reports the rate at which the alerts reached
Kafka (from the first measured request until the outbox is empty).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
from aiokafka.admin import AIOKafkaAdminClient
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from bench.support import Measurement, ratio_line, run_id
from services.ingest.parsing import alerts_from_document, parse_json, read_body, require_json_media_type
from shared.db import apply_migrations, create_pool
from shared.http import install_problem_handlers
from shared.kafka import TOPIC_SPECS, ensure_topics

REPO = Path(__file__).resolve().parents[1]
AUTH = {"Authorization": "Bearer dev-admin-key"}
# (alerts per request, requests, concurrent clients): bounded so a run stays well under a minute.
SHAPES = ((1, 1500, 16), (100, 60, 4))
WARM_UP_REQUESTS = 20
OUTBOX_DEADLINE_SECONDS = 120


def bare_app():
    """The baseline: the same stack and parsing, answering 202 without state or publishing."""
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/v1/tenants/{tenant_id}/alerts", status_code=202)
    async def accept(tenant_id: str, request: Request) -> JSONResponse:
        require_json_media_type(request.headers.get("content-type"))
        alerts = alerts_from_document(parse_json(await read_body(request, 5 * 1024 * 1024)), 1000)
        return JSONResponse(
            {
                "accepted": len(alerts),
                "duplicates": 0,
                "events": [{"alertId": a.id, "eventType": "alert-created"} for a in alerts],
            },
            status_code=202,
        )

    @app.get("/health/ready")
    async def ready() -> dict:
        return {"status": "ready"}

    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _with_database(url: str, name: str) -> str:
    return f"{url.rpartition('/')[0]}/{name}"


async def _wait_ready(url: str, proc: subprocess.Popen, within_seconds: float = 60) -> None:
    deadline = time.monotonic() + within_seconds
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{url} exited with {proc.returncode}")
            try:
                if (await client.get(f"{url}/health/ready")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {within_seconds} s")


def _alert(tag: str, n: int) -> dict:
    return {
        "id": f"{tag}-{n}",
        "displayName": "Unusual sign-in",
        "severity": "high",
        "status": "active",
        "detectedDateTime": "2026-11-27T08:00:00+01:00",
        "isTest": "false",
        "customerTenantId": "c1",
        "affectedResources": [{"resourceId": "vm-1", "resourceType": "virtualMachine"}],
    }


async def _drive(
    name: str, url: str, tenant: str, per_request: int, requests: int, clients: int
) -> Measurement:
    counter = iter(range(10**9))
    tag = uuid.uuid4().hex[:6]
    latencies: list[float] = []
    accepted = 0

    def body() -> dict:
        items = [_alert(tag, next(counter)) for _ in range(per_request)]
        return items[0] if per_request == 1 else {"value": items}

    async def one(client: httpx.AsyncClient, record: bool) -> None:
        nonlocal accepted
        payload = body()
        started = time.perf_counter()
        response = await client.post(f"{url}/v1/tenants/{tenant}/alerts", json=payload, headers=AUTH)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 202:
            raise RuntimeError(f"{name}: {response.status_code} {response.text[:300]}")
        if record:
            latencies.append(elapsed)
            accepted += response.json()["accepted"]

    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=clients)) as client:
        for _ in range(WARM_UP_REQUESTS // max(1, per_request // 10)):
            await one(client, record=False)
        remaining = iter(range(requests))

        async def worker() -> None:
            for _ in remaining:
                await one(client, record=True)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        seconds = time.perf_counter() - started
    if accepted != per_request * requests:
        raise RuntimeError(f"{name}: {accepted} alerts accepted of {per_request * requests}")
    return Measurement(name, accepted, seconds, latencies)


async def published(pool: asyncpg.Pool, accepted: Measurement, name: str) -> Measurement:
    """The alerts ``accepted`` answered, as they reached Kafka: its time plus the wait, after its last
    answer, until the relay has emptied the outbox."""
    started = time.perf_counter()
    deadline = time.monotonic() + OUTBOX_DEADLINE_SECONDS
    while waiting := await pool.fetchval("SELECT count(*) FROM outbox"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name}: {waiting} event(s) still in the outbox after {OUTBOX_DEADLINE_SECONDS} s")
        await asyncio.sleep(0.02)
    return Measurement(name, accepted.count, accepted.seconds + time.perf_counter() - started, [])


async def main() -> None:
    rid = run_id()
    admin_url = os.environ.get("DATABASE_URL", "postgresql://csp:csp@127.0.0.1:5432/csp_triage")
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    database = f"csp_bench_{rid}"
    prefix = f"bench-{rid}-"
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'CREATE DATABASE "{database}"')
    await conn.close()
    database_url = _with_database(admin_url, database)
    await apply_migrations(database_url)
    await ensure_topics(bootstrap, prefix)

    ingest_port, bare_port = free_port(), free_port()
    env = {
        **os.environ,
        "ENVIRONMENT": "development",
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_TOPIC_PREFIX": prefix,
        "INGEST_PORT": str(ingest_port),
        "LOG_LEVEL": "WARNING",
    }
    processes = [
        subprocess.Popen(  # noqa: ASYNC220 - started once, before any measuring
            [sys.executable, "-m", "services.ingest"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        ),
        subprocess.Popen(  # noqa: ASYNC220 - started once, before any measuring
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bench.ingest:bare_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(bare_port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        ),
    ]
    ingest_url, bare_url = f"http://127.0.0.1:{ingest_port}", f"http://127.0.0.1:{bare_port}"
    pool = await create_pool(database_url, schema="ingest", max_size=1)
    try:
        await _wait_ready(ingest_url, processes[0])
        await _wait_ready(bare_url, processes[1])
        print(
            "  POST /alerts: ingest (auth, PostgreSQL state and outbox; its relay publishes, acks=all) "
            "vs a bare endpoint (same stack and parsing, no state, no publishing)"
        )
        for per_request, requests, clients in SHAPES:
            tenant = f"bench-{rid}-{per_request}"
            bare = await _drive(
                f"bare endpoint, lists of {per_request} (alerts)",
                bare_url,
                tenant,
                per_request,
                requests,
                clients,
            )
            real = await _drive(
                f"ingest POST /alerts, lists of {per_request} (alerts)",
                ingest_url,
                tenant,
                per_request,
                requests,
                clients,
            )
            on_kafka = await published(pool, real, f"ingest, alerts on Kafka, lists of {per_request}")
            print(f"  lists of {per_request}: {requests} requests, {clients} concurrent clients")
            print(bare.line())
            print(real.line())
            print(on_kafka.line())
            print(ratio_line(real, bare))
            print(ratio_line(on_kafka, bare))
    finally:
        await pool.close()
        for proc in processes:
            proc.terminate()
        for proc in processes:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        conn = await asyncpg.connect(admin_url)
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await conn.close()
        topics = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="bench-ingest")
        await topics.start()
        try:
            await topics.delete_topics([f"{prefix}{spec.topic.value}" for spec in TOPIC_SPECS])
        finally:
            await topics.close()
    print("  (a shared 2-core machine: compare the ratios of one run, not absolute figures across runs)")
