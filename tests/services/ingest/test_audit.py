"""The audit log of configuration changes, against the real PostgreSQL and Kafka.

Each change made through the write API (security contact, channels, API keys) or the CLI (webhook
secrets, API keys) is one entry naming who made it and with which key, written in the change's own
transaction; ``GET /v1/tenants/{t}/audit`` lists them newest first, in pages.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid

import httpx
import pytest

from services.ingest.app import create_app
from shared import outbox
from tests.conftest import AUTH
from tests.support.processes import REPO

CONTACT = {"name": "SOC team", "email": "soc@example.com", "phone": "+44 20 7123 4567"}
CHANNEL_SECRET = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
NEW_CHANNEL_SECRET = "whsec_ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="


@pytest.fixture(scope="module")
async def client(test_env):
    app = create_app()
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingest") as http,
    ):
        http.app = app
        yield http


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def new_key(client, tenant_id: str | None, role: str, user_id: str) -> dict:
    created = await client.post(
        "/v1/keys", json={"tenantId": tenant_id, "role": role, "userId": user_id}, headers=AUTH
    )
    assert created.status_code == 201, created.text
    return created.json()


async def audit(client, tenant_id: str, headers=AUTH, **params) -> list[dict]:
    answer = await client.get(f"/v1/tenants/{tenant_id}/audit", params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()["value"]


def run(module: str, *args: str, database_url: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done


def summary(entry: dict) -> tuple:
    return entry["action"], entry["target"], entry["userId"], entry["keyId"]


async def test_each_change_is_one_entry_with_its_actor_and_key(client, tenant_id, test_env):
    admin = await new_key(client, tenant_id, "adminAgent", "ada@partner.example")
    ada = bearer(admin["key"])
    contact_url = f"/v1/tenants/{tenant_id}/security-contact"
    channel_url = f"/v1/tenants/{tenant_id}/channels/jira"

    assert (await client.put(contact_url, json=CONTACT, headers=ada)).status_code == 200
    assert (await client.put(contact_url, json=CONTACT, headers=ada)).status_code == 200  # no change: no entry
    assert (await client.delete(contact_url, headers=ada)).status_code == 204
    assert (await client.delete(contact_url, headers=ada)).status_code == 204  # nothing to clear: no entry
    channel = {"url": "https://tickets.example/hook", "secret": CHANNEL_SECRET, "routes": [{"severities": ["high"]}]}
    assert (await client.put(channel_url, json=channel, headers=ada)).status_code == 201
    assert (await client.put(channel_url, json={**channel, "secret": NEW_CHANNEL_SECRET},
                             headers=ada)).status_code == 200
    assert (await client.delete(channel_url, headers=ada)).status_code == 204
    assert (await client.delete(channel_url, headers=ada)).status_code == 404  # nothing deleted: no entry
    reader = await new_key(client, tenant_id, "securityReader", "rita@partner.example")
    assert (await client.delete(f"/v1/keys/{reader['keyId']}", headers=AUTH)).status_code == 204
    assert (await client.delete(f"/v1/keys/{reader['keyId']}", headers=AUTH)).status_code == 204  # no entry
    database_url = test_env["DATABASE_URL"]
    secret = run("services.ingest.webhook_auth", "rotate", "--tenant", tenant_id, "--actor", "ops-olga",
                 database_url=database_url).stdout.strip()
    run("services.ingest.webhook_auth", "rotate", "--tenant", tenant_id, "--actor", "ops-olga",
        database_url=database_url)
    revoked = run("services.ingest.webhook_auth", "revoke", "--tenant", tenant_id, "--keep-newest", "1",
                  "--actor", "ops-olga", database_url=database_url)
    assert "revoked 1" in revoked.stdout
    cli_key = run("shared.auth", "create-key", "--tenant", tenant_id, "--role", "securityReader",
                  "--user", "dashboard", "--actor", "ops-olga", database_url=database_url).stdout.strip()

    entries = await audit(client, tenant_id)
    assert [summary(e) for e in reversed(entries)] == [
        ("key-created", f"keys/{admin['keyId']}", "operator", "operator"),
        ("security-contact-set", "security-contact", "ada@partner.example", admin["keyId"]),
        ("security-contact-cleared", "security-contact", "ada@partner.example", admin["keyId"]),
        ("channel-created", "channels/jira", "ada@partner.example", admin["keyId"]),
        ("channel-replaced", "channels/jira", "ada@partner.example", admin["keyId"]),
        ("channel-deleted", "channels/jira", "ada@partner.example", admin["keyId"]),
        ("key-created", f"keys/{reader['keyId']}", "operator", "operator"),
        ("key-revoked", f"keys/{reader['keyId']}", "operator", "operator"),
        ("webhook-secret-added", entries[3]["target"], "ops-olga", "cli"),
        ("webhook-secret-added", entries[2]["target"], "ops-olga", "cli"),
        ("webhook-secret-revoked", "webhook-secrets", "ops-olga", "cli"),
        ("key-created", entries[0]["target"], "ops-olga", "cli"),
    ]
    by_action = {e["action"]: e for e in entries}
    assert by_action["security-contact-set"]["changes"] == {
        "name": "SOC team", "email": "soc@example.com", "phone": "+442071234567"
    }
    assert by_action["channel-replaced"]["changes"] == {
        "kind": "webhook",
        "url": "https://tickets.example/hook",
        "routes": [{"severities": ["high"], "alertTypes": [], "customerTenantIds": [], "includeTest": False}],
        "escalation": False,
        "secretChanged": True,
    }
    assert by_action["key-revoked"]["changes"] == {"role": "securityReader", "userId": "rita@partner.example"}
    added = [e for e in entries if e["action"] == "webhook-secret-added"]
    assert added[0]["changes"]["revokedSecretIds"] == [] and added[1]["changes"]["revokedSecretIds"] == []
    first_secret_id = added[1]["changes"]["secretId"]
    assert by_action["webhook-secret-revoked"]["changes"] == {"revokedSecretIds": [first_secret_id]}
    assert all(e["tenantId"] == tenant_id and e["occurredDateTime"].endswith("Z") for e in entries)
    times = [e["occurredDateTime"] for e in entries]
    assert times == sorted(times, reverse=True)

    # No secret anywhere: neither the channel's, nor the webhook secret, nor any API key.
    text = json.dumps(entries)
    for value in (CHANNEL_SECRET, NEW_CHANNEL_SECRET, secret, admin["key"], reader["key"], cli_key):
        assert value not in text
        assert value.removeprefix("whsec_") not in text


async def test_pages_newest_first_by_position(client, tenant_id):
    for n in range(5):
        channel = {"url": f"https://tickets.example/{n}", "secret": CHANNEL_SECRET}
        assert (await client.put(f"/v1/tenants/{tenant_id}/channels/c{n}", json=channel,
                                 headers=AUTH)).status_code == 201
    url, pages, seen = f"/v1/tenants/{tenant_id}/audit?top=2", 0, []
    while url:
        page = await client.get(url, headers=AUTH)
        assert page.status_code == 200, page.text
        assert len(page.json()["value"]) <= 2
        seen += [e["target"] for e in page.json()["value"]]
        url = page.json().get("@odata.nextLink")
        assert url is None or url.startswith(f"/v1/tenants/{tenant_id}/audit?")
        pages += 1
        if pages == 1:  # a change arriving between pages does not shift the next ones
            assert (await client.delete(f"/v1/tenants/{tenant_id}/channels/c0", headers=AUTH)).status_code == 204
    assert pages == 3
    assert seen == [f"channels/c{n}" for n in range(4, -1, -1)]
    assert (await audit(client, tenant_id, top=1))[0]["action"] == "channel-deleted"

    for token in ("nope", base64.urlsafe_b64encode(b'["audit", true]').decode(),
                  base64.urlsafe_b64encode(b'["audit", 99999999999999999999]').decode()):
        bad = await client.get(f"/v1/tenants/{tenant_id}/audit", params={"skiptoken": token}, headers=AUTH)
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.skiptoken"
    too_big = await client.get(f"/v1/tenants/{tenant_id}/audit", params={"top": 1001}, headers=AUTH)
    assert too_big.status_code == 422


async def test_who_may_read_a_tenants_audit(client, tenant_id):
    other_tenant = f"tenant-{uuid.uuid4().hex[:10]}"
    for role in ("adminAgent", "securityAdministrator", "securityReader"):
        key = bearer((await new_key(client, tenant_id, role, f"{role}@a.example"))["key"])
        assert len(await audit(client, tenant_id, headers=key)) >= 1
        refused = await client.get(f"/v1/tenants/{other_tenant}/audit", headers=key)
        assert refused.status_code == 403, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert (await client.get("/v1/audit", headers=key)).status_code == 403
    assert (await client.get(f"/v1/tenants/{tenant_id}/audit")).status_code == 401


async def test_keys_of_every_tenant_are_in_the_deployment_log_only(client, tenant_id):
    operator = await new_key(client, None, "adminAgent", "second-operator")
    page = await client.get("/v1/audit", params={"top": 50}, headers=AUTH)
    assert page.status_code == 200, page.text
    mine = [e for e in page.json()["value"] if e["target"] == f"keys/{operator['keyId']}"]
    assert [(e["action"], e["tenantId"], e["userId"], e["keyId"]) for e in mine] == [
        ("key-created", None, "operator", "operator")
    ]
    # Made by that operator key: its own id is the key of the entry.
    made = await client.post("/v1/keys", json={"tenantId": tenant_id, "role": "securityReader", "userId": "r"},
                             headers=bearer(operator["key"]))
    [entry] = await audit(client, tenant_id)
    assert (entry["action"], entry["userId"], entry["keyId"]) == (
        "key-created", "second-operator", operator["keyId"]
    )
    assert entry["target"] == f"keys/{made.json()['keyId']}"


async def test_a_change_that_did_not_happen_is_not_audited(client, tenant_id, monkeypatch):
    async def events_not_written(*args, **kwargs):
        raise ConnectionError("injected: the database went away before the change's events were written")

    with monkeypatch.context() as patch:
        patch.setattr(outbox, "enqueue_many", events_not_written)
        failed = await client.put(f"/v1/tenants/{tenant_id}/security-contact", json=CONTACT, headers=AUTH)
    assert failed.status_code == 503, failed.text
    assert await audit(client, tenant_id) == []
    assert (await client.put(f"/v1/tenants/{tenant_id}/security-contact", json=CONTACT,
                             headers=AUTH)).status_code == 200
    assert [e["action"] for e in await audit(client, tenant_id)] == ["security-contact-set"]
