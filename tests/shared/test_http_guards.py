"""The guards every service's app gets from ``shared.http.create_app``, in-process with no network.

A request body is bounded before anything parses it, and a caller without a valid key is refused
before a byte of its body is read; path and query parameters never carry NUL to the database.
The bodies here are generators that count what the app pulled from them, so each test sees *when*
(and whether) the body was read, not only the final status.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, FastAPI, Header, Request
from pydantic import BaseModel

from shared.auth import Principal, Role
from shared.http import PROBLEM_JSON, Health, Problem, create_app
from shared.http_guards import DEFAULT_MAX_BODY_BYTES, accepts_signature, authenticated_caller
from shared.webhooks import sign_headers

KEY = {"Authorization": "Bearer good"}
SECRET = "whsec_" + "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="


class CountingKeys:
    """A key store that knows one key and counts how often it was asked."""

    def __init__(self) -> None:
        self.calls = 0

    async def authenticate(self, authorization: str | None) -> Principal:
        self.calls += 1
        if authorization != KEY["Authorization"]:
            raise Problem(401, "Unauthorized", "unknown or revoked key", headers={"WWW-Authenticate": "Bearer"})
        return Principal(user_id="someone", role=Role.admin_agent, tenant_id="t1")


class StreamedBody:
    """A request body of ``chunks`` chunks of ``size`` bytes; ``pulled`` is how many bytes the app took."""

    def __init__(self, size: int, chunks: int, fill: bytes = b" ") -> None:
        self.size, self.chunks, self.fill, self.pulled = size, chunks, fill, 0

    @property
    def total(self) -> int:
        return self.size * self.chunks

    async def __aiter__(self):
        for _ in range(self.chunks):
            self.pulled += self.size
            yield self.fill * self.size


class Thing(BaseModel):
    name: str


async def _caller(request: Request, authorization: Annotated[str | None, Header()] = None) -> Principal:
    return await authenticated_caller(request, authorization)


def make_app(*, max_body_bytes: int | None = None) -> tuple[FastAPI, CountingKeys, dict[str, Any]]:
    @asynccontextmanager
    async def lifespan(_):
        yield

    app = create_app(title="t", version="1", description="d", health=Health("svc", {}), lifespan=lifespan)
    keys = CountingKeys()
    app.state.keys = keys
    if max_body_bytes is not None:
        app.state.settings = type("Settings", (), {"max_body_bytes": max_body_bytes})()
    seen: dict[str, Any] = {}

    router = APIRouter()  # included, as every service's routes are

    @router.post("/things")
    async def post_thing(thing: Thing, caller: Annotated[Principal, Depends(_caller)]) -> dict:
        seen["caller"] = caller
        return {"name": thing.name}

    app.include_router(router)

    @app.post("/hooks")
    @accepts_signature
    async def post_hook(request: Request) -> dict:
        # As the alert routes do for a signed post: read the raw body and check it themselves.
        seen["hook_body"] = await request.body()
        return {"read": len(seen["hook_body"])}

    @app.get("/things/{thing_id}")
    async def get_thing(thing_id: str, q: str | None = None) -> dict:
        return {"thingId": thing_id, "q": q}

    return app, keys, seen


def client_of(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service")


async def test_nul_in_a_path_parameter_is_422_naming_it():
    app, _, _ = make_app()
    async with client_of(app) as client:
        response = await client.get("/things/a%00b")
        fine = await client.get("/things/a%0Ab")  # other control characters are for each parameter to judge
    assert response.status_code == 422 and response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["errors"] == [{"field": "path.thing_id", "message": "must not contain NUL (U+0000)"}]
    assert fine.status_code == 200 and fine.json()["thingId"] == "a\nb"


async def test_nul_in_a_query_parameter_is_422_naming_it():
    app, _, _ = make_app()
    async with client_of(app) as client:
        response = await client.get("/things/a", params={"q": "x\x00y"})
    assert response.status_code == 422 and response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["errors"][0]["field"] == "query.q"
    assert "NUL" in response.json()["detail"]


async def test_a_caller_without_a_valid_key_is_refused_before_its_body_is_read():
    app, keys, seen = make_app()
    body = StreamedBody(size=64 * 1024, chunks=50)  # 3.2 MB, under the default limit
    async with client_of(app) as client:
        no_key = await client.post("/things", content=body, headers={"Content-Type": "application/json"})
        bad_key = await client.post("/things", content=StreamedBody(64 * 1024, 50),
                                    headers={"Content-Type": "application/json", "Authorization": "Bearer bad"})
    assert no_key.status_code == 401 and no_key.headers["content-type"] == PROBLEM_JSON
    assert no_key.headers["www-authenticate"] == "Bearer"
    assert bad_key.status_code == 401
    assert body.pulled == 0, f"{body.pulled} bytes read from an unauthenticated caller"
    assert "caller" not in seen and keys.calls == 2


async def test_the_key_is_authenticated_once_per_request_and_the_route_sees_the_caller():
    app, keys, seen = make_app()
    async with client_of(app) as client:
        posted = await client.post("/things", json={"name": "a"}, headers=KEY)
    assert posted.status_code == 200, posted.text
    assert seen["caller"].user_id == "someone"
    assert keys.calls == 1  # the guard's, before the body; the dependency reused it (a rate limit counts once)


async def test_a_declared_body_over_the_limit_is_413_before_a_byte_is_read():
    app, keys, _ = make_app(max_body_bytes=1000)
    body = StreamedBody(size=500, chunks=3)
    async with client_of(app) as client:
        response = await client.post(
            "/things", content=body, headers={**KEY, "Content-Type": "application/json", "Content-Length": "1500"}
        )
    assert response.status_code == 413 and response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["detail"] == "the body may be at most 1000 bytes"
    assert body.pulled == 0 and keys.calls == 0


async def test_a_chunked_body_is_cut_at_the_limit_while_it_is_read():
    app, keys, seen = make_app(max_body_bytes=1000)
    body = StreamedBody(size=300, chunks=100)  # 30 000 bytes, no declared length
    async with client_of(app) as client:
        response = await client.post("/things", content=body, headers={**KEY, "Content-Type": "application/json"})
    assert response.status_code == 413 and response.headers["content-type"] == PROBLEM_JSON
    assert body.pulled <= 1000 + 300, f"read {body.pulled} of {body.total} bytes"
    assert "caller" not in seen and keys.calls == 1


async def test_a_chunked_body_within_the_limit_reaches_the_route_whole():
    app, _, seen = make_app(max_body_bytes=1000)

    async def pieces():
        for piece in (b'{"na', b'me": ', b'"ok"}'):
            yield piece

    async with client_of(app) as client:
        response = await client.post("/things", content=pieces(), headers={**KEY, "Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json() == {"name": "ok"}


async def test_the_default_limit_applies_to_a_service_without_the_setting():
    app, _, _ = make_app()
    too_big = str(DEFAULT_MAX_BODY_BYTES + 1)
    async with client_of(app) as client:
        response = await client.post(
            "/things", content=StreamedBody(1, 1), headers={**KEY, "Content-Length": too_big}
        )
    assert response.status_code == 413


async def test_a_signed_post_is_left_to_the_route_to_verify_over_the_bounded_body():
    app, keys, seen = make_app(max_body_bytes=1000)
    body = b'{"id": "a1"}'
    async with client_of(app) as client:
        signed = await client.post("/hooks", content=body, headers=sign_headers(SECRET, body))
        assert signed.status_code == 200 and seen.pop("hook_body") == body
        too_big = StreamedBody(size=300, chunks=100)
        refused = await client.post("/hooks", content=too_big, headers=sign_headers(SECRET, b"x"))
    assert refused.status_code == 413 and too_big.pulled <= 1000 + 300
    assert "hook_body" not in seen
    assert keys.calls == 0  # no key asked for: the route checks the signature over the body


async def test_a_request_without_a_body_goes_straight_to_the_route():
    app, keys, _ = make_app()
    async with client_of(app) as client:
        response = await client.get("/things/x")
    assert response.status_code == 200 and keys.calls == 0


async def test_a_rate_limited_or_unreachable_key_store_answers_before_the_body_is_read():
    app, _, _ = make_app()

    class LimitedKeys:
        async def authenticate(self, authorization):
            raise Problem(429, "Too many requests", "slow down", headers={"Retry-After": "3"})

    class UnreachableKeys:
        async def authenticate(self, authorization):
            raise ConnectionRefusedError("no database")

    bodies = []
    responses = []
    async with client_of(app) as client:
        for keys in (LimitedKeys(), UnreachableKeys()):
            app.state.keys = keys
            bodies.append(StreamedBody(size=1000, chunks=10))
            headers = {**KEY, "Content-Type": "application/json"}
            responses.append(await client.post("/things", content=bodies[-1], headers=headers))
    limited, unreachable = responses
    assert limited.status_code == 429 and limited.headers["retry-after"] == "3"
    assert limited.headers["content-type"] == PROBLEM_JSON
    assert unreachable.status_code == 503 and unreachable.headers["retry-after"] == "5"
    assert unreachable.headers["content-type"] == PROBLEM_JSON
    assert [body.pulled for body in bodies] == [0, 0]


def make_scoped_app() -> tuple[FastAPI, CountingKeys, StreamedBody]:
    """Routes under /v1 as the services have them: a tenant's, and a deployment-wide one."""
    app, keys, _ = make_app()
    router = APIRouter(prefix="/v1")

    @router.put("/tenants/{tenant_id}/things/{name}")
    async def put_thing(tenant_id: str, name: str, thing: Thing,
                        caller: Annotated[Principal, Depends(_caller)]) -> dict:
        return {"tenantId": tenant_id, "name": thing.name}

    @router.get("/tenants/{tenant_id}/things/{name}")
    async def get_thing(tenant_id: str, name: str, caller: Annotated[Principal, Depends(_caller)]) -> dict:
        return {"tenantId": tenant_id, "name": name}

    @router.post("/keys")
    async def post_key(thing: Thing, caller: Annotated[Principal, Depends(_caller)]) -> dict:
        return {}

    app.include_router(router)
    return app, keys, StreamedBody(size=1000, chunks=5, fill=b"{")


