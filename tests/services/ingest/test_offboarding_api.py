"""Offboarding a tenant on the write API (#18): ``POST /v1/tenants/{t}/offboarding``; real PostgreSQL and
Kafka, the write API in-process.

A dry run counts what would go and changes nothing. A real one deletes every row the write API holds
of the tenant (its tables, its API keys, its audit log), tombstones every key it published for the
tenant on a compacted topic, tells the other services (``tenant-offboarded`` on ``tenants``) and
audits itself in the deployment's log, in one transaction; from then on every write for the tenant
is 410 and every event of it the write API consumes is dropped.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
import pytest_asyncio

from services.ingest import offboarding_store
from shared.catalogue import RequirementType, load_catalogue
from shared.events import DeliveryChanged, DeliveryView, Topic
from shared.kafka import event_headers
from tests.conftest import AUTH
from tests.services.ingest.support import publish, running_ingest, topic_records
from tests.support.kafka import produce
from tests.support.polling import eventually

CONTACT = {"name": "SOC team", "email": "soc@example.com", "phone": "+44 20 7123 4567"}
CHANNEL_SECRET = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
GRAPH = {"directoryId": "72f988bf-86f1-41af-91ab-2d7cd011db47", "clientId": "11111111-2222-3333-4444-555555555555",
         "clientSecret": "Qx8Q~s3cret.value-from-the-portal_1234567"}
# Requirement statuses the write API publishes (every one but the response-time service's).
INGEST_REQUIREMENTS = sorted(r.requirement_type for r in load_catalogue().requirements
                             if r.requirement_type != RequirementType.security_alerts_promptly_resolved)


@pytest_asyncio.fixture(scope="module")
async def client(test_env):
    async with running_ingest() as client:
        yield client


def problem(answer: httpx.Response, status: int) -> dict:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json", answer.headers
    return answer.json()


def offboarding_url(tenant_id: str) -> str:
    return f"/v1/tenants/{tenant_id}/offboarding"


async def offboard(client, tenant_id: str, *, headers=AUTH) -> httpx.Response:
    return await client.post(offboarding_url(tenant_id), json={"dryRun": False, "confirmTenantId": tenant_id},
                             headers=headers)


def ok(answer: httpx.Response, *statuses: int) -> dict:
    assert answer.status_code in statuses, answer.text
    return answer.json() if answer.content else {}


def delivery_changed(tenant_id: str, delivery_id: uuid.UUID | None = None) -> DeliveryChanged:
    at = datetime.now(UTC) - timedelta(minutes=5)
    view = DeliveryView(id=delivery_id or uuid.uuid4(), alert_id="a1", subject="a1", channel="webhook:jira",
                        kind="alert", state="dead", recipient="https://tickets.example/hook", attempts=3,
                        created_date_time=at, last_attempt_date_time=at)
    return DeliveryChanged(tenant_id=tenant_id, occurred_date_time=at, delivery=view)


async def tenant_tables(pool: asyncpg.Pool) -> list[str]:
    """Every table of the write API's schema with a tenant column (but the offboarded tenants themselves),
    and the key store's: found, not listed, so a table added later is held to this test too."""
    rows = await pool.fetch(
        """SELECT table_schema || '.' || table_name AS name FROM information_schema.columns
           WHERE table_schema IN ('ingest', 'auth') AND column_name = 'tenant_id'
             AND table_name <> 'offboarded_tenants' ORDER BY 1""")
    return [row["name"] for row in rows]


async def rows_of(pool: asyncpg.Pool, tenant_id: str) -> dict[str, int]:
    return {table: await pool.fetchval(f"SELECT count(*) FROM {table} WHERE tenant_id = $1", tenant_id)
            for table in await tenant_tables(pool)}


