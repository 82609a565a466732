"""``GET /security-score`` beside a bare endpoint that reads one Redis key, on one server stack.

One uvicorn process (FastAPI, the scoring service's own score router and Redis cache) serves both;
tenants' statuses are loaded into Redis under a key prefix of this run (deleted afterwards). The
score endpoint authenticates, reads the cache marker and the tenant's hash in one round trip and
computes the score; the baseline reads one key and returns it. Concurrent httpx clients, loopback only.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import httpx
from fastapi import FastAPI
from redis.asyncio import Redis

from bench.support import Measurement, ratio_line, run_id
from shared.events import ComplianceStatus
from shared.wire import utcnow

TENANTS = 200
CONCURRENCY = 16
REQUESTS_PER_ROUND = 5000
ROUNDS = 3
AUTH = {"Authorization": "Bearer bench-operator-key"}
AUTH_LINE = f"Authorization: {AUTH['Authorization']}\r\n"
REPO = Path(__file__).resolve().parent.parent


def bench_app() -> FastAPI:
    """The server side (``uvicorn bench.scoring:bench_app --factory``), configured by environment."""
    from services.scoring import routes_score
    from services.scoring.cache import ScoreCache
    from services.scoring.config import Settings
    from services.scoring.keeper import ScoreKeeper
    from shared.auth import KeyStore
    from shared.catalogue import load_catalogue
    from shared.hot_routes import serve_ahead
    from shared.http import install_problem_handlers

    prefix = os.environ["BENCH_REDIS_PREFIX"]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.redis = Redis.from_url(os.environ["REDIS_URL"], decode_responses=True)
        app.state.settings = Settings(environment="development", redis_key_prefix=prefix)
        app.state.catalogue = load_catalogue()
        app.state.keys = KeyStore(AUTH["Authorization"][7:], None)
        app.state.cache = ScoreCache(app.state.redis, prefix)
        # Never started: the cache is marked ready, so a read never asks it for a rebuild.
        app.state.keeper = ScoreKeeper(None, app.state.cache, app.state.catalogue)  # type: ignore[arg-type]
        yield
        await app.state.redis.aclose()

    app = FastAPI(lifespan=lifespan)
    install_problem_handlers(app)
    app.include_router(routes_score.router)
    serve_ahead(app, routes_score.get_security_score)  # as services/scoring/app.py does

    @app.get("/bare")
    async def bare() -> dict[str, str | None]:
        return {"value": await app.state.redis.get(f"{prefix}bare")}

    return app


async def load(redis: Redis, prefix: str) -> list[str]:
    from services.scoring import domain
    from services.scoring.cache import ScoreCache
    from services.scoring.store import TenantSnapshot
    from shared.catalogue import load_catalogue

    cache = ScoreCache(redis, prefix)
    catalogue = load_catalogue()
    rng = random.Random(5)
    now = utcnow()
    tenants = [f"bench-tenant-{i}" for i in range(TENANTS)]
    for tenant in tenants:
        statuses = {
            r.requirement_type: domain.Observation(
                r.requirement_type,
                rng.choice(list(ComplianceStatus)),
                now - timedelta(minutes=rng.randint(1, 600)),
                str(uuid.uuid4()),
                source="bench",
                insights={"checked": rng.randint(1, 50)},
                applied_at=now,
            )
            for r in catalogue.requirements
        }
        await cache.merge(TenantSnapshot(tenant, statuses, now, now))
    # Complete, as a rebuild would leave it: the marker names this Redis server's run.
    if not await cache.finish_rebuild(await cache.begin_rebuild()):
        raise RuntimeError("could not mark the benchmark's score cache complete")
    await redis.set(f"{prefix}bare", "x" * 64)
    return tenants


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> tuple[int, bytes]:
    """One GET on a kept-alive connection. A minimal HTTP/1.1 client: httpx costs more CPU per request
    than the server under test, so with it the client, not the server, would be measured."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n{AUTH_LINE}\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return status, await reader.readexactly(length)


async def measure(name: str, port: int, path_of, count: int) -> Measurement:
    latencies: list[float] = []
    remaining = count

    async def worker() -> None:
        nonlocal remaining
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                status, body = await _get(reader, writer, path_of())
                latencies.append((time.perf_counter() - started) * 1000)
                if status != 200:
                    raise RuntimeError(f"{name}: {status} {body[:200]!r}")
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - started
    return Measurement(name, len(latencies), elapsed, latencies)


def merged(parts: list[Measurement]) -> Measurement:
    return Measurement(
        parts[0].name,
        sum(p.count for p in parts),
        sum(p.seconds for p in parts),
        [x for p in parts for x in p.latencies_ms],
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_until_serving(base: str, server: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(timeout=2) as http:
        while time.monotonic() < deadline:
            if server.returncode is not None:
                raise RuntimeError(f"the bench server exited with {server.returncode}")
            try:
                if (await http.get(f"{base}/bare")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise TimeoutError("the bench server did not start within 30 s")


async def main() -> None:
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    prefix = f"bench-scoring-{run_id()}:"
    redis = Redis.from_url(redis_url, decode_responses=True)
    port = free_port()
    server = None
    try:
        tenants = await load(redis, prefix)
        env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "BENCH_REDIS_PREFIX": prefix,
            "ENVIRONMENT": "development",
        }
        server = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "uvicorn",
            "bench.scoring:bench_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            cwd=REPO,
            env=env,
        )
        base = f"http://127.0.0.1:{port}"
        await wait_until_serving(base, server)

        def score_path() -> str:
            return f"/v1/tenants/{random.choice(tenants)}/security-score"

        def bare_path() -> str:
            return "/bare"

        await measure("warm-up", port, score_path, 300)
        await measure("warm-up", port, bare_path, 300)
        scores, bares = [], []
        for _ in range(ROUNDS):  # alternated, so drift of a shared machine hits both alike
            bares.append(
                await measure("bare endpoint: GET one Redis key", port, bare_path, REQUESTS_PER_ROUND)
            )
            scores.append(await measure("GET /security-score", port, score_path, REQUESTS_PER_ROUND))
        subject, baseline = merged(scores), merged(bares)
        print(
            f"  {TENANTS} tenants, {CONCURRENCY} concurrent clients, "
            f"{ROUNDS} x {REQUESTS_PER_ROUND} requests each"
        )
        print(baseline.line())
        print(subject.line())
        print(ratio_line(subject, baseline))
    finally:
        if server is not None and server.returncode is None:
            server.terminate()
            try:
                await asyncio.wait_for(server.wait(), 10)
            except TimeoutError:
                server.kill()
                await server.wait()
        async for key in redis.scan_iter(match=f"{prefix}*", count=500):
            await redis.delete(key)
        await redis.aclose()
