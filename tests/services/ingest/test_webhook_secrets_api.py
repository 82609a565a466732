"""A tenant's inbound webhook secrets through the write API (#18): ``GET | POST | DELETE
/v1/tenants/{t}/webhook-secrets``, against the real PostgreSQL and Kafka, the write API in-process.

Listed by id and creation time (never a secret, never the default secret); rotated (the new secret in
that answer alone, and it signs at once for a tenant it was never asked about); revoked down to the
newest N; each change audited under the key that made it; refused as everywhere (problem+json).
"""

from __future__ import annotations

import json
from datetime import datetime

import httpx
import pytest_asyncio

from services.ingest.webhook_auth import derived_secret
from shared.settings import DEV_WEBHOOK_SECRET
from shared.webhooks import sign_headers
from tests.conftest import AUTH
from tests.services.ingest.support import running_ingest


@pytest_asyncio.fixture(scope="module")
async def client(test_env):
    async with running_ingest() as client:
        yield client


def secrets_url(tenant_id: str) -> str:
    return f"/v1/tenants/{tenant_id}/webhook-secrets"


def bearer(key: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {key['key']}"}


async def new_key(client, tenant_id: str | None, role: str, user_id: str) -> dict:
    created = await client.post("/v1/keys", json={"tenantId": tenant_id, "role": role, "userId": user_id},
                                headers=AUTH)
    assert created.status_code == 201, created.text
    return created.json()


def problem(answer: httpx.Response, status: int) -> dict:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json", answer.headers
    return answer.json()


async def signed_alert(client, tenant_id: str, secret: str) -> int:
    body = json.dumps({"id": "signed-1", "severity": "low"}).encode()
    headers = {"content-type": "application/json", **sign_headers(secret, body)}
    return (await client.post(f"/v1/tenants/{tenant_id}/alerts", content=body, headers=headers)).status_code


async def test_secrets_are_rotated_listed_and_revoked_never_shown_again_and_audited(client, tenant_id):
    ada = await new_key(client, tenant_id, "adminAgent", "ada@partner.example")
    url = secrets_url(tenant_id)
    answers: list[httpx.Response] = []

    async def call(method: str, status: int, **params) -> dict:
        answer = await client.request(method, url, params=params, headers=bearer(ada))
        assert answer.status_code == status, answer.text
        answers.append(answer)
        return answer.json()

    assert await call("GET", 200) == {"tenantId": tenant_id, "usesDefaultSecret": True, "value": []}

    first = await call("POST", 201)
    assert answers[-1].headers["cache-control"] == "no-store"
    assert first["secret"].startswith("whsec_") and first["revokedSecretIds"] == []
    assert datetime.fromisoformat(first["createdDateTime"])
    # It signs for the tenant (never asked about before, so nothing cached), the default no longer does.
    assert await signed_alert(client, tenant_id, first["secret"]) == 202
    assert await signed_alert(client, tenant_id, derived_secret(DEV_WEBHOOK_SECRET, tenant_id)) == 401

    second = await call("POST", 201)
    assert second["revokedSecretIds"] == [], "two stay active: the new one and the one it replaces"
    third = await call("POST", 201)
    assert third["revokedSecretIds"] == [first["secretId"]]
    assert len({first["secret"], second["secret"], third["secret"]}) == 3

    listed = await call("GET", 200)
    assert listed["usesDefaultSecret"] is False
    assert [s["secretId"] for s in listed["value"]] == [third["secretId"], second["secretId"]]  # newest first
    assert all(set(s) == {"secretId", "createdDateTime"} for s in listed["value"])

    assert await call("DELETE", 200) == {"revokedSecretIds": [second["secretId"]]}  # keepNewest=1: ends the rotation
    assert [s["secretId"] for s in (await call("GET", 200))["value"]] == [third["secretId"]]
    assert await call("DELETE", 200, keepNewest=0) == {"revokedSecretIds": [third["secretId"]]}
    assert await call("GET", 200) == {"tenantId": tenant_id, "usesDefaultSecret": True, "value": []}
    assert await call("DELETE", 200, keepNewest=0) == {"revokedSecretIds": []}  # nothing left: no entry

    # A secret is in the answer that made it alone; the default secret in none.
    shown_after = "".join(answer.text for answer in answers[1:] if answer.request.method != "POST")
    for secret in (first["secret"], second["secret"], third["secret"], derived_secret(DEV_WEBHOOK_SECRET, tenant_id)):
        assert secret not in shown_after
    assert derived_secret(DEV_WEBHOOK_SECRET, tenant_id) not in "".join(answer.text for answer in answers)

    # Each change audited under the key that made it, secrets by id.
    audit = await client.get(f"/v1/tenants/{tenant_id}/audit", params={"top": 50}, headers=AUTH)
    entries = [e for e in reversed(audit.json()["value"]) if e["action"].startswith("webhook-secret")]
    assert [(e["action"], e["target"], e["userId"], e["keyId"], e["changes"]) for e in entries] == [
        ("webhook-secret-added", f"webhook-secrets/{first['secretId']}", "ada@partner.example", ada["keyId"],
         {"secretId": first["secretId"], "revokedSecretIds": []}),
        ("webhook-secret-added", f"webhook-secrets/{second['secretId']}", "ada@partner.example", ada["keyId"],
         {"secretId": second["secretId"], "revokedSecretIds": []}),
        ("webhook-secret-added", f"webhook-secrets/{third['secretId']}", "ada@partner.example", ada["keyId"],
         {"secretId": third["secretId"], "revokedSecretIds": [first["secretId"]]}),
        ("webhook-secret-revoked", "webhook-secrets", "ada@partner.example", ada["keyId"],
         {"revokedSecretIds": [second["secretId"]]}),
        ("webhook-secret-revoked", "webhook-secrets", "ada@partner.example", ada["keyId"],
         {"revokedSecretIds": [third["secretId"]]}),
    ]
    for secret in (first["secret"], second["secret"], third["secret"]):
        assert secret not in audit.text


async def test_only_who_manages_the_tenant_changes_its_secrets_and_bad_input_is_a_clear_4xx(client, tenant_id):
    url = secrets_url(tenant_id)
    administrator = await new_key(client, tenant_id, "securityAdministrator", "sam@partner.example")
    reader = await new_key(client, tenant_id, "securityReader", "rita@partner.example")
    stranger = await new_key(client, f"{tenant_id}-other", "adminAgent", "olga@other.example")

    for key, refusal in ((administrator, "may not manage for tenant"), (reader, "may only read")):
        listed = await client.get(url, headers=bearer(key))  # ids and times: what any role may read
        assert listed.status_code == 200, listed.text
        for method in ("POST", "DELETE"):
            assert refusal in problem(await client.request(method, url, headers=bearer(key)), 403)["detail"]
    for method in ("GET", "POST", "DELETE"):
        problem(await client.request(method, url, headers=bearer(stranger)), 403)
        problem(await client.request(method, url), 401)

    for keep_newest in ("2", "-1", "one"):
        refused = problem(await client.delete(url, params={"keepNewest": keep_newest}, headers=AUTH), 422)
        assert [e["field"] for e in refused["errors"]] == ["query.keepNewest"], refused
    # None of that changed anything.
    assert (await client.get(url, headers=AUTH)).json()["value"] == []


async def test_an_offboarded_tenant_gets_no_secret(client, tenant_id):
    offboarded = await client.post(f"/v1/tenants/{tenant_id}/offboarding",
                                   json={"dryRun": False, "confirmTenantId": tenant_id}, headers=AUTH)
    assert offboarded.status_code == 202, offboarded.text
    url = secrets_url(tenant_id)
    for method in ("POST", "DELETE"):
        detail = problem(await client.request(method, url, headers=AUTH), 410)["detail"]
        assert f"tenant {tenant_id} was offboarded at" in detail
    assert (await client.get(url, headers=AUTH)).json() == {"tenantId": tenant_id, "usesDefaultSecret": True,
                                                            "value": []}


async def test_the_openapi_document_lists_the_routes_and_the_secret_only_in_the_rotations_answer(client):
    paths = (await client.get("/openapi.json")).json()["paths"]
    item = paths["/v1/tenants/{tenant_id}/webhook-secrets"]
    assert set(item) == {"get", "post", "delete"}
    assert "410" in item["post"]["responses"] and "410" in item["delete"]["responses"]
    assert "201" in item["post"]["responses"]
    [keep_newest] = [p for p in item["delete"]["parameters"] if p["name"] == "keepNewest"]
    assert (keep_newest["schema"]["minimum"], keep_newest["schema"]["maximum"], keep_newest["schema"]["default"]) == (
        0, 1, 1)