async def test_a_key_of_another_tenant_is_403_before_its_body_is_read_or_judged():
    # A key of tenant t1 on tenant t2: refused for its scope, not for its malformed body (400) or
    # an unknown resource (404), and nothing of the body is read.
    app, keys, body = make_scoped_app()
    async with client_of(app) as client:
        json_headers = {**KEY, "Content-Type": "application/json"}
        foreign = await client.put("/v1/tenants/t2/things/x", content=body, headers=json_headers)
        foreign_read = await client.get("/v1/tenants/t2/things/x", headers=KEY)
        deployment_wide = await client.post("/v1/keys", content=b"{", headers=json_headers)
        own = await client.put("/v1/tenants/t1/things/x", json={"name": "n"}, headers=KEY)
        own_read = await client.get("/v1/tenants/t1/things/x", headers=KEY)
    assert foreign.status_code == 403 and foreign.headers["content-type"] == PROBLEM_JSON, foreign.text
    assert "tenant t1 may not act for tenant t2" in foreign.json()["detail"]
    assert body.pulled == 0
    assert foreign_read.status_code == 403
    assert deployment_wide.status_code == 403 and "operator" in deployment_wide.json()["detail"]
    assert own.status_code == 200 and own_read.status_code == 200
    assert keys.calls == 5  # once per request


