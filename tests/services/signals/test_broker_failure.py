"""The broker away: signals and contact changes are still accepted once stored with their events in
the outbox, and the events go out once it is back, none lost and none twice (a spending notification
claimed once is published once, however often the report comes).

The write API runs in-process on a private Kafka it may lose (the shared broker is never stopped) and
a database of its own (so no other ingest relays its outbox).
"""

from __future__ import annotations

import json

import httpx
import pytest

from services.ingest.app import create_app
from shared.db import create_pool
from shared.kafka import ensure_topics
from tests.conftest import AUTH
from tests.services.ingest.support import PrivateKafka, running_ingest
from tests.support.kafka import read_topic


@pytest.fixture
def private_kafka(tmp_path):
    kafka = PrivateKafka(tmp_path).format().start()
    yield kafka
    kafka.kill()


async def test_writes_wait_in_the_outbox_while_the_broker_is_away_and_none_is_lost(
    test_env, tenant_id, private_kafka, own_database, topic_prefix, monkeypatch
):
    await ensure_topics(private_kafka.bootstrap, topic_prefix)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", private_kafka.bootstrap)
    monkeypatch.setenv("DATABASE_URL", own_database)
    report = {
        "month": "2026-11",
        "customers": [{"customerTenantId": "cust-a", "monthlyBudget": 100, "currentMonthSpend": 90}],
    }
    contact = {"name": "SOC", "email": "soc@example.com", "phone": "+14155552671"}
    spending_url = f"/v1/tenants/{tenant_id}/signals/spending"
    contact_url = f"/v1/tenants/{tenant_id}/security-contact"
    pool = await create_pool(own_database, schema="ingest")
    try:
        async with running_ingest() as client:
            private_kafka.kill()
            for method, url, body, status in (
                ("POST", spending_url, report, 202),
                ("PUT", contact_url, contact, 200),
                ("POST", f"/v1/tenants/{tenant_id}/signals/admin-mfa", {"totalAdmins": 1, "adminsWithMfa": 1}, 202),
            ):
                answer = await client.request(method, url, json=body, headers=AUTH)
                assert answer.status_code == status, answer.text
            again = await client.post(spending_url, json=report, headers=AUTH)
            assert again.status_code == 202 and again.json()["notifications"] == [], again.text
            assert (await client.get(contact_url, headers=AUTH)).status_code == 200  # stored at once
            waiting = await pool.fetchval("SELECT count(*) FROM outbox")
            # spending: status + notification; contact: status + contact; admin MFA: status; again: status.
            assert waiting == 6

            private_kafka.start()
            notified = await read_topic(private_kafka.bootstrap, f"{topic_prefix}notifications", count=1,
                                        timeout=90, predicate=lambda r: r["key"] == f"{tenant_id}:cust-a")
            statuses = await read_topic(private_kafka.bootstrap, f"{topic_prefix}requirement-status", count=4,
                                        timeout=60, predicate=lambda r: r["value"]["tenantId"] == tenant_id)
            contacts = await read_topic(private_kafka.bootstrap, f"{topic_prefix}security-contacts", count=1,
                                        timeout=60, predicate=lambda r: r["key"] == tenant_id)
        assert [r["value"]["month"] for r in notified] == ["2026-11"]
        assert sorted(r["value"]["requirementType"] for r in statuses) == [
            "mfaEnforcedForAdmins", "securityContactProvided", "spendingBudgetSetForCustomerAzureSubscriptions",
            "spendingBudgetSetForCustomerAzureSubscriptions"]
        assert [r["value"]["contact"]["email"] for r in contacts] == ["soc@example.com"]
        assert await pool.fetchval("SELECT count(*) FROM outbox") == 0
    finally:
        await pool.close()
    # Read once more to the end: nothing came twice.
    assert len(await read_topic(private_kafka.bootstrap, f"{topic_prefix}notifications",
                                predicate=lambda r: r["key"] == f"{tenant_id}:cust-a")) == 1
    assert len(await read_topic(private_kafka.bootstrap, f"{topic_prefix}requirement-status",
                                predicate=lambda r: r["value"]["tenantId"] == tenant_id)) == 4


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