async def seed(client, db_pool, test_env, tenant_id: str) -> dict:
    """Something of the tenant in every table the write API has (and the keys it published for each)."""
    base = f"/v1/tenants/{tenant_id}"
    ok(await client.put(f"{base}/security-contact", json=CONTACT, headers=AUTH), 200)
    for name in ("jira", "teams"):
        ok(await client.put(f"{base}/channels/{name}", headers=AUTH,
                                  json={"url": f"https://hooks.example/{name}", "secret": CHANNEL_SECRET}), 201)
    ok(await client.delete(f"{base}/channels/teams", headers=AUTH), 204)  # gone, but its key is published
    alerts = [{"id": alert_id, "displayName": "Unusual sign-in", "severity": "high", "customerTenantId": "c-1"}
              for alert_id in ("a1", "a2")]
    ok(await client.post(f"{base}/alerts", json={"value": alerts}, headers=AUTH), 202)
    ok(await client.put(f"{base}/alerts/a1/assignee", json={"assignee": "kim@partner.example"},
                              headers=AUTH), 200)
    note = ok(await client.post(f"{base}/alerts/a2/notes", json={"text": "looked at it"}, headers=AUTH), 201)
    ok(await client.put(f"{base}/escalation-chain", json={"steps": [{"afterMinutes": 30, "channel": "jira"}]},
                              headers=AUTH), 201)
    customers = [{"customerTenantId": cid, "customerName": f"Customer {cid}", "admins": 2, "adminsWithMfa": 1,
                  "nonAdminsWithMfa": 3, "totalUsers": 10} for cid in ("c-1", "c-2")]
    ok(await client.post(f"{base}/signals/customer-mfa", json={"customers": customers}, headers=AUTH), 202)
    spending = [{"customerTenantId": "c-1", "monthlyBudget": 100, "currentMonthSpend": 95}]
    ok(await client.post(f"{base}/signals/spending", json={"customers": spending}, headers=AUTH), 202)
    ok(await client.put(f"{base}/connections/graph", json=GRAPH, headers=AUTH), 201)
    key = ok(await client.post("/v1/keys", json={"tenantId": tenant_id, "role": "adminAgent",
                                                       "userId": "ada@partner.example"}, headers=AUTH), 201)
    # What no route of this test reaches as easily: a signed webhook's id, a webhook secret (the CLI's), a
    # used one-click link, an alert's sync with Partner Center (the Graph poller's).
    await db_pool.execute("INSERT INTO ingest_webhook_ids (tenant_id, webhook_id) VALUES ($1, 'msg_1')", tenant_id)
    await db_pool.execute("INSERT INTO ingest_webhook_secrets (tenant_id, secret) VALUES ($1, $2)",
                          tenant_id, CHANNEL_SECRET)
    await db_pool.execute(
        """INSERT INTO used_action_links (link_id, tenant_id, alert_id, action, recipient, issued_at)
           VALUES ($1, $2, 'a1', 'acknowledge', 'soc@example.com', now())""", uuid.uuid4().hex, tenant_id)
    await db_pool.execute(
        "INSERT INTO graph_alert_sync (tenant_id, alert_id, state, attempts) VALUES ($1, 'a1', 'synced', 0)",
        tenant_id)
    await publish(test_env, Topic.deliveries, delivery_changed(tenant_id))
    await eventually(lambda: db_pool.fetchval("SELECT count(*) FROM deliveries WHERE tenant_id = $1", tenant_id),
                     what="the delivery heard of")
    return {"key": key["key"], "note_id": note["id"]}


def expected_tombstones(tenant_id: str, note_id: str) -> dict[str, list[str]]:
    return {
        "alert-sync": [f"{tenant_id}:a1"],
        "alert-triage": [f"{tenant_id}:a1:assignee", f"{tenant_id}:a2:note:{note_id}"],
        "customer-mfa": [f"{tenant_id}:c-1", f"{tenant_id}:c-2"],
        "escalation-chains": [tenant_id],
        "notification-channels": [f"{tenant_id}:jira", f"{tenant_id}:teams"],
        "requirement-status": [f"{tenant_id}:{r}" for r in INGEST_REQUIREMENTS],
        "security-contacts": [tenant_id],
    }


async def records_of(test_env, topic: str, tenant_id: str, *, timeout: float = 20, count: int | None = None):
    records = await topic_records(test_env, Topic(topic), tenant_id, timeout=timeout, count=count)
    # The tenant's own keys: `t` and `t:...`, not those of a tenant whose id starts the same.
    return [r for r in records if r["key"] == tenant_id or r["key"].startswith(f"{tenant_id}:")]


# --- the keys, no I/O ------------------------------------------------------------------------------


def test_the_keys_to_tombstone_are_those_the_write_api_published_for_the_tenant():
    held = offboarding_store.HeldKeys(
        security_contact=True, channels=["teams", "jira"], customers=["c-2"], synced_alerts=["a1"],
        escalation_chain=False, assignments=["a1"], notes=[("a2", "n-1")])
    keys = offboarding_store.tombstone_keys("t", held, ["mfaEnforcedForAdmins", "securityContactProvided"])
    assert {topic.value: [k.decode() for k in ks] for topic, ks in keys.items()} == {
        "security-contacts": ["t"],
        "notification-channels": ["t:jira", "t:teams"],
        "customer-mfa": ["t:c-2"],
        "alert-sync": ["t:a1"],
        "alert-triage": ["t:a1:assignee", "t:a2:note:n-1"],
        "requirement-status": ["t:mfaEnforcedForAdmins", "t:securityContactProvided"],
    }, "no escalation-chains key: the tenant never had a chain"


