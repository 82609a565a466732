"""``csp-triage webhook-secrets list | rotate | revoke``: a tenant's inbound webhook secrets through the
write API, against the four services running as processes."""

from __future__ import annotations

import json

import httpx

from shared.webhooks import sign_headers
from tests.cli.running import csp_triage, rows_of, without


async def signed_alert_status(system, tenant_id: str, secret: str) -> int:
    body = json.dumps({"id": "signed-by-cli-secret", "severity": "low"}).encode()
    headers = {"content-type": "application/json", **sign_headers(secret, body)}
    async with httpx.AsyncClient(timeout=15) as http:
        answer = await http.post(f"{system['ingest'].url}/v1/tenants/{tenant_id}/alerts", content=body,
                                 headers=headers)
    return answer.status_code


async def test_secrets_are_rotated_listed_and_revoked(system, tenant_id, env):
    none = await csp_triage("webhook-secrets", "list", env=env)
    assert none.code == 0, none.err
    assert none.out.split()[:3] == ["SECRET", "ID", "CREATED"] and rows_of(none.out) == {}
    assert "default secret" in none.err

    first = json.loads((await csp_triage("webhook-secrets", "rotate", "--json", env=env)).out)
    assert first["secret"].startswith("whsec_") and first["revokedSecretIds"] == []
    shown = await csp_triage("webhook-secrets", "rotate", env=env)
    assert shown.code == 0, shown.err
    assert "shown this once" in shown.err
    second_id = next(line.split()[1] for line in shown.out.splitlines() if line.startswith("secretId"))
    second_secret = next(line.split()[1] for line in shown.out.splitlines() if line.startswith("secret "))
    # The secret made here signs for the tenant on the running write API.
    assert await signed_alert_status(system, tenant_id, first["secret"]) == 202

    listed = await csp_triage("webhook-secrets", "list", env=env)
    assert list(rows_of(listed.out)) == [second_id, str(first["secretId"])]  # newest first
    assert first["secret"] not in listed.out and second_secret not in listed.out and listed.err == ""

    ended = await csp_triage("webhook-secrets", "revoke", env=env)  # --keep-newest 1: ends the rotation
    assert ended.code == 0, ended.err
    assert ended.out.split() == ["revokedSecretIds", f"[{first['secretId']}]"]
    assert list(rows_of((await csp_triage("webhook-secrets", "list", env=env)).out)) == [second_id]

    back = await csp_triage("webhook-secrets", "revoke", "--keep-newest", "0", "--json", env=env)
    assert json.loads(back.out) == {"revokedSecretIds": [int(second_id)]}
    assert "default secret" in back.err
    after = json.loads((await csp_triage("--json", "webhook-secrets", "list", env=env)).out)
    assert after == {"tenantId": tenant_id, "usesDefaultSecret": True, "value": []}


async def test_bad_usage_exits_2_and_a_key_that_may_not_manage_exits_1(system, tenant_id, env):
    beyond = await csp_triage("webhook-secrets", "revoke", "--keep-newest", "2", env=env)
    assert beyond.code == 2 and "--keep-newest" in beyond.err
    no_tenant = await csp_triage("webhook-secrets", "list", env=without(env, "CSP_TRIAGE_TENANT"))
    assert no_tenant.code == 2 and "CSP_TRIAGE_TENANT" in no_tenant.err

    reader = json.loads((await csp_triage("keys", "create", "--role", "securityReader", "--user", "rita",
                                          "--json", env=env)).out)
    as_reader = {**env, "CSP_TRIAGE_API_KEY": reader["key"]}
    assert (await csp_triage("webhook-secrets", "list", env=as_reader)).code == 0
    refused = await csp_triage("webhook-secrets", "rotate", env=as_reader)
    assert (refused.code, refused.out) == (1, "")
    assert refused.err.startswith("Forbidden: role securityReader may only read"), refused.err
