"""Each tenant's escalation chain on the write API (``/v1/tenants/{t}/escalation-chain``): real
PostgreSQL and Kafka, the write API in-process.

A change (set, replaced, cleared) is, in one transaction, the row, its audit entry and an
``escalation-chain-changed`` event on the compacted ``escalation-chains`` topic (key: the tenant);
a PUT of the chain in force, or a refused one, changes nothing and tells nothing.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from services.ingest import escalation_store
from shared.events import Topic
from tests.conftest import AUTH
from tests.services.ingest.support import running_ingest, topic_records

CHAIN = {"steps": [
    {"afterMinutes": 60, "email": "Lead@Partner.Example"},
    {"afterMinutes": 240, "channel": "jira"},
    {"afterMinutes": 240, "email": "cto@partner.example"},
]}
# As stored and told: the address normalised (its domain lower-cased), every step naming both fields.
CHAIN_OUT = [
    {"afterMinutes": 60, "email": "Lead@partner.example", "channel": None},
    {"afterMinutes": 240, "email": None, "channel": "jira"},
    {"afterMinutes": 240, "email": "cto@partner.example", "channel": None},
]
SHORTER = {"steps": [{"afterMinutes": 0, "channel": "teams-soc"}]}


def when(text: str) -> datetime:
    return datetime.fromisoformat(text)


def url(tenant_id: str) -> str:
    return f"/v1/tenants/{tenant_id}/escalation-chain"


async def chain_events(test_env, tenant_id: str, count: int | None = None) -> list[dict]:
    """The tenant's records on the topic: ``count`` of them, or with none every one there is."""
    records = await topic_records(test_env, Topic.escalation_chains, tenant_id, count=count)
    return [r for r in records if r["key"] == tenant_id]


async def audit_entries(client, tenant_id: str) -> list[dict]:
    answer = await client.get(f"/v1/tenants/{tenant_id}/audit", headers=AUTH)
    assert answer.status_code == 200, answer.text
    return list(reversed(answer.json()["value"]))  # oldest first


async def bearer_of(client, tenant_id: str, role: str) -> dict[str, str]:
    created = await client.post("/v1/keys", json={"tenantId": tenant_id, "role": role, "userId": f"{role}-user"},
                                headers=AUTH)
    assert created.status_code == 201, created.text
    return {"Authorization": f"Bearer {created.json()['key']}"}


async def test_set_replace_and_clear_are_each_one_event_and_one_audit_entry(test_env, tenant_id):
    async with running_ingest() as client:
        assert (await client.get(url(tenant_id), headers=AUTH)).status_code == 404

        created = await client.put(url(tenant_id), json=CHAIN, headers=AUTH)
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["steps"] == CHAIN_OUT
        assert body["updatedBy"] == "operator"
        assert body["createdDateTime"] == body["updatedDateTime"] and body["updatedDateTime"].endswith("Z")
        assert (await client.get(url(tenant_id), headers=AUTH)).json() == body

        again = await client.put(url(tenant_id), json=CHAIN, headers=AUTH)  # the chain in force: no change
        assert again.status_code == 200 and again.json() == body

        replaced = await client.put(url(tenant_id), json=SHORTER, headers=AUTH)
        assert replaced.status_code == 200, replaced.text
        assert replaced.json()["steps"] == [{"afterMinutes": 0, "email": None, "channel": "teams-soc"}]
        assert replaced.json()["createdDateTime"] == body["createdDateTime"]
        assert when(replaced.json()["updatedDateTime"]) > when(body["updatedDateTime"])

        assert (await client.delete(url(tenant_id), headers=AUTH)).status_code == 204
        assert (await client.get(url(tenant_id), headers=AUTH)).status_code == 404
        gone = await client.delete(url(tenant_id), headers=AUTH)
        assert gone.status_code == 404 and gone.headers["content-type"] == "application/problem+json"

        # Set again after its removal: a creation.
        recreated = await client.put(url(tenant_id), json=SHORTER, headers=AUTH)
        assert recreated.status_code == 201, recreated.text
        assert when(recreated.json()["createdDateTime"]) > when(body["createdDateTime"])

        await chain_events(test_env, tenant_id, count=4)
        entries = await audit_entries(client, tenant_id)
    records = await chain_events(test_env, tenant_id)  # read to the end: no fifth

    assert [r["headers"]["eventType"] for r in records] == ["escalation-chain-changed"] * 4
    set_event, replaced_event, cleared_event, recreated_event = (r["value"] for r in records)
    assert {v["tenantId"] for v in (set_event, replaced_event, cleared_event)} == {tenant_id}
    assert set_event["steps"] == CHAIN_OUT
    assert replaced_event["steps"] == [{"afterMinutes": 0, "email": None, "channel": "teams-soc"}]
    assert cleared_event["steps"] is None
    assert recreated_event["steps"] == replaced_event["steps"]
    # Each change's time is the one the API answered with, later than the one before.
    assert set_event["occurredDateTime"] == body["updatedDateTime"]
    assert replaced_event["occurredDateTime"] == replaced.json()["updatedDateTime"]
    times = [when(v["occurredDateTime"]) for v in (set_event, replaced_event, cleared_event, recreated_event)]
    assert times == sorted(times) and len(set(times)) == 4

    assert [(e["action"], e["target"], e["userId"]) for e in entries] == [
        ("escalation-chain-set", "escalation-chain", "operator"),
        ("escalation-chain-set", "escalation-chain", "operator"),
        ("escalation-chain-cleared", "escalation-chain", "operator"),
        ("escalation-chain-set", "escalation-chain", "operator"),
    ]
    assert entries[0]["changes"] == {"steps": [
        {"afterMinutes": 60, "email": "Lead@partner.example"},
        {"afterMinutes": 240, "channel": "jira"},
        {"afterMinutes": 240, "email": "cto@partner.example"},
    ]}
    assert entries[2]["changes"] == {}
    assert entries[0]["occurredDateTime"] == body["updatedDateTime"]


