"""Problem documents and health endpoints of every service, with no network."""

from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from pydantic import BaseModel

from shared.http import PROBLEM_JSON, Health, Problem, create_app


class Body(BaseModel):
    count: int


def make_app(checks) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_):
        yield

    app = create_app(title="t", version="1", description="d", health=Health("svc", checks), lifespan=lifespan)

    @app.get("/database")
    async def database() -> dict:
        raise ConnectionRefusedError("connection refused")

    @app.post("/things")
    async def things(body: Body) -> dict:
        if body.count < 0:
            raise Problem(409, "Conflict", "count may not be negative", headers={"Retry-After": "1"})
        return {"ok": True}

    return app


def client_of(app: FastAPI) -> httpx.AsyncClient:
    """In-process requests to ``app`` (no lifespan needed: the checks are given to ``Health``)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service")


async def ok() -> None:
    return None


async def broken() -> None:
    raise ConnectionError("refused")


async def test_errors_are_problem_documents_with_the_right_status():
    async with client_of(make_app({"db": ok})) as client:
        malformed = await client.post("/things", content=b"{nope", headers={"content-type": "application/json"})
        invalid = await client.post("/things", json={"count": "many"})
        raised = await client.post("/things", json={"count": -1})
        missing = await client.get("/nowhere")
    assert malformed.status_code == 400 and malformed.headers["content-type"] == PROBLEM_JSON
    assert invalid.status_code == 422 and invalid.headers["content-type"] == PROBLEM_JSON
    assert invalid.json()["errors"][0]["field"] == "count"
    assert raised.status_code == 409 and raised.headers["retry-after"] == "1"
    assert raised.json()["detail"] == "count may not be negative"
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM_JSON


async def test_ready_reports_each_dependency_and_fails_when_one_fails():
    async with client_of(make_app({"db": ok, "kafka": ok})) as client:
        assert (await client.get("/health/live")).status_code == 200
        ready = await client.get("/health/ready")
        assert ready.status_code == 200 and ready.json()["checks"] == {"db": "ok", "kafka": "ok"}
    async with client_of(make_app({"db": ok, "kafka": broken})) as client:
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["kafka"].startswith("failing: ConnectionError")


async def test_an_unreachable_dependency_is_503_with_retry_after_not_500():
    async with client_of(make_app({"db": ok})) as client:
        response = await client.get("/database")
    assert response.status_code == 503 and response.headers["content-type"] == PROBLEM_JSON
    assert response.headers["retry-after"] == "5"