# --- the API ---------------------------------------------------------------------------------------


async def test_a_dry_run_counts_what_would_go_and_changes_nothing(client, db_pool, test_env, tenant_id):
    held = await seed(client, db_pool, test_env, tenant_id)
    before = await rows_of(db_pool, tenant_id)
    assert all(before.values()), f"the seed must reach every table of the tenant: {before}"

    answer = await client.post(offboarding_url(tenant_id), json={"dryRun": True}, headers=AUTH)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert_rows(body.pop("rows"), before)
    assert body == {
        "tenantId": tenant_id, "dryRun": True, "offboardedDateTime": None,
        "tombstones": {topic: len(keys) for topic, keys in expected_tombstones(tenant_id, held["note_id"]).items()},
    }
    assert_rows(await rows_of(db_pool, tenant_id), before)
    assert await db_pool.fetchval("SELECT count(*) FROM offboarded_tenants WHERE tenant_id = $1", tenant_id) == 0
    assert await records_of(test_env, "tenants", tenant_id, timeout=3) == []
    # The tenant still works.
    ok(await client.put(f"/v1/tenants/{tenant_id}/security-contact", json=CONTACT, headers=AUTH), 200)


def assert_rows(found: dict[str, int], before: dict[str, int]) -> None:
    """``found`` counts the rows ``before`` counted. Only the deliveries may have grown since: the run's
    notifier (the ``system`` fixture's, on the same topics) delivers the seeded alerts, and the write API
    keeps each delivery it tells of."""
    growing = "ingest.deliveries"
    assert {t: n for t, n in found.items() if t != growing} == {t: n for t, n in before.items() if t != growing}
    assert found.get(growing, 0) >= before.get(growing, 0)


async def test_an_offboarding_deletes_the_tenant_tombstones_its_keys_tells_the_others_and_audits_itself(
    client, db_pool, test_env, tenant_id
):
    other = f"{tenant_id}-other"
    held = await seed(client, db_pool, test_env, tenant_id)
    await seed(client, db_pool, test_env, other)
    before, others_before = await rows_of(db_pool, tenant_id), await rows_of(db_pool, other)

    answer = await offboard(client, tenant_id)
    assert answer.status_code == 202, answer.text
    body = answer.json()
    tombstoned = expected_tombstones(tenant_id, held["note_id"])
    assert (body["tenantId"], body["dryRun"]) == (tenant_id, False)
    assert_rows(body["rows"], before)
    assert body["tombstones"] == {topic: len(keys) for topic, keys in tombstoned.items()}
    offboarded_at = datetime.fromisoformat(body["offboardedDateTime"])

    assert set((await rows_of(db_pool, tenant_id)).values()) == {0}, "nothing of the tenant is left"
    assert_rows(await rows_of(db_pool, other), others_before)  # nothing of another tenant went
    assert await db_pool.fetchval("SELECT offboarded_at FROM offboarded_tenants WHERE tenant_id = $1",
                                  tenant_id) == offboarded_at

    # Each key the write API published for the tenant ends with its tombstone, on its topic.
    for topic, keys in tombstoned.items():
        records = await records_of(test_env, topic, tenant_id)
        last = {}
        for record in sorted(records, key=lambda r: (r["partition"], r["offset"])):
            last[record["key"]] = record
        # (Other services of the run, told of the offboarding, tombstone the keys they published on the
        # same topics: the response-time service its status of the tenant.)
        ours = {key: record for key, record in last.items() if key in keys}
        assert sorted(ours) == sorted(keys), topic
        assert set(last) - set(ours) <= {f"{tenant_id}:securityAlertsPromptlyResolved"}, topic
        assert all(r["value"] is None and r["headers"] == {"eventType": "tombstone"} for r in last.values()), topic
    told = await records_of(test_env, "tenants", tenant_id, count=1)
    assert [(r["key"], r["headers"]["eventType"], r["value"]["actor"]) for r in told] == [
        (tenant_id, "tenant-offboarded", {"type": "user", "id": "operator"})]
    assert datetime.fromisoformat(told[0]["value"]["occurredDateTime"]) == offboarded_at

    # Audited in the deployment's log; the tenant's own log went with the tenant.
    deployment = ok(await client.get("/v1/audit", params={"top": 50}, headers=AUTH), 200)
    entry = next(e for e in deployment["value"] if e["target"] == f"tenants/{tenant_id}")
    assert (entry["action"], entry["tenantId"], entry["userId"], entry["keyId"]) == (
        "tenant-offboarded", None, "operator", "operator")
    assert entry["changes"] == {"rows": body["rows"], "tombstones": body["tombstones"]}
    assert (ok(await client.get(f"/v1/tenants/{tenant_id}/audit", headers=AUTH), 200))["value"] == []

    # Its key is gone; every write for it is refused, saying since when; its reads find nothing.
    problem(await client.get(f"/v1/tenants/{tenant_id}/security-contact",
                             headers={"Authorization": f"Bearer {held['key']}"}), 401)
    base = f"/v1/tenants/{tenant_id}"
    for refused in (await client.put(f"{base}/security-contact", json=CONTACT, headers=AUTH),
                    await client.post(f"{base}/alerts", json={"id": "a3", "displayName": "x", "severity": "low"},
                                      headers=AUTH),
                    await client.delete(f"{base}/channels/jira", headers=AUTH),
                    await client.post(f"{base}/signals/admin-mfa", json={"admins": 1, "adminsWithMfa": 1},
                                      headers=AUTH)):
        detail = problem(refused, 410)["detail"]
        assert f"tenant {tenant_id} was offboarded at {body['offboardedDateTime']}" in detail, detail
    problem(await client.get(f"{base}/security-contact", headers=AUTH), 404)
    ok(await client.put(f"/v1/tenants/{other}/security-contact", json=CONTACT, headers=AUTH), 200)

    # Again: safe; whatever was left (nothing here) goes, the others are told again; the first time stays.
    again = await offboard(client, tenant_id)
    assert again.status_code == 202, again.text
    assert set(again.json()["rows"].values()) == {0}
    assert again.json()["offboardedDateTime"] == body["offboardedDateTime"]


