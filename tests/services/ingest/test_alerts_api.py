"""POST / PATCH alerts against the real broker and PostgreSQL, ingest as a process."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import httpx
import pytest

from services.ingest.webhook_auth import derived_secret, new_secret
from services.ingest.webhook_secrets_store import add_secret
from shared.auth import AuditActor, Role, create_key
from shared.settings import DEV_WEBHOOK_SECRET
from shared.webhooks import sign_headers
from tests.conftest import AUTH
from tests.services.ingest.support import alert_records
from tests.support.kafka import read_topic


@pytest.fixture(scope="module")
def ingest(make_service):
    return make_service("ingest").start()


@pytest.fixture
async def http():
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


def alerts_url(ingest, tenant_id: str, alert_id: str | None = None) -> str:
    return f"{ingest.url}/v1/tenants/{tenant_id}/alerts" + (f"/{alert_id}" if alert_id else "")


async def test_created_updated_duplicate_with_keys_and_order(
    ingest, http, tenant_id, kafka_bootstrap, topic_prefix
):
    url = alerts_url(ingest, tenant_id)
    first = {
        "id": "a1",
        "displayName": "Unusual sign-in",
        "severity": "medium",
        "status": "active",
        "detectedDateTime": "2026-11-27T08:00:00+05:30",
        "isTest": "false",
    }
    response = await http.post(url, json=first, headers=AUTH)
    assert response.status_code == 202, response.text
    assert response.json() == {
        "accepted": 1,
        "duplicates": 0,
        "events": [{"alertId": "a1", "eventType": "alert-created"}],
    }

    again = await http.post(url, json=first, headers=AUTH)
    assert again.json() == {"accepted": 0, "duplicates": 1, "events": []}

    log = {
        "statusFrom": "active",
        "statusTo": "investigating",
        "updatedBy": "ann@partner.example",
        "updatedDateTime": "2026-11-26T09:00:00",
    }
    changed = await http.post(
        url,
        json={"value": [{**first, "severity": "high"}, {"id": "a1-other", "severity": "low"}]},
        headers=AUTH,
    )
    assert changed.json()["events"] == [
        {"alertId": "a1", "eventType": "alert-updated"},
        {"alertId": "a1-other", "eventType": "alert-created"},
    ]
    # A partial post: only the status and its log entry.
    third = await http.post(
        url, json={"id": "a1", "status": "investigating", "activityLogs": [log]}, headers=AUTH
    )
    assert third.json()["accepted"] == 1

    records = await alert_records(kafka_bootstrap, topic_prefix, tenant_id, at_least=4)
    of_a1 = [r for r in records if r["key"] == f"{tenant_id}:a1"]
    assert len(records) == 4 and len(of_a1) == 3
    assert len({r["partition"] for r in of_a1}) == 1
    assert [r["value"]["eventType"] for r in sorted(of_a1, key=lambda r: r["offset"])] == [
        "alert-created",
        "alert-updated",
        "alert-updated",
    ]
    created, severity, status = (r["value"] for r in sorted(of_a1, key=lambda r: r["offset"]))
    assert created["alert"]["detectedDateTime"] == "2026-11-27T02:30:00Z"
    assert severity["changes"] == [{"field": "severity", "from": "medium", "to": "high"}]
    assert severity["actor"] == {"type": "system", "id": None}
    assert status["changes"] == [{"field": "status", "from": "active", "to": "investigating"}]
    assert status["actor"] == {"type": "user", "id": "ann@partner.example"}
    assert status["changedDateTime"] == "2026-11-26T09:00:00Z"
    assert status["statusChanges"][0]["actor"]["id"] == "ann@partner.example"
    assert status["alert"]["severity"] == "high"  # kept from before: absent means unchanged
    assert all(r["headers"]["eventType"] == r["value"]["eventType"] for r in records)
    assert len({r["value"]["eventId"] for r in records}) == 4


async def test_concurrent_posts_of_one_new_alert_give_one_created(
    ingest, tenant_id, kafka_bootstrap, topic_prefix
):
    alert = {"id": "race", "severity": "high"}
    async with httpx.AsyncClient(timeout=30) as client:
        responses = await asyncio.gather(
            *(client.post(alerts_url(ingest, tenant_id), json=alert, headers=AUTH) for _ in range(8))
        )
    assert [r.status_code for r in responses] == [202] * 8
    assert sorted(r.json()["accepted"] for r in responses) == [0] * 7 + [1]
    records = await alert_records(kafka_bootstrap, topic_prefix, tenant_id, at_least=1)
    assert [r["value"]["eventType"] for r in records] == ["alert-created"]


async def test_every_alert_of_a_list_is_published(
    ingest, http, tenant_id, kafka_bootstrap, topic_prefix
):
    alerts = [{"id": f"bulk-{i}", "severity": "low"} for i in range(100)]
    response = await http.post(alerts_url(ingest, tenant_id), json={"value": alerts}, headers=AUTH)
    assert response.status_code == 202 and response.json()["accepted"] == 100
    records = await alert_records(kafka_bootstrap, topic_prefix, tenant_id, at_least=100)
    assert sorted(r["key"] for r in records) == sorted(f"{tenant_id}:bulk-{i}" for i in range(100))


async def test_fraud_events_are_accepted(ingest, http, tenant_id, kafka_bootstrap, topic_prefix):
    event = {
        "eventId": "fe-1",
        "eventTime": "2026-11-27T08:00:00",
        "eventStatus": "Active",
        "fraudEventType": "cryptoMining",
        "resolvedOn": "9999-12-31T23:59:59.997",
        "resolvedReason": "None",
        "customerName": "Contoso",
        "hitCount": 3,
    }
    response = await http.post(alerts_url(ingest, tenant_id), json=[event], headers=AUTH)
    assert response.status_code == 202, response.text
    resolved = await http.post(
        alerts_url(ingest, tenant_id),
        json={
            "value": [
                {"eventId": "fe-1", "eventStatus": "Resolved", "resolvedReason": "Fraud", "resolvedBy": "bob"}
            ]
        },
        headers=AUTH,
    )
    assert resolved.json()["events"] == [{"alertId": "fe-1", "eventType": "alert-updated"}]
    records = await alert_records(kafka_bootstrap, topic_prefix, tenant_id, at_least=2)
    created, updated = (r["value"] for r in sorted(records, key=lambda r: r["offset"]))
    assert created["alert"]["alertType"] == "cryptoMining"
    assert created["alert"]["additionalDetails"]["customerName"] == "Contoso"
    assert {(c["field"], c["to"]) for c in updated["changes"]} == {
        ("status", "resolved"),
        ("resolvedReason", "fraud"),
        ("resolvedBy", "bob"),
    }
    assert updated["alert"]["detectedDateTime"] == "2026-11-27T08:00:00Z"


async def test_patch_is_by_the_key_user_at_request_time(
    ingest, http, tenant_id, test_env, kafka_bootstrap, topic_prefix
):
    await http.post(alerts_url(ingest, tenant_id), json={"id": "p1", "severity": "high"}, headers=AUTH)
    key = await create_key(
        test_env["DATABASE_URL"], tenant_id, Role.security_administrator, "carol@partner.example"
    )
    headers = {"Authorization": f"Bearer {key}"}
    patched = await http.patch(
        alerts_url(ingest, tenant_id, "p1"),
        headers=headers,
        json={"status": "resolved", "resolvedReason": "legitimate"},
    )
    assert patched.status_code == 202, patched.text
    assert patched.json()["events"] == [{"alertId": "p1", "eventType": "alert-updated"}]
    same = await http.patch(
        alerts_url(ingest, tenant_id, "p1"),
        headers=headers,
        json={"status": "resolved", "resolvedReason": "legitimate"},
    )
    assert same.json() == {"accepted": 0, "duplicates": 1, "events": []}

    records = await alert_records(kafka_bootstrap, topic_prefix, tenant_id, at_least=2)
    update = max(records, key=lambda r: r["offset"])["value"]
    assert update["actor"] == {"type": "user", "id": "carol@partner.example"}
    assert [(c["field"], c["to"], c["actor"]["id"]) for c in update["statusChanges"]] == [
        ("status", "resolved", "carol@partner.example"),
        ("resolvedReason", "legitimate", "carol@partner.example"),
    ]
    assert update["changedDateTime"] == update["occurredDateTime"]

    missing = await http.patch(
        alerts_url(ingest, tenant_id, "nope"), headers=AUTH, json={"status": "resolved"}
    )
    assert missing.status_code == 404
    bad = await http.patch(alerts_url(ingest, tenant_id, "p1"), headers=AUTH, json={"status": "closed"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "status"
    empty = await http.patch(alerts_url(ingest, tenant_id, "p1"), headers=AUTH, json={})
    assert empty.status_code == 422


async def test_authentication_and_roles(ingest, http, tenant_id, test_env):
    url = alerts_url(ingest, tenant_id)
    alert = {"id": "auth-1"}
    assert (await http.post(url, json=alert)).status_code == 401
    unknown = await http.post(url, json=alert, headers={"Authorization": "Bearer nope"})
    assert unknown.status_code == 401 and unknown.headers["content-type"] == "application/problem+json"
    reader = await create_key(test_env["DATABASE_URL"], tenant_id, Role.security_reader, "r")
    assert (
        await http.post(url, json=alert, headers={"Authorization": f"Bearer {reader}"})
    ).status_code == 403
    other = await create_key(test_env["DATABASE_URL"], "another-tenant", Role.admin_agent, "o")
    assert (await http.post(url, json=alert, headers={"Authorization": f"Bearer {other}"})).status_code == 403
    admin = await create_key(test_env["DATABASE_URL"], tenant_id, Role.security_administrator, "s")
    assert (await http.post(url, json=alert, headers={"Authorization": f"Bearer {admin}"})).status_code == 202
    # A request that carries part of a signature means to be signed: checked as such, never passed
    # over for the key beside it.
    partly_signed = await http.post(
        url, json=alert, headers={"Authorization": f"Bearer {admin}", "webhook-signature": ""}
    )
    assert partly_signed.status_code == 401, partly_signed.text


async def test_signed_webhooks_default_secret_then_rotation(ingest, http, tenant_id, db_pool):
    url = alerts_url(ingest, tenant_id)
    body = json.dumps({"id": "hook-1", "severity": "low"}).encode()
    own_default = derived_secret(DEV_WEBHOOK_SECRET, tenant_id)
    signed = {"content-type": "application/json", **sign_headers(own_default, body)}
    assert (await http.post(url, content=body, headers=signed)).status_code == 202
    # Neither the deployment-wide secret nor another tenant's default signs for this tenant.
    for other in (new_secret(), DEV_WEBHOOK_SECRET, derived_secret(DEV_WEBHOOK_SECRET, f"{tenant_id}-other")):
        wrong = {"content-type": "application/json", **sign_headers(other, body)}
        assert (await http.post(url, content=body, headers=wrong)).status_code == 401

    # The tenant gets its own secrets (a fresh tenant: nothing cached); the default no longer applies.
    rotated_tenant = f"{tenant_id}-r"
    old, new = new_secret(), new_secret()
    await add_secret(db_pool, rotated_tenant, old, actor=AuditActor.cli("test"))
    await add_secret(db_pool, rotated_tenant, new, actor=AuditActor.cli("test"))
    url = alerts_url(ingest, rotated_tenant)
    for secret, status in ((old, 202), (new, 202), (derived_secret(DEV_WEBHOOK_SECRET, rotated_tenant), 401)):
        headers = {"content-type": "application/json", **sign_headers(secret, body)}
        assert (await http.post(url, content=body, headers=headers)).status_code == status


async def test_bad_input_is_a_clear_4xx(ingest, http, tenant_id):
    url = alerts_url(ingest, tenant_id)
    malformed = await http.post(url, content=b'{"id": ', headers={**AUTH, "content-type": "application/json"})
    assert malformed.status_code == 400 and malformed.headers["content-type"] == "application/problem+json"
    text = await http.post(url, content=b"id=a", headers={**AUTH, "content-type": "text/plain"})
    assert text.status_code == 415
    too_many = await http.post(url, json={"value": [{"id": str(i)} for i in range(1001)]}, headers=AUTH)
    assert too_many.status_code == 413
    huge = await http.post(url, json={"id": "big", "description": "x" * (5 * 1024 * 1024)}, headers=AUTH)
    assert huge.status_code == 413
    invalid = await http.post(
        url, json={"value": [{"id": "ok"}, {"id": "bad", "detectedDateTime": "soon"}]}, headers=AUTH
    )
    assert invalid.status_code == 422
    assert invalid.json()["errors"][0]["field"] == "value[1].detectedDateTime"
    # Nothing of the refused list was taken: the valid alert is still new.
    accepted = await http.post(url, json={"id": "ok"}, headers=AUTH)
    assert accepted.json()["events"] == [{"alertId": "ok", "eventType": "alert-created"}]


async def test_a_replayed_signed_post_is_a_duplicate_and_restores_nothing(ingest, http, tenant_id, db_pool):
    url = alerts_url(ingest, tenant_id)
    secret = derived_secret(DEV_WEBHOOK_SECRET, tenant_id)

    async def signed_post(document: dict, msg_id: str) -> httpx.Response:
        body = json.dumps(document).encode()
        headers = {"content-type": "application/json", **sign_headers(secret, body, msg_id=msg_id)}
        return await http.post(url, content=body, headers=headers)

    first = await signed_post({"id": "replayed", "status": "active"}, "msg_first")
    assert first.json()["events"] == [{"alertId": "replayed", "eventType": "alert-created"}]
    newer = await signed_post({"id": "replayed", "status": "resolved"}, "msg_newer")
    assert newer.json()["events"] == [{"alertId": "replayed", "eventType": "alert-updated"}]

    replay = await signed_post({"id": "replayed", "status": "active"}, "msg_first")
    assert replay.status_code == 202
    assert replay.json() == {"accepted": 0, "duplicates": 1, "events": []}
    state = await db_pool.fetchval(
        "SELECT alert->>'status' FROM ingest_alert_state WHERE tenant_id = $1 AND alert_id = 'replayed'",
        tenant_id,
    )
    assert state == "resolved"
    # The id is remembered per tenant: the same id from another tenant is its own post.
    other = f"{tenant_id}-o"
    body = json.dumps({"id": "replayed"}).encode()
    headers = {
        "content-type": "application/json",
        **sign_headers(derived_secret(DEV_WEBHOOK_SECRET, other), body, msg_id="msg_first"),
    }
    assert (await http.post(alerts_url(ingest, other), content=body, headers=headers)).json()["accepted"] == 1


async def test_input_that_used_to_fail_on_the_server_is_a_4xx(ingest, http, tenant_id):
    url = alerts_url(ingest, tenant_id)
    json_headers = {**AUTH, "content-type": "application/json"}
    deep = "[" * 100_000
    nested = {"id": "n", "additionalDetails": {}}
    leaf = nested["additionalDetails"]
    for _ in range(600):
        leaf["k"] = {}
        leaf = leaf["k"]
    cases = [
        (b'{"id": "big", "n": ' + b"1" * 5000 + b"}", 400),
        (deep.encode(), 400),
        (b'{"id": "nan", "riskScore": NaN}', 400),
        (json.dumps(nested).encode(), 422),
        (b'{"id": "s", "description": "\\ud800"}', 422),
        (b'{"id": "z", "additionalDetails": {"k": ["a\\u0000"]}}', 422),
        (b'{"id": "d", "detectedDateTime": "0001-01-01T00:00:00+01:00"}', 422),
        (b'{"id": "f", "activityLogs": [{"statusTo": "resolved", "updatedDateTime": "2099-01-01T00:00:00Z"}]}', 422),
    ]
    for body, status in cases:
        response = await http.post(url, content=body, headers=json_headers)
        assert (response.status_code, body[:40]) == (status, body[:40])
        assert response.headers["content-type"] == "application/problem+json"
    future = (await http.post(url, content=cases[-1][0], headers=json_headers)).json()
    assert future["errors"][0]["field"] == "activityLogs[0].updatedDateTime"

    assert (await http.post(url, json={"id": "p"}, headers=AUTH)).status_code == 202
    patch_url = alerts_url(ingest, tenant_id, "p")
    for body in (b'{"status": "resolved", "n": ' + b"1" * 5000 + b"}", deep.encode()):
        assert (await http.patch(patch_url, content=body, headers=json_headers)).status_code == 400
    bad_by_body = b'{"status": "resolved", "updatedBy": "a\\u0000"}'
    bad_by = await http.patch(patch_url, content=bad_by_body, headers=json_headers)
    assert bad_by.status_code == 422
    control = await http.patch(alerts_url(ingest, tenant_id, "p%00q"), json={"status": "resolved"}, headers=AUTH)
    assert control.status_code == 422


async def test_thin_path_still_reads_uncommitted_records(
    ingest, http, tenant_id, kafka_bootstrap, topic_prefix
):
    """Consumers that have not switched to read_committed still receive committed events."""
    await http.post(alerts_url(ingest, tenant_id), json={"id": "plain"}, headers=AUTH)
    records = await read_topic(
        kafka_bootstrap,
        f"{topic_prefix}alerts",
        count=1,
        timeout=20,
        predicate=lambda r: r["key"] == f"{tenant_id}:plain",
    )
    assert [r["value"]["eventType"] for r in records] == ["alert-created"]


async def test_a_change_that_waited_for_the_alert_is_stamped_after_the_wait(
    ingest, http, tenant_id, db_pool, kafka_bootstrap, topic_prefix
):
    # Consumers keep the state with the newest time: a request that waited behind another one must
    # not publish its newer state with the older time it arrived at.
    created = await http.post(alerts_url(ingest, tenant_id), json={"id": "w1"}, headers=AUTH)
    assert created.status_code == 202, created.text
    async with db_pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "SELECT 1 FROM ingest_alert_state WHERE tenant_id = $1 AND alert_id = 'w1' FOR UPDATE", tenant_id
        )
        waiting = asyncio.create_task(
            http.patch(alerts_url(ingest, tenant_id, "w1"), json={"status": "investigating"}, headers=AUTH)
        )
        await asyncio.sleep(1.5)
        assert not waiting.done(), "the change should wait for the alert's lock"
        released = datetime.now(UTC)
    patched = await waiting
    assert patched.status_code == 202, patched.text
    records = await alert_records(kafka_bootstrap, topic_prefix, tenant_id, at_least=2)
    update = max(records, key=lambda r: r["offset"])["value"]
    assert update["eventType"] == "alert-updated"
    occurred = datetime.fromisoformat(update["occurredDateTime"])
    assert occurred >= released, f"stamped {occurred}, before the lock was released at {released}"
    assert update["statusChanges"][0]["changedDateTime"] == update["occurredDateTime"]