async def test_405_allows_the_methods_of_every_route_of_the_path():
    app, _, _ = make_scoped_app()
    async with client_of(app) as client:
        response = await client.delete("/v1/tenants/t1/things/x", headers=KEY)
    assert response.status_code == 405 and response.headers["content-type"] == PROBLEM_JSON
    assert response.headers["allow"] == "GET, HEAD, PUT"


async def test_a_webhook_header_on_a_route_that_takes_no_signature_still_needs_a_key():
    # Only a route marked accepts_signature verifies a signature: elsewhere a webhook header must not
    # make the guard read a body for an unknown caller, nor let a foreign key's body be judged first.
    app, keys, _ = make_scoped_app()
    body = StreamedBody(size=1000, chunks=5, fill=b"{")
    headers = {"webhook-id": "msg_1", "Content-Type": "application/json"}
    async with client_of(app) as client:
        anonymous = await client.put("/v1/tenants/t1/things/x", content=body, headers=headers)
        foreign = await client.put("/v1/tenants/t2/things/x", content=b"{", headers={**headers, **KEY})
    assert anonymous.status_code == 401 and body.pulled == 0
    assert foreign.status_code == 403


async def test_a_chunked_body_counts_as_a_body_whatever_its_content_length_says():
    app, keys, _ = make_app(max_body_bytes=100)
    body = StreamedBody(size=60, chunks=3)
    async with client_of(app) as client:
        response = await client.post(
            "/things", content=body, headers={"Content-Type": "application/json", "Content-Length": "0",
                                              "Transfer-Encoding": "chunked"}
        )
    assert response.status_code == 401 and body.pulled == 0
