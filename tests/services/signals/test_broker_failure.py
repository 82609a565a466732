"""A broker that does not acknowledge: 503 with Retry-After, and nothing stored, so a retry loses nothing.

The write API runs in-process (real PostgreSQL and Kafka) with its broker and its transactional
publisher (signals and contact changes) swapped for ones whose publications fail, then swapped back.
"""

from __future__ import annotations

import json

import httpx

from services.ingest.app import create_app
from services.ingest.publisher import PublishFailed
from tests.conftest import AUTH
from tests.support.kafka import read_topic


class UnreachableBroker:
    async def publish(self, *args, **kwargs):
        raise ConnectionError("no broker answers")


class UnreachablePublisher:
    async def publish_together(self, *args, **kwargs):
        raise PublishFailed("no broker answers")


async def test_nothing_is_stored_or_notified_until_the_broker_acknowledges(
    test_env, db_pool, tenant_id, kafka_bootstrap, topic_prefix
):
    report = {
        "month": "2026-11",
        "customers": [{"customerTenantId": "cust-a", "monthlyBudget": 100, "currentMonthSpend": 90}],
    }
    contact = {"name": "SOC", "email": "soc@example.com", "phone": "+14155552671"}
    spending_url = f"/v1/tenants/{tenant_id}/signals/spending"
    contact_url = f"/v1/tenants/{tenant_id}/security-contact"
    app = create_app()
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingest") as client,
    ):
        broker, publisher = app.state.broker, app.state.event_publisher
        app.state.broker, app.state.event_publisher = UnreachableBroker(), UnreachablePublisher()
        for method, url, body in (
            ("POST", spending_url, report),
            ("PUT", contact_url, contact),
            ("POST", f"/v1/tenants/{tenant_id}/signals/admin-mfa", {"totalAdmins": 1, "adminsWithMfa": 1}),
        ):
            failed = await client.request(method, url, json=body, headers=AUTH)
            assert failed.status_code == 503, failed.text
            assert failed.headers["retry-after"] == "5"
            assert failed.headers["content-type"] == "application/problem+json"
        assert (await client.get(contact_url, headers=AUTH)).status_code == 404
        for table in ("spending_notifications", "customer_spending", "signal_reports", "security_contacts"):
            assert (
                await db_pool.fetchval(f"SELECT count(*) FROM {table} WHERE tenant_id = $1", tenant_id) == 0
            )

        app.state.broker, app.state.event_publisher = broker, publisher
        retried = await client.post(spending_url, json=report, headers=AUTH)
        assert retried.status_code == 202, retried.text
        assert retried.json()["notifications"] == [{"customerTenantId": "cust-a", "month": "2026-11"}]
        assert (await client.put(contact_url, json=contact, headers=AUTH)).status_code == 200

    notified = await read_topic(
        kafka_bootstrap,
        f"{topic_prefix}notifications",
        count=1,
        timeout=20,
        predicate=lambda r: r["key"] == f"{tenant_id}:cust-a",
    )
    assert [r["value"]["month"] for r in notified] == ["2026-11"]
    assert (
        await db_pool.fetchval("SELECT count(*) FROM spending_notifications WHERE tenant_id = $1", tenant_id)
        == 1
    )


async def test_a_body_larger_than_allowed_is_413_before_it_is_parsed(test_env, tenant_id, monkeypatch):
    """A valid report over the limit: read whole and parsed, it would be accepted (202). Streamed, the
    generator records how much of it the API took, declared length or not."""
    monkeypatch.setenv("MAX_BODY_BYTES", "2000")
    app = create_app()
    customers = [
        {"customerTenantId": f"c{i}", "customerName": f"Customer {i}", "admins": 1, "adminsWithMfa": 1,
         "nonAdminsWithMfa": 0, "totalUsers": 1}
        for i in range(100)
    ]
    document = json.dumps({"customers": customers}).encode()
    chunk = 500
    pulled = {"chunked": 0, "declared": 0}

    async def streamed(kind: str):
        for start in range(0, len(document), chunk):
            pulled[kind] += len(document[start:start + chunk])
            yield document[start:start + chunk]

    url = f"/v1/tenants/{tenant_id}/signals/customer-mfa"
    json_auth = {**AUTH, "Content-Type": "application/json"}
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://ingest") as client:
        chunked = await client.post(url, headers=json_auth, content=streamed("chunked"))
        declared = await client.post(url, headers={**json_auth, "Content-Length": str(len(document))},
                                     content=streamed("declared"))
    for response in (chunked, declared):
        assert response.status_code == 413, response.text
        assert response.headers["content-type"] == "application/problem+json"
    assert len(document) > 4 * 2000
    assert pulled["chunked"] <= 2000 + chunk, f"read {pulled['chunked']} of {len(document)} bytes"
    assert pulled["declared"] == 0, "a declared length over the limit is refused before reading"
