"""HTTP pieces every service shares: problem+json errors, health endpoints, the app factory.

Errors are RFC 9457 ``application/problem+json`` with the right 4xx; bad input never yields a 5xx.
Every process serves ``GET /health/live`` (the process runs) and ``GET /health/ready`` (each of its
dependencies answers), so ``make run``, Docker and orchestrators can wait for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis import exceptions as redis_errors
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
DEPENDENCY_RETRY_AFTER_SECONDS = 5
# Errors meaning PostgreSQL or Redis cannot be reached right now (not a bad request).
DEPENDENCY_ERRORS: tuple[type[Exception], ...] = (
    ConnectionError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.TooManyConnectionsError,
    asyncpg.CannotConnectNowError,
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
)


class Problem(Exception):
    """Raise to answer with a problem document."""

    def __init__(self, status: int, title: str, detail: str | None = None, *,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail or title)
        self.status, self.title, self.detail, self.headers, self.extra = status, title, detail, headers, extra


def problem_response(status: int, title: str, detail: str | None = None, *,
                     headers: dict[str, str] | None = None, instance: str | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _field_path(loc: Sequence[Any]) -> str:
    # ("body", "value", 0, "severity") -> "value[0].severity"
    path = ""
    for part in loc:
        if part in ("body",) and not path:
            continue
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.title, exc.detail, headers=exc.headers,
                                instance=request.url.path, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": _field_path(e.get("loc", ())), "message": e.get("msg", "")} for e in exc.errors()]
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            return problem_response(400, "Malformed JSON", "the request body is not valid JSON",
                                    instance=request.url.path)
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:10])
        return problem_response(422, "Invalid request", detail, instance=request.url.path, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = {404: "Not found", 405: "Method not allowed", 401: "Unauthorized", 403: "Forbidden"}.get(
            exc.status_code, "Request failed")
        return problem_response(exc.status_code, title, str(exc.detail) if exc.detail else None,
                                headers=getattr(exc, "headers", None), instance=request.url.path)

    async def _dependency_down(request: Request, exc: Exception) -> JSONResponse:
        # A database or cache that does not answer is the server's trouble, and a passing one:
        # 503 with Retry-After, never a 500 that looks like a bug in the request.
        log.warning("%s %s: a dependency is unavailable: %s: %s", request.method, request.url.path,
                    type(exc).__name__, exc)
        return problem_response(503, "Service unavailable", "a backing service does not answer; retry later",
                                headers={"Retry-After": str(DEPENDENCY_RETRY_AFTER_SECONDS)},
                                instance=request.url.path)

    for error in DEPENDENCY_ERRORS:
        app.add_exception_handler(error, _dependency_down)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette re-raises after this answer, so the server logs the traceback once.
        return problem_response(500, "Internal error", "the error was logged", instance=request.url.path)


ReadinessCheck = Callable[[], Awaitable[Any]]


@dataclass
class Health:
    """Named readiness checks; each must answer within ``timeout`` seconds."""

    service: str
    checks: dict[str, ReadinessCheck]
    timeout: float = 2.0
    started: float = 0.0

    async def report(self) -> tuple[bool, dict[str, Any]]:
        async def run(name: str, check: ReadinessCheck) -> tuple[str, str]:
            try:
                await asyncio.wait_for(check(), self.timeout)
                return name, "ok"
            except Exception as exc:  # a failed check is a report, not an error
                return name, f"failing: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"

        results = dict(await asyncio.gather(*(run(n, c) for n, c in self.checks.items())))
        ready = all(v == "ok" for v in results.values())
        return ready, {"service": self.service, "status": "ready" if ready else "not ready",
                       "uptimeSeconds": round(time.monotonic() - self.started, 1), "checks": results}


def install_health(app: FastAPI, health: Health) -> None:
    health.started = time.monotonic()

    @app.get("/health/live", tags=["health"], summary="The process is running")
    async def live() -> dict[str, str]:
        return {"service": health.service, "status": "live"}

    @app.get("/health/ready", tags=["health"], summary="Every dependency answers",
             responses={503: {"description": "A dependency is failing"}})
    async def ready() -> JSONResponse:
        ok, body = await health.report()
        return JSONResponse(body, status_code=200 if ok else 503)


def create_app(*, title: str, version: str, description: str, health: Health,
               lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]]) -> FastAPI:
    app = FastAPI(title=title, version=version, description=description, lifespan=lifespan)
    install_problem_handlers(app)
    install_health(app, health)
    return app


@asynccontextmanager
async def no_lifespan(_: FastAPI) -> AsyncIterator[None]:
    yield
