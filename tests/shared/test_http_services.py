"""The request guards on the two real APIs: bodies bounded and keys checked before a body is read,
NUL refused in every path and query parameter (PostgreSQL cannot take it).

Bodies are generators that count what the write API pulled from them (in-process, real PostgreSQL
and Kafka), so a test fails if a body is read, or read whole, before the caller is known or the
limit applied. The NUL checks go to the running system's processes, as a client's request would.
"""

from __future__ import annotations

import httpx
import pytest

from services.ingest.app import create_app as create_ingest
from tests.conftest import AUTH

LIMIT = 4000
CHUNK = 500
JSON = {"Content-Type": "application/json"}
# Every kind of body the write API takes: signals, the contact, channels, the escalation chain, alerts.
BODY_ROUTES = [
    ("POST", "/signals/customer-mfa"),
    ("PUT", "/security-contact"),
    ("PUT", "/channels/tickets"),
    ("PUT", "/connections/graph"),
    ("PUT", "/escalation-chain"),
    ("POST", "/alerts"),
]


class StreamedBody:
    """``chunks`` chunks of whitespace (valid JSON around nothing); ``pulled``: bytes the app took."""

    def __init__(self, chunks: int = 100) -> None:
        self.chunks, self.pulled = chunks, 0

    async def __aiter__(self):
        for _ in range(self.chunks):
            self.pulled += CHUNK
            yield b" " * CHUNK


@pytest.fixture
async def write_api(test_env, monkeypatch):
    monkeypatch.setenv("MAX_BODY_BYTES", str(LIMIT))
    app = create_ingest()
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://ingest"
    ) as client:
        yield client


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
async def test_a_caller_without_a_key_is_401_before_its_body_is_read(write_api, tenant_id, method, path):
    body = StreamedBody()
    response = await write_api.request(method, f"/v1/tenants/{tenant_id}{path}", content=body, headers=JSON)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert body.pulled == 0, f"{body.pulled} bytes read before the caller was known"


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
async def test_a_chunked_body_over_the_limit_is_413_and_read_no_further(write_api, tenant_id, method, path):
    body = StreamedBody()
    response = await write_api.request(
        method, f"/v1/tenants/{tenant_id}{path}", content=body, headers={**AUTH, **JSON}
    )
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == f"the body may be at most {LIMIT} bytes"
    assert body.pulled <= LIMIT + CHUNK, f"read {body.pulled} bytes with a limit of {LIMIT}"


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
async def test_a_declared_body_over_the_limit_is_413_before_it_is_read(write_api, tenant_id, method, path):
    body = StreamedBody(chunks=10)
    response = await write_api.request(
        method, f"/v1/tenants/{tenant_id}{path}", content=body,
        headers={**AUTH, **JSON, "Content-Length": str(10 * CHUNK)},
    )
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert body.pulled == 0


@pytest.fixture(scope="module")
def apis(system):
    return {"write": system["ingest"].url, "read": system["scoring"].url}


@pytest.mark.parametrize(
    ("api", "method", "path", "field"),
    [
        ("read", "GET", "/alerts/a%00b", "path.alert_id"),
        ("read", "GET", "/deliveries?alertId=a%00b", "query.alertId"),
        ("read", "GET", "/customers/mfa?search=a%00b", "query.search"),
        ("read", "GET", "/alerts?skiptoken=a%00b", "query.skiptoken"),
        ("write", "POST", "/requirements/a%00b/status", "path.requirement_type"),
        ("write", "PATCH", "/alerts/a%00b", "path.alert_id"),
    ],
)
async def test_nul_in_a_path_or_query_parameter_is_422_naming_it(apis, tenant_id, api, method, path, field):
    async with httpx.AsyncClient(timeout=15) as http:
        body = {"json": {"status": "active"}} if method != "GET" else {}
        response = await http.request(method, f"{apis[api]}/v1/tenants/{tenant_id}{path}", headers=AUTH, **body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"] == [{"field": field, "message": "must not contain NUL (U+0000)"}]
