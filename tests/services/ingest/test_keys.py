"""API keys through the write API (``/v1/keys``) and the CLI, against the real PostgreSQL and Kafka.

The write API runs in-process with its lifespan (its own key cache and rate-limit buckets, as one
process has), with a one-second key cache so a revocation made elsewhere (the CLI) shows quickly.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from services.ingest.app import create_app
from shared.auth import Role, create_key
from tests.conftest import AUTH
from tests.support.processes import REPO

KEY_CACHE_SECONDS = 1.0


@pytest.fixture(scope="module")
async def client(test_env):
    with pytest.MonkeyPatch.context() as env:
        env.setenv("API_KEY_CACHE_SECONDS", str(KEY_CACHE_SECONDS))
        app = create_app()
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingest") as http,
        ):
            yield http


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def wire_time(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def new_key(client, tenant_id: str | None, role: str = "securityReader", **extra) -> dict:
    body = {"tenantId": tenant_id, "role": role, "userId": f"user-{uuid.uuid4().hex[:6]}@partner.example", **extra}
    created = await client.post("/v1/keys", json=body, headers=AUTH)
    assert created.status_code == 201, created.text
    return created.json()


def cli(*args: str, database_url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "shared.auth", *args],
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_create_use_list_revoke(client, tenant_id, db_pool):
    created = await client.post(
        "/v1/keys", json={"tenantId": tenant_id, "role": "securityReader", "userId": "rita@partner.example"},
        headers=AUTH,
    )
    assert created.status_code == 201, created.text
    key = created.json()
    assert key["key"].startswith("csp_") and uuid.UUID(key["keyId"])
    assert created.headers["location"] == f"/v1/keys/{key['keyId']}"
    assert {k: key[k] for k in ("tenantId", "role", "userId", "createdBy", "expiresDateTime",
                                "lastUsedDateTime", "revokedDateTime")} == {
        "tenantId": tenant_id, "role": "securityReader", "userId": "rita@partner.example",
        "createdBy": "operator", "expiresDateTime": None, "lastUsedDateTime": None, "revokedDateTime": None,
    }
    digest = await db_pool.fetchval("SELECT key_digest FROM auth.api_keys WHERE key_id = $1", uuid.UUID(key["keyId"]))

    before_use = datetime.now(UTC)
    used = await client.get(f"/v1/tenants/{tenant_id}/channels", headers=bearer(key["key"]))
    assert used.status_code == 200, used.text

    # The last use is written in the background (the request did not wait for it): soon, not at once.
    for _ in range(100):
        item = (await client.get(f"/v1/keys/{key['keyId']}", headers=AUTH)).json()
        if item["lastUsedDateTime"] is not None:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the last use was not written within 5 s")
    assert datetime.fromisoformat(item["lastUsedDateTime"]) >= before_use - timedelta(seconds=1)
    listed = await client.get("/v1/keys", params={"tenantId": tenant_id}, headers=AUTH)
    assert listed.status_code == 200, listed.text
    [item] = listed.json()["value"]
    assert item["keyId"] == key["keyId"] and item["lastUsedDateTime"] is not None
    # Neither the key nor its digest is ever shown again.
    assert "key" not in item and key["key"] not in listed.text and digest not in listed.text
    one = await client.get(f"/v1/keys/{key['keyId']}", headers=AUTH)
    assert one.status_code == 200 and "key" not in one.json() and digest not in one.text

    revoked = await client.delete(f"/v1/keys/{key['keyId']}", headers=AUTH)
    assert revoked.status_code == 204, revoked.text
    refused = await client.get(f"/v1/tenants/{tenant_id}/channels", headers=bearer(key["key"]))
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["www-authenticate"] == "Bearer"

    assert (await client.delete(f"/v1/keys/{key['keyId']}", headers=AUTH)).status_code == 204  # done already
    assert (await client.get("/v1/keys", params={"tenantId": tenant_id}, headers=AUTH)).json()["value"] == []
    with_revoked = await client.get(
        "/v1/keys", params={"tenantId": tenant_id, "includeRevoked": "true"}, headers=AUTH
    )
    assert [k["keyId"] for k in with_revoked.json()["value"]] == [key["keyId"]]
    assert with_revoked.json()["value"][0]["revokedDateTime"] is not None
    # Gone as after any DELETE, unless revoked keys are asked for.
    assert (await client.get(f"/v1/keys/{key['keyId']}", headers=AUTH)).status_code == 404
    shown = await client.get(f"/v1/keys/{key['keyId']}", params={"includeRevoked": "true"}, headers=AUTH)
    assert shown.status_code == 200 and shown.json()["revokedDateTime"] is not None

    missing = await client.delete(f"/v1/keys/{uuid.uuid4()}", headers=AUTH)
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    not_an_id = await client.delete("/v1/keys/not-a-key-id", headers=AUTH)
    assert not_an_id.status_code == 422


async def test_an_expired_key_is_401_expired_key(client, tenant_id):
    past = await client.post(
        "/v1/keys",
        json={"tenantId": tenant_id, "role": "securityReader", "userId": "r",
              "expiresDateTime": wire_time(datetime.now(UTC) - timedelta(minutes=1))},
        headers=AUTH,
    )
    assert past.status_code == 422 and past.json()["errors"][0]["field"] == "expiresDateTime"
    for user_id in ("ann\nBcc: x", "ann\x85"):  # the actor of events and audit entries: one clean line
        refused = await client.post("/v1/keys", json={"tenantId": tenant_id, "role": "securityReader",
                                                      "userId": user_id}, headers=AUTH)
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "userId"

    expires = datetime.now(UTC) + timedelta(seconds=2)
    key = await new_key(client, tenant_id, expiresDateTime=wire_time(expires))
    assert datetime.fromisoformat(key["expiresDateTime"]) == expires
    assert (await client.get(f"/v1/tenants/{tenant_id}/channels", headers=bearer(key["key"]))).status_code == 200
    await asyncio.sleep((expires - datetime.now(UTC)).total_seconds() + 0.1)
    expired = await client.get(f"/v1/tenants/{tenant_id}/channels", headers=bearer(key["key"]))
    assert expired.status_code == 401
    assert expired.json()["detail"].startswith("expired key")
    assert expired.headers["content-type"] == "application/problem+json"


async def test_a_key_over_its_rate_is_429_with_retry_after_then_recovers(client, tenant_id):
    key = await new_key(client, tenant_id, ratePerSecond=1, rateBurst=3)
    url = f"/v1/tenants/{tenant_id}/channels"
    answers = [await client.get(url, headers=bearer(key["key"])) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    limited = answers[-1]
    assert limited.headers["content-type"] == "application/problem+json"
    assert limited.headers["retry-after"] == "1"
    assert key["keyId"] in limited.json()["detail"]
    # Another key of the same tenant has a bucket of its own.
    other = await new_key(client, tenant_id)
    assert (await client.get(url, headers=bearer(other["key"]))).status_code == 200

    await asyncio.sleep(int(limited.headers["retry-after"]) + 0.05)
    assert (await client.get(url, headers=bearer(key["key"]))).status_code == 200


async def test_keys_of_a_tenant_cannot_manage_keys(client, tenant_id):
    victim = await new_key(client, tenant_id)
    for role in Role:
        key = bearer((await new_key(client, tenant_id, role.value))["key"])
        for method, url, body in (
            ("POST", "/v1/keys", {"tenantId": tenant_id, "role": "adminAgent", "userId": "mallory"}),
            ("POST", "/v1/keys", {"tenantId": None, "role": "adminAgent", "userId": "mallory"}),
            ("GET", "/v1/keys", None),
            ("GET", f"/v1/keys?tenantId={tenant_id}", None),
            ("GET", f"/v1/keys/{victim['keyId']}", None),
            ("DELETE", f"/v1/keys/{victim['keyId']}", None),
        ):
            answer = await client.request(method, url, json=body, headers=key)
            assert answer.status_code == 403, (role, method, url, answer.text)
            assert answer.headers["content-type"] == "application/problem+json"
    assert (await client.get("/v1/keys")).status_code == 401
    # The victim still works: nothing was revoked.
    assert (await client.get(f"/v1/tenants/{tenant_id}/channels", headers=bearer(victim["key"]))).status_code == 200


async def test_an_operator_key_of_the_database_manages_keys(client, tenant_id):
    operator = await new_key(client, None, "adminAgent")
    assert operator["tenantId"] is None
    made = await client.post(
        "/v1/keys", json={"tenantId": tenant_id, "role": "securityReader", "userId": "r"},
        headers=bearer(operator["key"]),
    )
    assert made.status_code == 201, made.text
    assert made.json()["createdBy"] == operator["userId"]
    # Every tenant, but not an operator: a reader of every tenant may not.
    reader_of_all = await new_key(client, None, "securityReader")
    assert (await client.get("/v1/keys", headers=bearer(reader_of_all["key"]))).status_code == 403


async def test_keys_list_in_pages_newest_first(client, tenant_id):
    made = [(await new_key(client, tenant_id))["keyId"] for _ in range(5)]
    seen: list[str] = []
    url = f"/v1/keys?tenantId={tenant_id}&top=2"
    while url:
        page = await client.get(url, headers=AUTH)
        assert page.status_code == 200, page.text
        assert len(page.json()["value"]) <= 2
        seen += [k["keyId"] for k in page.json()["value"]]
        url = page.json().get("@odata.nextLink")
        assert url is None or url.startswith("/v1/keys?")
    assert seen == made[::-1]
    out_of_range = json.dumps(["9999-12-31T23:59:59-14:00", str(uuid.uuid4())]).encode()
    for token in ("not-ours", base64.urlsafe_b64encode(out_of_range).decode()):
        bad = await client.get("/v1/keys", params={"skiptoken": token}, headers=AUTH)
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.skiptoken"


async def test_the_cli_creates_lists_and_revokes_and_a_revocation_reaches_the_api_within_the_cache_time(
    client, tenant_id, test_env
):
    database_url = test_env["DATABASE_URL"]
    made = cli("create-key", "--tenant", tenant_id, "--role", "securityAdministrator", "--user", "sam",
               "--expires", wire_time(datetime.now(UTC) + timedelta(days=1)), database_url=database_url)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("csp_") and "\n" not in key
    assert (await client.get(f"/v1/tenants/{tenant_id}/channels", headers=bearer(key))).status_code == 200

    listed = cli("list-keys", "--tenant", tenant_id, database_url=database_url)
    assert listed.returncode == 0, listed.stderr
    [line] = [line for line in listed.stdout.splitlines() if tenant_id in line]
    key_id = line.split()[0]
    assert uuid.UUID(key_id) and "securityAdministrator" in line and "sam" in line and key not in listed.stdout

    revoked = cli("revoke-key", key_id, database_url=database_url)
    assert revoked.returncode == 0, revoked.stderr
    await asyncio.sleep(KEY_CACHE_SECONDS + 0.2)
    assert (await client.get(f"/v1/tenants/{tenant_id}/channels", headers=bearer(key))).status_code == 401

    again = cli("revoke-key", key_id, database_url=database_url)
    assert again.returncode == 0 and "already revoked" in again.stdout
    unknown = cli("revoke-key", str(uuid.uuid4()), database_url=database_url)
    assert unknown.returncode == 1 and "no key" in unknown.stderr


async def test_create_key_keeps_working_for_scripts(client, tenant_id, test_env):
    key = await create_key(test_env["DATABASE_URL"], tenant_id, Role.security_reader, "script")
    assert (await client.get(f"/v1/tenants/{tenant_id}/channels", headers=bearer(key))).status_code == 200


async def test_no_key_is_made_for_an_offboarded_tenant(client, tenant_id, db_pool):
    offboarded = await client.post(f"/v1/tenants/{tenant_id}/offboarding",
                                   json={"dryRun": False, "confirmTenantId": tenant_id}, headers=AUTH)
    assert offboarded.status_code == 202, offboarded.text
    refused = await client.post("/v1/keys", json={"tenantId": tenant_id, "role": "adminAgent", "userId": "late"},
                                headers=AUTH)
    assert refused.status_code == 410, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["detail"].startswith(
        f"tenant {tenant_id} was offboarded at {offboarded.json()['offboardedDateTime']}")
    assert await db_pool.fetchval("SELECT count(*) FROM auth.api_keys WHERE tenant_id = $1", tenant_id) == 0
    # Another tenant, and a key of every tenant, are made as ever.
    await new_key(client, f"{tenant_id}-other")
    await new_key(client, None)
