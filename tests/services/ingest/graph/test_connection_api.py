"""``PUT | GET | DELETE /v1/tenants/{t}/connections/graph`` of the write API, in-process, on the real
PostgreSQL (and Kafka, which the app starts with): a connection by client secret or certificate, its
secret sealed at rest and never answered nor audited, its state (polls, last error, alerts seen,
write-backs pending and failed), 422s naming the field, who may change it.

Connections whose poll state a test asserts are disabled: the session database is shared with the
``system`` fixture's write API, which polls every enabled connection it finds.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from services.ingest.graph import store
from services.ingest.graph.credentials import from_sealable
from shared.sealed import unseal
from shared.settings import CommonSettings
from tests.conftest import AUTH
from tests.services.ingest.support import running_ingest
from tests.support.graph_emulator import make_certificate

DIRECTORY = "72f988bf-86f1-41af-91ab-2d7cd011db47"
APP = "11111111-2222-3333-4444-555555555555"
SECRET = "Qx8Q~s3cret.value-from-the-portal_1234567"
CERTIFICATE, PUBLIC_CERTIFICATE = make_certificate()


@pytest_asyncio.fixture(scope="module")
async def client(test_env) -> AsyncIterator[httpx.AsyncClient]:
    async with running_ingest() as client:
        yield client


def url(tenant_id: str) -> str:
    return f"/v1/tenants/{tenant_id}/connections/graph"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def new_key(client, tenant_id: str, role: str) -> dict[str, str]:
    created = await client.post("/v1/keys", json={"tenantId": tenant_id, "role": role, "userId": f"{role}-user"},
                                headers=AUTH)
    assert created.status_code == 201, created.text
    return bearer(created.json()["key"])


def problem(answer: httpx.Response, status: int) -> dict:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    return answer.json()


async def test_a_client_secret_connection_is_put_shown_replaced_and_deleted_never_showing_its_secret(
    client, tenant_id, db_pool
):
    body = {"directoryId": DIRECTORY, "clientId": APP, "clientSecret": SECRET}
    created = await client.put(url(tenant_id), json=body, headers=AUTH)
    assert created.status_code == 201, created.text
    view = created.json()
    assert {k: view[k] for k in ("directoryId", "clientId", "credentialType", "certificateThumbprint", "enabled",
                                 "alertsSeen", "writeBacksPending", "writeBacksFailed")} == {
        "directoryId": DIRECTORY, "clientId": APP, "credentialType": "clientSecret", "certificateThumbprint": None,
        "enabled": True, "alertsSeen": 0, "writeBacksPending": 0, "writeBacksFailed": 0}
    assert view["createdDateTime"].endswith("Z") and view["nextPollDateTime"].endswith("Z")
    shown = await client.get(url(tenant_id), headers=AUTH)
    assert shown.status_code == 200 and shown.json()["clientId"] == APP

    # At rest: sealed under the deployment's key, the secret in it; never in clear.
    sealed = await db_pool.fetchval("SELECT sealed_credentials FROM graph_connections WHERE tenant_id = $1",
                                    tenant_id)
    assert SECRET not in sealed
    credentials = from_sealable(unseal(sealed, CommonSettings().sealing_key_list))
    assert (credentials.directory_id, credentials.client_id, credentials.client_secret) == (DIRECTORY, APP, SECRET)

    rotated = {**body, "clientSecret": "another-secret-value", "directoryId": "contoso.onmicrosoft.com",
               "enabled": False}
    replaced = await client.put(url(tenant_id), json=rotated, headers=AUTH)
    assert replaced.status_code == 200, replaced.text
    assert (replaced.json()["directoryId"], replaced.json()["enabled"], replaced.json()["nextPollDateTime"]) == (
        "contoso.onmicrosoft.com", False, None)  # disabled: no poll is due
    assert replaced.json()["createdDateTime"] == view["createdDateTime"]

    assert (await client.delete(url(tenant_id), headers=AUTH)).status_code == 204
    problem(await client.get(url(tenant_id), headers=AUTH), 404)
    problem(await client.delete(url(tenant_id), headers=AUTH), 404)

    audit = (await client.get(f"/v1/tenants/{tenant_id}/audit", headers=AUTH)).json()["value"]
    assert [(e["action"], e["target"]) for e in reversed(audit)] == [
        ("graph-connection-created", "connections/graph"),
        ("graph-connection-replaced", "connections/graph"),
        ("graph-connection-deleted", "connections/graph"),
    ]
    everything = json.dumps([view, replaced.json(), shown.json(), audit])
    assert SECRET not in everything and "another-secret-value" not in everything


async def test_a_certificate_connection_shows_the_thumbprint_entra_shows(client, tenant_id, db_pool):
    body = {"directoryId": "contoso.onmicrosoft.com", "clientId": APP, "certificate": CERTIFICATE, "enabled": False}
    created = await client.put(url(tenant_id), json=body, headers=AUTH)
    assert created.status_code == 201, created.text
    thumbprint = x509.load_pem_x509_certificate(PUBLIC_CERTIFICATE.encode()).fingerprint(hashes.SHA1()).hex().upper()
    assert (created.json()["credentialType"], created.json()["certificateThumbprint"]) == ("certificate", thumbprint)
    assert "PRIVATE KEY" not in created.text
    sealed = await db_pool.fetchval("SELECT sealed_credentials FROM graph_connections WHERE tenant_id = $1",
                                    tenant_id)
    assert "PRIVATE KEY" not in sealed
    assert from_sealable(unseal(sealed, CommonSettings().sealing_key_list)).certificate_pem == CERTIFICATE
    audit = (await client.get(f"/v1/tenants/{tenant_id}/audit", headers=AUTH)).json()["value"]
    assert audit[0]["changes"]["certificateThumbprint"] == thumbprint
    assert "PRIVATE KEY" not in json.dumps(audit)


EXPIRED, _ = make_certificate(not_valid_before=datetime.now(UTC) - timedelta(days=30),
                              not_valid_after=datetime.now(UTC) - timedelta(days=1))
ELLIPTIC, _ = make_certificate(key_type="ec")
VALID = {"directoryId": DIRECTORY, "clientId": APP}


@pytest.mark.parametrize(("body", "field", "words"), [
    (VALID, "clientSecret", "exactly one"),
    ({**VALID, "clientSecret": SECRET, "certificate": CERTIFICATE}, "clientSecret", "exactly one"),
    ({**VALID, "directoryId": "not a directory", "clientSecret": SECRET}, "directoryId", "pattern"),
    ({**VALID, "directoryId": "x" * 250 + ".com", "clientSecret": SECRET}, "directoryId", "at most"),
    ({**VALID, "clientId": "my-app", "clientSecret": SECRET}, "clientId", "pattern"),
    ({"clientId": APP, "clientSecret": SECRET}, "directoryId", "required"),
    ({**VALID, "clientSecret": ""}, "clientSecret", "at least"),
    ({**VALID, "certificate": PUBLIC_CERTIFICATE}, "certificate", "no private key"),
    ({**VALID, "certificate": EXPIRED}, "certificate", "expired"),
    ({**VALID, "certificate": ELLIPTIC}, "certificate", "not an RSA key"),
    ({**VALID, "certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"}, "certificate",
     "private key"),
], ids=["no-credential", "two-credentials", "bad-directory", "long-directory", "bad-client-id", "no-directory",
        "empty-secret", "public-certificate-only", "expired-certificate", "ec-certificate", "garbage-certificate"])
async def test_an_unusable_connection_is_422_naming_the_field_and_nothing_is_stored(
    client, tenant_id, db_pool, body, field, words
):
    answer = problem(await client.put(url(tenant_id), json=body, headers=AUTH), 422)
    assert field in [e["field"] for e in answer["errors"]], answer
    assert words in answer["detail"], answer
    assert SECRET not in json.dumps(answer) and "PRIVATE KEY" not in json.dumps(answer)
    assert await db_pool.fetchval("SELECT count(*) FROM graph_connections WHERE tenant_id = $1", tenant_id) == 0
    assert await db_pool.fetchval("SELECT count(*) FROM auth.audit_log WHERE tenant_id = $1", tenant_id) == 0


async def test_malformed_json_is_400(client, tenant_id):
    answer = await client.put(url(tenant_id), content=b'{"directoryId": ', headers={**AUTH,
                              "Content-Type": "application/json"})
    problem(answer, 400)


async def test_only_a_manager_of_the_tenant_changes_it_and_a_reader_sees_it(client, tenant_id):
    body = {**VALID, "clientSecret": SECRET, "enabled": False}
    reader = await new_key(client, tenant_id, "securityReader")
    responder = await new_key(client, tenant_id, "securityAdministrator")
    admin = await new_key(client, tenant_id, "adminAgent")
    stranger = await new_key(client, "another-tenant", "adminAgent")

    problem(await client.put(url(tenant_id), json=body), 401)
    for key in (reader, responder, stranger):
        problem(await client.put(url(tenant_id), json=body, headers=key), 403)
    assert (await client.put(url(tenant_id), json=body, headers=admin)).status_code == 201
    assert (await client.get(url(tenant_id), headers=reader)).status_code == 200
    problem(await client.get(url(tenant_id), headers=stranger), 403)
    for key in (reader, responder, stranger):
        problem(await client.delete(url(tenant_id), headers=key), 403)
    assert (await client.delete(url(tenant_id), headers=admin)).status_code == 204


async def test_the_state_shows_the_last_error_the_alerts_seen_and_the_write_backs(client, tenant_id, db_pool):
    assert (await client.put(url(tenant_id), json={**VALID, "clientSecret": SECRET, "enabled": False},
                             headers=AUTH)).status_code == 201
    now = datetime.now(UTC)
    async with db_pool.acquire() as conn, conn.transaction():
        await store.mark_seen(conn, tenant_id, [("a1", None), ("a2", None), ("a3", None)], now=now)
        for alert_id in ("a1", "a2"):
            await store.request_writeback(conn, tenant_id, alert_id, status="resolved", resolved_reason="fraud",
                                          changed_at=now, changed_by="ana")
        await conn.execute("UPDATE graph_alert_sync SET state = 'failed', last_error = '403 Forbidden'"
                           " WHERE tenant_id = $1 AND alert_id = 'a2'", tenant_id)
        await conn.execute(
            """UPDATE graph_connections SET last_poll_at = $2, last_success_at = $2::timestamptz - interval '1 hour',
                   last_error = 'GET securityAlerts: 503 ServiceUnavailable', last_error_at = $2,
                   last_poll_alerts = 3
               WHERE tenant_id = $1""", tenant_id, now)
    view = (await client.get(url(tenant_id), headers=AUTH)).json()
    stamp = now.isoformat().replace("+00:00", "Z")
    assert view["lastError"] == {"message": "GET securityAlerts: 503 ServiceUnavailable", "dateTime": stamp}
    assert (view["lastPollDateTime"], view["alertsSeen"], view["lastPollAlertCount"]) == (stamp, 3, 3)
    assert view["lastSuccessfulPollDateTime"] == (now - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert (view["writeBacksPending"], view["writeBacksFailed"]) == (1, 1)

    # A new PUT (a fixed secret) clears the error; the write-backs wait on, whatever the connection.
    view = (await client.put(url(tenant_id), json={**VALID, "clientSecret": "fixed", "enabled": False},
                             headers=AUTH)).json()
    assert (view["lastError"], view["writeBacksPending"], view["writeBacksFailed"]) == (None, 1, 1)
    assert (await client.delete(url(tenant_id), headers=AUTH)).status_code == 204
    assert (await client.put(url(tenant_id), json={**VALID, "clientSecret": SECRET, "enabled": False},
                             headers=AUTH)).json()["writeBacksPending"] == 1


async def test_a_change_that_rolls_back_is_not_stored(client, tenant_id, monkeypatch):
    async def audit_fails(*args, **kwargs):
        raise ConnectionError("injected: the audit entry could not be written")

    monkeypatch.setattr(store, "record_audit", audit_fails)
    answer = await client.put(url(tenant_id), json={**VALID, "clientSecret": SECRET}, headers=AUTH)
    problem(answer, 503)
    monkeypatch.undo()
    problem(await client.get(url(tenant_id), headers=AUTH), 404)
