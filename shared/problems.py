"""Problem documents (RFC 9457 ``application/problem+json``): the one shape of every error answer.

Apart from ``shared.http`` (which re-exports these) so the request guards, which answer before any
exception handler runs, build the very same documents.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from fastapi.responses import JSONResponse
from redis import exceptions as redis_errors

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
    """Raise to answer with a problem document; ``extra`` members are added to it (``alertId=...``)."""

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


def response_for(problem: Problem, instance: str) -> JSONResponse:
    return problem_response(problem.status, problem.title, problem.detail, headers=problem.headers,
                            instance=instance, **problem.extra)


def dependency_unavailable(instance: str) -> JSONResponse:
    """503 with Retry-After: a database or cache that does not answer is the server's passing trouble,
    never a 500 that looks like a bug in the request."""
    return problem_response(503, "Service unavailable", "a backing service does not answer; retry later",
                            headers={"Retry-After": str(DEPENDENCY_RETRY_AFTER_SECONDS)}, instance=instance)
