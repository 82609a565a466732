"""Customer MFA as events: each customer of a stored customer-MFA report is a ``customer-mfa-observed``
event on the compacted ``customer-mfa`` topic (key tenant:customer), and each customer the report
leaves out (it replaces the last one) a ``customer-mfa-removed`` event, all written in the report's
own transaction; customers stored before there were such events are told once at start-up. Real
PostgreSQL and Kafka, the write API in-process, or the running system when the read API is read.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from shared.events import Topic
from tests.conftest import AUTH
from tests.services.ingest.support import running_ingest, topic_records
from tests.support.polling import eventually


def customer(cid: str, name: str, admins: int, with_mfa: int) -> dict:
    return {"customerTenantId": cid, "customerName": name, "admins": admins, "adminsWithMfa": with_mfa,
            "nonAdminsWithMfa": 3, "totalUsers": 10}


def removal(record: dict) -> tuple:
    value = record["value"]
    return record["key"], value["eventType"], value["customerTenantId"], value["observedDateTime"]


def figures(record: dict) -> tuple:
    value = record["value"]
    return (record["key"], value["eventType"], value["customerTenantId"], value["customerName"], value["admins"],
            value["adminsWithMfa"], value["nonAdminsWithMfa"], value["totalUsers"], value["observedDateTime"])


async def test_each_customer_of_a_stored_report_is_an_event(test_env, tenant_id):
    url = f"/v1/tenants/{tenant_id}/signals/customer-mfa"
    first, later, older = "2026-11-30T08:00:00Z", "2026-11-30T09:00:00Z", "2026-11-30T07:00:00Z"
    async with running_ingest() as client:
        posted = await client.post(url, headers=AUTH, json={
            "customers": [customer("c-contoso", "Contoso", 2, 2), customer("c-fabrikam", "Fabrikam", 3, 1)],
            "observedDateTime": first})
        assert posted.status_code == 202 and posted.json()["applied"] is True, posted.text
        replaced = await client.post(url, headers=AUTH, json={
            "customers": [customer("c-fabrikam", "Fabrikam", 3, 3)], "observedDateTime": later})
        assert replaced.json()["applied"] is True
        stale = await client.post(url, headers=AUTH, json={
            "customers": [customer("c-contoso", "Contoso", 2, 0)], "observedDateTime": older})
        assert stale.status_code == 202 and stale.json()["applied"] is False  # stored nothing: no event
        records = await topic_records(test_env, Topic.customer_mfa, f"{tenant_id}:", count=4)

    records = await topic_records(test_env, Topic.customer_mfa, f"{tenant_id}:")  # and nothing more came
    observed = [r for r in records if r["value"]["eventType"] == "customer-mfa-observed"]
    by_customer = {key: [figures(r) for r in observed if r["key"] == key]
                   for key in (f"{tenant_id}:c-contoso", f"{tenant_id}:c-fabrikam")}
    assert by_customer == {
        f"{tenant_id}:c-contoso": [
            (f"{tenant_id}:c-contoso", "customer-mfa-observed", "c-contoso", "Contoso", 2, 2, 3, 10, first)],
        f"{tenant_id}:c-fabrikam": [
            (f"{tenant_id}:c-fabrikam", "customer-mfa-observed", "c-fabrikam", "Fabrikam", 3, 1, 3, 10, first),
            (f"{tenant_id}:c-fabrikam", "customer-mfa-observed", "c-fabrikam", "Fabrikam", 3, 3, 3, 10, later)],
    }
    # The later report left Contoso out: it is gone, as of that report.
    assert [removal(r) for r in records if r["value"]["eventType"] == "customer-mfa-removed"] == [
        (f"{tenant_id}:c-contoso", "customer-mfa-removed", "c-contoso", later)]
    assert all(r["headers"]["eventType"] == r["value"]["eventType"] for r in records)
    assert all(r["value"]["tenantId"] == tenant_id for r in records)
    assert len(observed) == 3 and len(records) == 4


async def test_an_empty_report_removes_every_customer_from_the_read_api(system, tenant_id, test_env):
    """``customers: []`` is a report too: the tenant has no customers any more, and the read API
    (which learns them only from the topic) lists none."""
    first = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0)
    emptied = first + timedelta(hours=1)
    write = f"{system['ingest'].url}/v1/tenants/{tenant_id}/signals/customer-mfa"
    read = f"{system['scoring'].url}/v1/tenants/{tenant_id}/customers/mfa"
    async with httpx.AsyncClient(timeout=15, headers=AUTH) as http:

        async def listed() -> dict:
            return (await http.get(read)).json()

        posted = await http.post(write, json={
            "customers": [customer("c-contoso", "Contoso", 2, 2), customer("c-fabrikam", "Fabrikam", 3, 1)],
            "observedDateTime": first.isoformat()})
        assert posted.status_code == 202 and posted.json()["applied"] is True, posted.text
        await eventually(listed, lambda page: page.get("@odata.count") == 2, within=30, what="both customers")

        empty = await http.post(write, json={"customers": [], "observedDateTime": emptied.isoformat()})
        assert empty.status_code == 202 and empty.json()["applied"] is True, empty.text
        assert empty.json()["complianceStatus"] == "compliant"  # no customers: none lacks MFA
        gone = await eventually(listed, lambda page: page.get("@odata.count") == 0, within=30,
                                what="no customer after the empty report")
        assert gone == {"value": [], "@odata.count": 0}

    await topic_records(test_env, Topic.customer_mfa, f"{tenant_id}:", count=4)
    records = await topic_records(test_env, Topic.customer_mfa, f"{tenant_id}:")  # read to the end
    when = emptied.isoformat().replace("+00:00", "Z")
    assert sorted(removal(r) for r in records if r["value"]["eventType"] == "customer-mfa-removed") == [
        (f"{tenant_id}:c-contoso", "customer-mfa-removed", "c-contoso", when),
        (f"{tenant_id}:c-fabrikam", "customer-mfa-removed", "c-fabrikam", when)]
    for key in (f"{tenant_id}:c-contoso", f"{tenant_id}:c-fabrikam"):  # on each key, after its figures
        assert [r["value"]["eventType"] for r in records if r["key"] == key] == [
            "customer-mfa-observed", "customer-mfa-removed"]
    assert len(records) == 4


async def test_customers_no_event_told_of_are_published_once_at_start_up(test_env, tenant_id, db_pool):
    observed = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    # As an upgrade leaves them: stored by an earlier version, never on the topic.
    await db_pool.execute(
        """INSERT INTO ingest.customer_mfa (tenant_id, customer_tenant_id, customer_name, admins, admins_with_mfa,
                                            non_admins_with_mfa, total_users, observed_at, announced)
           VALUES ($1, 'c-old', 'Old Customer', 4, 3, 2, 9, $2, false)""",
        tenant_id, observed)
    async with running_ingest():
        [record] = await topic_records(test_env, Topic.customer_mfa, f"{tenant_id}:", count=1)
    async with running_ingest():
        pass  # a second start tells nothing again
    assert len(await topic_records(test_env, Topic.customer_mfa, f"{tenant_id}:")) == 1
    assert figures(record) == (f"{tenant_id}:c-old", "customer-mfa-observed", "c-old", "Old Customer", 4, 3, 2, 9,
                               "2026-11-29T12:00:00Z")
    assert await db_pool.fetchval(
        "SELECT announced FROM ingest.customer_mfa WHERE tenant_id = $1", tenant_id) is True
