"""``shared.hot_routes.serve_ahead``: the busiest route answered ahead of FastAPI's routing, the same
answers as FastAPI's own route gives (in-process, no network)."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request, Response

from shared.auth import Principal, Role
from shared.hot_routes import serve_ahead
from shared.http import Health, Problem, TenantIdPath, create_app
from shared.http_guards import authenticates

KEY = {"Authorization": "Bearer good"}


class OneKey:
    async def authenticate(self, authorization: str | None) -> Principal:
        if authorization != KEY["Authorization"]:
            raise Problem(401, "Unauthorized", "unknown or revoked key", headers={"WWW-Authenticate": "Bearer"})
        return Principal(user_id="someone", role=Role.admin_agent, tenant_id=None)


def make_app(*, ahead: bool) -> tuple[FastAPI, list[dict]]:
    @asynccontextmanager
    async def lifespan(_):
        yield

    app = create_app(title="t", version="1", description="d", health=Health("svc", {}), lifespan=lifespan)
    app.state.keys = OneKey()
    calls: list[dict] = []

    async def refuse_gone(request: Request) -> None:
        # As the write API's offboarding check: a guard of the request alone, run before the path is judged.
        calls.append({"guard": request.path_params["tenant_id"]})
        if request.path_params["tenant_id"] in ("gone", "gone!"):
            raise Problem(410, "Tenant offboarded", "it takes no more writes")

    router = APIRouter(prefix="/v1/tenants/{tenant_id}", dependencies=[Depends(refuse_gone)])

    @router.get("/score", summary="The score")
    @authenticates
    async def get_score(request: Request, tenant_id: TenantIdPath) -> Response:
        calls.append({"tenant": tenant_id, "route": request.scope.get("route")})
        if tenant_id == "unknown":
            raise Problem(404, "Not found", f"no tenant {tenant_id}")
        return Response(f'{{"tenant":"{tenant_id}"}}', media_type="application/json")

    @router.get("/other")
    async def get_other(tenant_id: TenantIdPath) -> dict:
        return {"other": tenant_id}

    app.include_router(router)
    if ahead:
        serve_ahead(app, get_score)
    return app, calls


def client_of(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service")


REQUESTS = [
    ("GET", "/v1/tenants/t1/score", KEY),
    ("GET", "/v1/tenants/unknown/score", KEY),  # a Problem raised by the endpoint
    ("GET", "/v1/tenants/gone/score", KEY),  # a Problem raised by the router's guard
    ("GET", "/v1/tenants/gone%21/score", KEY),  # the guard's Problem and an invalid tenant id: which comes first
    ("GET", "/v1/tenants/a%20b/score", KEY),  # a tenant id against its pattern
    ("GET", f"/v1/tenants/{'x' * 129}/score", KEY),  # too long
    ("GET", "/v1/tenants/t1/score", {}),  # no key: the guard's 401
    ("HEAD", "/v1/tenants/t1/score", KEY),  # not served by the FastAPI route either
    ("POST", "/v1/tenants/t1/score", KEY),  # 405, naming the methods allowed
    ("GET", "/v1/tenants/t1/other", KEY),  # the other routes as before
]


@pytest.mark.parametrize(("method", "path", "headers"), REQUESTS)
async def test_the_route_ahead_answers_as_the_fastapi_route_does(method: str, path: str, headers: dict) -> None:
    answers = []
    for ahead in (False, True):
        app, _ = make_app(ahead=ahead)
        async with client_of(app) as client:
            response = await client.request(method, path, headers=headers)
        answers.append((response.status_code, response.headers.get("content-type"), response.headers.get("allow"),
                        response.content))
    assert answers[0] == answers[1]


async def test_the_route_ahead_takes_the_request_and_labels_its_metrics_with_the_template() -> None:
    app, calls = make_app(ahead=True)
    async with client_of(app) as client:
        response = await client.get("/v1/tenants/t1/score", headers=KEY)
        metrics = (await client.get("/metrics")).text
    assert response.status_code == 200 and response.json() == {"tenant": "t1"}
    assert calls == [{"guard": "t1"}, {"tenant": "t1", "route": app.router.routes[0]}]  # the guard, then the endpoint
    assert calls[1]["route"] is app.router.routes[0]  # the plain route in front, not FastAPI's
    assert 'route="/v1/tenants/{tenant_id}/score",service="svc",status="200"' in metrics


async def test_the_openapi_document_is_the_fastapi_routes() -> None:
    documents = []
    for ahead in (False, True):
        app, _ = make_app(ahead=ahead)
        async with client_of(app) as client:
            documents.append((await client.get("/openapi.json")).json())
    assert documents[0] == documents[1]


def test_an_endpoint_with_more_than_path_parameters_is_refused() -> None:
    app, _ = make_app(ahead=False)

    async def with_query(tenant_id: TenantIdPath, page: int = 1) -> Response:
        return Response()

    async def with_dependency(tenant_id: TenantIdPath, x: Annotated[int, Depends(lambda: 1)]) -> Response:
        return Response()

    async def nowhere(tenant_id: str) -> Response:
        return Response()

    async def guarded(tenant_id: TenantIdPath) -> Response:
        return Response()

    app.get("/v1/tenants/{tenant_id}/q")(with_query)
    app.get("/v1/tenants/{tenant_id}/d")(with_dependency)
    async def wants_more(request: Request, x: int = 1) -> None:
        pass

    async def watched(tenant_id: TenantIdPath) -> Response:
        return Response()

    router = APIRouter(dependencies=[Depends(lambda: 1)])
    router.get("/v1/tenants/{tenant_id}/g")(guarded)
    app.include_router(router)
    other = APIRouter(dependencies=[Depends(wants_more)])
    other.get("/v1/tenants/{tenant_id}/w")(watched)
    app.include_router(other)
    with pytest.raises(ValueError, match="not a coroutine function of the request"):
        serve_ahead(app, guarded)
    with pytest.raises(ValueError, match="wants_more, which takes more than the request"):
        serve_ahead(app, watched)
    with pytest.raises(ValueError, match="'page', not a path parameter"):
        serve_ahead(app, with_query)
    with pytest.raises(ValueError, match="'x', not a path parameter"):
        serve_ahead(app, with_dependency)
    with pytest.raises(ValueError, match="serves 0 routes"):
        serve_ahead(app, nowhere)
