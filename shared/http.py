"""HTTP pieces every service shares: problem+json errors, health endpoints, the app factory.

Errors are RFC 9457 ``application/problem+json`` with the right 4xx; bad input never yields a 5xx.
Every process serves ``GET /health/live`` (the process runs) and ``GET /health/ready`` (each of its
dependencies answers), so ``make run``, Docker and orchestrators can wait for it, and ``GET /metrics``
(Prometheus, ``shared.metrics``).
Every app made by :func:`create_app` bounds request bodies and authenticates a key before reading a
body (``shared.http_guards``), refuses NUL in path and query parameters, and documents each
operation's error answers in its OpenAPI document (``shared.http_openapi``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from shared import tracing
from shared.http_guards import RequestGuard
from shared.http_openapi import document_errors
from shared.logs import HttpLogContextMiddleware
from shared.metrics import install_metrics
from shared.problems import (
    DEPENDENCY_ERRORS,
    DEPENDENCY_RETRY_AFTER_SECONDS,
    PROBLEM_JSON,
    Problem,
    dependency_unavailable,
    problem_response,
    response_for,
)
from shared.wire import TENANT_ID_MAX_LENGTH, TENANT_ID_PATTERN

__all__ = [
    "DEPENDENCY_ERRORS",
    "DEPENDENCY_RETRY_AFTER_SECONDS",
    "PROBLEM_JSON",
    "Health",
    "Problem",
    "TenantIdPath",
    "create_app",
    "install_health",
    "install_problem_handlers",
    "no_lifespan",
    "problem_response",
]

log = logging.getLogger(__name__)

# The ``{tenant_id}`` of a route's path (the pattern is shared.wire's, the one for bodies too).
TenantIdPath = Annotated[str, Path(min_length=1, max_length=TENANT_ID_MAX_LENGTH, pattern=TENANT_ID_PATTERN)]


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
        return response_for(exc, request.url.path)

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
        title = {404: "Not found", 405: "Method not allowed", 401: "Unauthorized", 403: "Forbidden",
                 413: "Request too large"}.get(exc.status_code, "Request failed")
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            # Starlette names the methods of the first route of the path only; a path served by
            # several routes (GET, PUT and DELETE of a contact) allows all of theirs.
            headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request.app, request.scope))}
        return problem_response(exc.status_code, title, str(exc.detail) if exc.detail else None,
                                headers=headers, instance=request.url.path)

    async def _dependency_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("%s %s: a dependency is unavailable: %s: %s", request.method, request.url.path,
                    type(exc).__name__, exc)
        return dependency_unavailable(request.url.path)

    for error in DEPENDENCY_ERRORS:
        app.add_exception_handler(error, _dependency_down)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette re-raises after this answer, so the server logs the traceback once.
        return problem_response(500, "Internal error", "the error was logged", instance=request.url.path)


def allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """Every method some route of ``app`` serves at the path of ``scope`` (HEAD where GET is)."""
    path = scope["path"]
    methods: set[str] = set()
    # Each route as included (with its router's prefix), as the OpenAPI document lists them.
    for route in iter_route_contexts(app.routes):
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path):
            methods |= set(route.methods or ())
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


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


class Readiness(BaseModel):
    """The readiness report, the same whether ready (200) or not (503)."""

    service: str
    status: Literal["ready", "not ready"]
    uptimeSeconds: float
    checks: dict[str, str] = Field(description="Each dependency: `ok`, or `failing: <error>`.")


def install_health(app: FastAPI, health: Health) -> None:
    health.started = time.monotonic()

    @app.get("/health/live", tags=["health"], summary="The process is running")
    async def live() -> dict[str, str]:
        return {"service": health.service, "status": "live"}

    @app.get("/health/ready", tags=["health"], summary="Every dependency answers", response_model=Readiness,
             responses={503: {"model": Readiness, "description": "A dependency is failing (`checks` names it)"}})
    async def ready() -> JSONResponse:
        ok, body = await health.report()
        return JSONResponse(body, status_code=200 if ok else 503)


def create_app(*, title: str, version: str, description: str, health: Health,
               lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]]) -> FastAPI:
    """A service's app: problem handlers, health routes, the request guards, documented errors,
    ``GET /metrics`` with the HTTP metrics (``shared.metrics``), and a span per request when tracing is
    on (``shared.tracing``: the process's tracing must be configured before the app is made).

    The guards read ``app.state.keys`` (the key store, if the service has one) and
    ``app.state.settings.max_body_bytes`` (if the service has that setting) at request time, as
    the lifespan sets them.
    """
    app = FastAPI(title=title, version=version, description=description, lifespan=_frozen_after(lifespan))
    app.add_middleware(RequestGuard)
    # Added after the guard, so outside it: a request the guard refuses (401, 413) is counted too.
    install_metrics(app, health.service)
    # Last, so the outermost of the app's own: every line about the request (the guard's, the metrics'
    # refreshers', the handlers') carries its request id and tenant (shared.logs).
    app.add_middleware(HttpLogContextMiddleware)
    install_problem_handlers(app)
    install_health(app, health)
    tracing.instrument_app(app)  # only with tracing on (shared.tracing); the outermost layer then
    generate_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document_errors(app, generate_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _frozen_after(lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]]
                  ) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """``lifespan``, then what it and the imports made moved out of the garbage collector's sight
    (``gc.freeze``): long-lived (modules, models, pools, the catalogue), they were scanned again at each
    full collection (#15: the score read answered 0.5 of its baseline's rate before, 0.75 after)."""

    @asynccontextmanager
    async def frozen(app: FastAPI) -> AsyncIterator[None]:
        async with lifespan(app):
            gc.collect()
            gc.freeze()
            yield

    return frozen


@asynccontextmanager
async def no_lifespan(_: FastAPI) -> AsyncIterator[None]:
    yield
