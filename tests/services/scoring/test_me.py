"""``GET /v1/me`` of the read API, on a running scoring process: who the key is and what its role may do
(the page shows no write controls to a role that may only read)."""

from __future__ import annotations

import httpx

from shared.auth import Role, create_key
from tests.conftest import AUTH


async def me(process, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.get(f"{process.url}/v1/me", headers=headers)


async def test_the_operator_key(scoring):
    response = await me(scoring, AUTH)
    assert response.status_code == 200, response.text
    assert response.json() == {"userId": "operator", "role": "adminAgent", "tenantId": None, "keyId": "operator",
                               "permissions": ["read", "update-alerts", "set-contact", "manage"]}


async def test_a_tenant_key_of_each_role(scoring, scoring_database, tenant_id):
    for role, permissions in ((Role.security_reader, ["read"]),
                              (Role.security_administrator, ["read", "update-alerts", "set-contact"]),
                              (Role.admin_agent, ["read", "update-alerts", "set-contact", "manage"])):
        key = await create_key(scoring_database, tenant_id, role, f"{role.value}@partner.example")
        response = await me(scoring, {"Authorization": f"Bearer {key}"})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body.pop("keyId")  # the key's public id
        assert body == {"userId": f"{role.value}@partner.example", "role": role.value, "tenantId": tenant_id,
                        "permissions": permissions}


async def test_no_key_or_an_unknown_one_is_a_401_problem(scoring):
    for headers in ({}, {"Authorization": "Bearer not-a-key"}, {"Authorization": "Basic x"}):
        response = await me(scoring, headers)
        assert response.status_code == 401, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