async def test_only_an_operator_offboards_and_only_when_the_body_says_so_for_this_tenant(client, tenant_id):
    created = ok(await client.post("/v1/keys", json={"tenantId": tenant_id, "role": "adminAgent",
                                                           "userId": "ada@partner.example"}, headers=AUTH), 201)
    admin = {"Authorization": f"Bearer {created['key']}"}
    assert "only an operator key" in problem(await offboard(client, tenant_id, headers=admin), 403)["detail"]
    url = offboarding_url(tenant_id)
    for body, field in (({}, "dryRun"), ({"dryRun": "no"}, "dryRun"), ({"dryRun": None}, "dryRun"),
                        ({"dryRun": False}, "confirmTenantId"),
                        ({"dryRun": False, "confirmTenantId": f"{tenant_id}-x"}, "confirmTenantId")):
        refused = problem(await client.post(url, json=body, headers=AUTH), 422)
        assert field in [e["field"] for e in refused["errors"]], (body, refused)
    # None of that offboarded it.
    ok(await client.put(f"/v1/tenants/{tenant_id}/security-contact", json=CONTACT, headers=AUTH), 200)


async def test_a_delivery_change_of_an_offboarded_tenant_is_dropped(client, db_pool, test_env, tenant_id):
    other = f"{tenant_id}-other"
    assert (await offboard(client, tenant_id)).status_code == 202
    dropped, marker = delivery_changed(tenant_id), delivery_changed(other)
    # One key, so one partition: once the other tenant's is applied, the consumer is past the dropped one.
    for event in (dropped, marker):
        await produce(test_env["KAFKA_BOOTSTRAP_SERVERS"], f"{test_env['KAFKA_TOPIC_PREFIX']}deliveries",
                      event.model_dump_json().encode(), key=dropped.kafka_key(),
                      headers={"content-type": "application/json", **event_headers(event)})
    await eventually(lambda: db_pool.fetchval("SELECT count(*) FROM deliveries WHERE tenant_id = $1", other),
                     what="the other tenant's delivery heard of")
    assert await db_pool.fetchval("SELECT count(*) FROM deliveries WHERE tenant_id = $1", tenant_id) == 0


@pytest.mark.parametrize("dry_run", [True, False])
async def test_a_tenant_never_heard_of_is_offboarded_all_the_same(client, db_pool, tenant_id, dry_run):
    body = {"dryRun": dry_run, "confirmTenantId": tenant_id}
    answer = await client.post(offboarding_url(tenant_id), json=body, headers=AUTH)
    assert answer.status_code == (200 if dry_run else 202), answer.text
    assert set(answer.json()["rows"].values()) == {0}
    # The statuses it may have sent without the write API keeping anything of them.
    assert answer.json()["tombstones"] == {"requirement-status": len(INGEST_REQUIREMENTS)}