@pytest.mark.parametrize(
    ("steps", "field", "says"),
    [
        ([], "steps", "at least 1"),
        ([{"afterMinutes": m, "email": "a@partner.example"} for m in range(11)], "steps", "at most 10"),
        ([{"afterMinutes": 5, "email": "a@partner.example"},
          {"afterMinutes": 10, "email": "b@partner.example", "channel": "jira"}], "steps[1]", "exactly one"),
        ([{"afterMinutes": 5}], "steps[0]", "exactly one"),
        ([{"afterMinutes": 5, "email": "not an address"}], "steps[0].email", "not a valid e-mail address"),
        ([{"afterMinutes": 5, "channel": "no spaces"}], "steps[0].channel", "pattern"),
        ([{"afterMinutes": 5, "channel": "x" * 65}], "steps[0].channel", "at most 64"),
        ([{"afterMinutes": 10081, "email": "a@partner.example"}], "steps[0].afterMinutes", "10080"),
        ([{"afterMinutes": -1, "email": "a@partner.example"}], "steps[0].afterMinutes", "0"),
        ([{"afterMinutes": True, "email": "a@partner.example"}], "steps[0].afterMinutes", "integer"),
        ([{"afterMinutes": 60, "email": "a@partner.example"}, {"afterMinutes": 240, "channel": "jira"},
          {"afterMinutes": 30, "email": "b@partner.example"}], "steps", "steps[2]"),
    ],
)
async def test_a_chain_against_the_rules_is_422_naming_the_step_and_changes_nothing(
    test_env, tenant_id, steps, field, says
):
    async with running_ingest() as client:
        assert (await client.put(url(tenant_id), json=SHORTER, headers=AUTH)).status_code == 201
        refused = await client.put(url(tenant_id), json={"steps": steps}, headers=AUTH)
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        [error] = refused.json()["errors"]
        assert error["field"] == field and says in error["message"], error
        assert (await client.get(url(tenant_id), headers=AUTH)).json()["steps"][0]["channel"] == "teams-soc"
        entries = await audit_entries(client, tenant_id)
        await chain_events(test_env, tenant_id, count=1)
    assert len(await chain_events(test_env, tenant_id)) == 1
    assert [e["action"] for e in entries] == ["escalation-chain-set"]


async def test_managing_takes_the_manage_permission_reading_the_read_one(test_env, tenant_id):
    async with running_ingest() as client:
        reader = await bearer_of(client, tenant_id, "securityReader")
        administrator = await bearer_of(client, tenant_id, "securityAdministrator")
        other_tenant_admin = await bearer_of(client, f"{tenant_id}-other", "adminAgent")
        own_admin = await bearer_of(client, tenant_id, "adminAgent")

        for key in (reader, administrator, other_tenant_admin):
            assert (await client.put(url(tenant_id), json=CHAIN, headers=key)).status_code == 403
        assert (await client.get(url(tenant_id), headers=reader)).status_code == 404  # may read: there is none
        assert (await client.put(url(tenant_id), json=CHAIN, headers=own_admin)).status_code == 201
        shown = await client.get(url(tenant_id), headers=reader)
        assert shown.status_code == 200 and shown.json()["updatedBy"] == "adminAgent-user"
        assert (await client.get(url(tenant_id), headers=other_tenant_admin)).status_code == 403
        for key in (reader, administrator, other_tenant_admin):
            assert (await client.delete(url(tenant_id), headers=key)).status_code == 403
        assert (await client.put(url(tenant_id), json=CHAIN)).status_code == 401
        assert (await client.get(url(tenant_id), headers=reader)).status_code == 200  # still there
        [record] = await chain_events(test_env, tenant_id, count=1)
    assert record["value"]["steps"] == CHAIN_OUT


async def test_a_change_that_rolls_back_tells_nothing(test_env, tenant_id, db_pool, monkeypatch):
    async def audit_fails(*args, **kwargs):
        raise ConnectionError("injected: the audit entry could not be written")

    async with running_ingest() as client:
        assert (await client.put(url(tenant_id), json=SHORTER, headers=AUTH)).status_code == 201
        with monkeypatch.context() as patch:
            patch.setattr(escalation_store, "record_audit", audit_fails)
            replaced = await client.put(url(tenant_id), json=CHAIN, headers=AUTH)
            cleared = await client.delete(url(tenant_id), headers=AUTH)
        assert [replaced.status_code, cleared.status_code] == [503, 503], replaced.text
        assert (await client.get(url(tenant_id), headers=AUTH)).json()["steps"][0]["channel"] == "teams-soc"
        assert (await client.put(url(tenant_id), json=CHAIN, headers=AUTH)).status_code == 200
        await chain_events(test_env, tenant_id, count=2)
        waiting = await db_pool.fetchval(
            "SELECT count(*) FROM ingest.outbox WHERE convert_from(key, 'UTF8') = $1", tenant_id)
    records = await chain_events(test_env, tenant_id)
    assert [r["value"]["steps"][0].get("channel") for r in records] == ["teams-soc", None]
    assert waiting == 0
