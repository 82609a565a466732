"""Bulk actions on a tenant's alerts (#18): ``POST /v1/tenants/{t}/alert-actions`` acknowledges, resolves or
assigns many alerts at once, named by id or by a filter; real PostgreSQL and Kafka, the write API in-process.

Each alert a status action changes gets its own ``alert-updated`` (its own status change, by the
caller, at the request's time: its own response and latency), through the one recording path; each
alert an assignment changes its own ``alert-assigned``. The answer says, per alert, what happened:
changed, unchanged (and why), or not found (listed, not fatal).
"""

from __future__ import annotations

import httpx

from shared.events import Topic
from tests.conftest import AUTH
from tests.services.ingest.support import alert_records, running_ingest, topic_records

OPERATOR_ACTOR = {"type": "user", "id": "operator"}


def bulk_url(tenant_id: str) -> str:
    return f"/v1/tenants/{tenant_id}/alert-actions"


async def post_alerts(client: httpx.AsyncClient, tenant_id: str, *alerts: dict) -> None:
    value = [{"displayName": "Unusual sign-in", "severity": "high", "customerTenantId": "customer-1", **alert}
             for alert in alerts]
    answer = await client.post(f"/v1/tenants/{tenant_id}/alerts", json={"value": value}, headers=AUTH)
    assert answer.status_code == 202, answer.text


async def patch_status(client: httpx.AsyncClient, tenant_id: str, alert_id: str, **change) -> None:
    answer = await client.patch(f"/v1/tenants/{tenant_id}/alerts/{alert_id}", json=change, headers=AUTH)
    assert answer.status_code == 202, answer.text


async def bulk(client: httpx.AsyncClient, tenant_id: str, body: dict, headers: dict | None = None) -> httpx.Response:
    return await client.post(bulk_url(tenant_id), json=body, headers=AUTH if headers is None else headers)


def outcomes(answer: httpx.Response) -> dict[str, str]:
    assert answer.status_code == 200, answer.text
    return {r["alertId"]: r["outcome"] for r in answer.json()["results"]}


async def versions(db_pool, tenant_id: str) -> dict[str, tuple[str, int]]:
    rows = await db_pool.fetch(
        "SELECT alert_id, alert->>'status' AS status, version FROM ingest_alert_state WHERE tenant_id = $1", tenant_id)
    return {r["alert_id"]: (r["status"], r["version"]) for r in rows}


def updates_by_alert(records: list[dict]) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for record in sorted(records, key=lambda r: r["offset"]):
        if record["value"]["eventType"] == "alert-updated":
            found.setdefault(record["value"]["alertId"], []).append(record["value"])
    return found


def assert_problem(answer: httpx.Response, status: int, field: str | None = None) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json", answer.headers
    if field is not None:
        assert field in [e["field"] for e in answer.json()["errors"]], answer.json()


async def test_acknowledge_by_ids_reports_each_alert_and_tells_one_update_per_changed_alert(
    test_env, tenant_id, db_pool, kafka_bootstrap, topic_prefix
):
    async with running_ingest() as client:
        await post_alerts(client, tenant_id, {"id": "a1"}, {"id": "a2"}, {"id": "a3"}, {"id": "a4"})
        await patch_status(client, tenant_id, "a3", status="investigating")
        await patch_status(client, tenant_id, "a4", status="resolved", resolvedReason="legitimate")

        answer = await bulk(client, tenant_id, {"action": "acknowledge",
                                                "alertIds": ["a1", "a2", "a3", "a4", "nowhere", "a1"]})
        assert outcomes(answer) == {"a1": "changed", "a2": "changed", "a3": "unchanged", "a4": "unchanged",
                                    "nowhere": "notFound"}
        body = answer.json()
        assert [r["alertId"] for r in body["results"]] == ["a1", "a2", "a3", "a4", "nowhere"]  # as named, once
        assert {k: body[k] for k in ("action", "matched", "changed", "unchanged", "notFound")} == {
            "action": "acknowledge", "matched": 5, "changed": 2, "unchanged": 2, "notFound": 1}
        details = {r["alertId"]: r["detail"] for r in body["results"]}
        assert "already investigating" in details["a3"]
        assert "resolved" in details["a4"] and "never reopens" in details["a4"]
        assert "no alert" in details["nowhere"]

        again = await bulk(client, tenant_id, {"action": "acknowledge", "alertIds": ["a1", "a2"]})
        assert outcomes(again) == {"a1": "unchanged", "a2": "unchanged"}
        assert await versions(db_pool, tenant_id) == {
            "a1": ("investigating", 2), "a2": ("investigating", 2), "a3": ("investigating", 2), "a4": ("resolved", 2)}
        records = await alert_records(kafka_bootstrap, topic_prefix, tenant_id, at_least=8)
    updates = updates_by_alert(records)
    assert {alert_id: len(events) for alert_id, events in updates.items()} == {"a1": 1, "a2": 1, "a3": 1, "a4": 1}
    for alert_id in ("a1", "a2"):  # each its own status change by the caller: its own response
        [updated] = updates[alert_id]
        assert updated["actor"] == OPERATOR_ACTOR
        assert [(c["field"], c["from"], c["to"], c["actor"]) for c in updated["statusChanges"]] == [
            ("status", "active", "investigating", OPERATOR_ACTOR)]


async def test_resolve_by_filter_changes_only_the_alerts_it_matches(
    test_env, tenant_id, db_pool, kafka_bootstrap, topic_prefix
):
    async with running_ingest() as client:
        await post_alerts(client, tenant_id, {"id": "h1"}, {"id": "h2"}, {"id": "low", "severity": "low"},
                          {"id": "other", "customerTenantId": "customer-2"}, {"id": "done"})
        await patch_status(client, tenant_id, "done", status="resolved", resolvedReason="fraud")
        answer = await bulk(client, tenant_id, {"action": "resolve", "resolvedReason": "fraud",
                                                "filter": {"severity": "high", "customerTenantId": "customer-1"}})
        assert outcomes(answer) == {"h1": "changed", "h2": "changed", "done": "unchanged"}
        assert answer.json()["matched"] == 3
        assert "already resolved as fraud" in {r["alertId"]: r["detail"] for r in answer.json()["results"]}["done"]

        # A filter on status: the investigating ones are none; the resolved ones are left as they are.
        assert outcomes(await bulk(client, tenant_id, {"action": "acknowledge",
                                                       "filter": {"status": "investigating"}})) == {}
        assert set(outcomes(await bulk(client, tenant_id, {"action": "acknowledge", "filter": {"status": "resolved"}})
                            ).values()) == {"unchanged"}
        assert await versions(db_pool, tenant_id) == {
            "h1": ("resolved", 2), "h2": ("resolved", 2), "low": ("active", 1), "other": ("active", 1),
            "done": ("resolved", 2)}
        records = await alert_records(kafka_bootstrap, topic_prefix, tenant_id, at_least=8)
    updates = updates_by_alert(records)
    assert sorted(updates) == ["done", "h1", "h2"] and len(updates["h1"]) == len(updates["h2"]) == 1
    for alert_id in ("h1", "h2"):
        alert = updates[alert_id][0]["alert"]
        assert (alert["status"], alert["resolvedReason"], alert["resolvedBy"]) == ("resolved", "fraud", "operator")


async def test_assign_by_ids_and_by_filter_tells_each_changed_alert_and_no_status_change(
    test_env, tenant_id, db_pool, kafka_bootstrap, topic_prefix
):
    async with running_ingest() as client:
        await post_alerts(client, tenant_id, {"id": "a1"}, {"id": "a2"}, {"id": "a3", "severity": "low"})
        single = await client.put(f"/v1/tenants/{tenant_id}/alerts/a2/assignee",
                                  json={"assignee": "kim@partner.example"}, headers=AUTH)
        assert single.status_code == 200, single.text

        answer = await bulk(client, tenant_id, {"action": "assign", "assignee": "Kim@Partner.Example",
                                                "alertIds": ["a1", "a2", "ghost"]})
        assert outcomes(answer) == {"a1": "changed", "a2": "unchanged", "ghost": "notFound"}
        assert "already assigned to kim@partner.example" in answer.json()["results"][1]["detail"]

        moved = await bulk(client, tenant_id, {"action": "assign", "assignee": "lee@partner.example",
                                               "filter": {"severity": "high"}})
        assert outcomes(moved) == {"a1": "changed", "a2": "changed"}
        unassigned = await bulk(client, tenant_id, {"action": "assign", "assignee": None, "alertIds": ["a1", "a3"]})
        assert outcomes(unassigned) == {"a1": "changed", "a3": "unchanged"}
        shown = await client.get(f"/v1/tenants/{tenant_id}/alerts/a2/assignee", headers=AUTH)
        assert shown.json()["assignee"] == "lee@partner.example"

        records = await topic_records(test_env, Topic.alert_triage, f"{tenant_id}:", count=5)
        alert_events = await alert_records(kafka_bootstrap, topic_prefix, tenant_id, at_least=3)
        assert {status_version[1] for status_version in (await versions(db_pool, tenant_id)).values()} == {1}
    told: dict[str, list[tuple]] = {}  # per alert, in order (one alert's records share a key, so a partition)
    for record in sorted(records, key=lambda r: r["offset"]):
        told.setdefault(record["value"]["alertId"], []).append(
            (record["value"]["assignee"], record["value"]["previousAssignee"]))
    assert told == {
        "a1": [("Kim@partner.example", None), ("lee@partner.example", "Kim@partner.example"),
               (None, "lee@partner.example")],
        "a2": [("kim@partner.example", None), ("lee@partner.example", "kim@partner.example")],
    }
    assert all(r["value"]["actor"] == OPERATOR_ACTOR for r in records)
    assert [r["value"]["eventType"] for r in alert_events] == ["alert-created"] * 3


async def test_more_alerts_than_a_call_may_change_is_422_saying_how_many_and_changes_nothing(
    test_env, tenant_id, db_pool
):
    async with running_ingest() as client:
        await post_alerts(client, tenant_id, *({"id": f"storm-{n:03}", "severity": "low"} for n in range(501)))
        refused = await bulk(client, tenant_id, {"action": "acknowledge", "filter": {"severity": "low"}})
        assert_problem(refused, 422, "filter")
        assert refused.json()["matched"] == 501
        assert "501" in refused.json()["detail"] and "500" in refused.json()["detail"]
        too_many_ids = await bulk(client, tenant_id, {"action": "acknowledge",
                                                      "alertIds": [f"storm-{n:03}" for n in range(501)]})
        assert_problem(too_many_ids, 422, "alertIds")
        # 500 is allowed.
        answer = await bulk(client, tenant_id, {"action": "acknowledge",
                                                "alertIds": [f"storm-{n:03}" for n in range(500)]})
        assert answer.json()["changed"] == 500
    assert sorted({v for v in (await versions(db_pool, tenant_id)).values()}) == [("active", 1), ("investigating", 2)]


async def test_a_malformed_bulk_action_is_422_naming_the_field_and_changes_nothing(test_env, tenant_id, db_pool):
    async with running_ingest() as client:
        await post_alerts(client, tenant_id, {"id": "a1"})
        for body, field in (
            ({"action": "acknowledge", "alertIds": ["a1"], "filter": {"severity": "high"}}, "body"),
            ({"action": "acknowledge"}, "body"),
            ({"action": "acknowledge", "alertIds": ["a1"], "filter": None}, "body"),
            ({"action": "acknowledge", "alertIds": None}, "alertIds"),
            ({"action": "acknowledge", "filter": {}}, "filter"),
            ({"action": "acknowledge", "filter": {"severity": "extreme"}}, "filter.severity"),
            ({"action": "acknowledge", "filter": {"owner": "me"}}, "filter.owner"),
            ({"action": "acknowledge", "alertIds": []}, "alertIds"),
            ({"action": "acknowledge", "alertIds": ["bad\nid"]}, "alertIds[0]"),
            ({"action": "resolve", "alertIds": ["a1"]}, "resolvedReason"),
            ({"action": "acknowledge", "resolvedReason": "fraud", "alertIds": ["a1"]}, "resolvedReason"),
            ({"action": "assign", "alertIds": ["a1"]}, "assignee"),
            ({"action": "assign", "assignee": "not an address", "alertIds": ["a1"]}, "assignee"),
            ({"action": "resolve", "resolvedReason": "fraud", "assignee": "a@partner.example", "alertIds": ["a1"]},
             "assignee"),
            ({"action": "delete", "alertIds": ["a1"]}, "action"),
        ):
            assert_problem(await bulk(client, tenant_id, body), 422, field)
    assert await versions(db_pool, tenant_id) == {"a1": ("active", 1)}


async def test_bulk_takes_the_permission_to_change_alerts_and_stays_within_the_tenant(test_env, tenant_id, db_pool):
    other = f"{tenant_id}-b"
    async with running_ingest() as client:
        await post_alerts(client, tenant_id, {"id": "a1"})
        keys = {}
        for owner, role in ((tenant_id, "securityReader"), (other, "adminAgent"), (tenant_id, "securityAdministrator")):
            created = await client.post("/v1/keys", json={"tenantId": owner, "role": role, "userId": f"{role}-user"},
                                        headers=AUTH)
            keys[role] = {"Authorization": f"Bearer {created.json()['key']}"}
        body = {"action": "acknowledge", "alertIds": ["a1"]}
        assert_problem(await bulk(client, tenant_id, body, keys["securityReader"]), 403)
        assert_problem(await bulk(client, tenant_id, body, keys["adminAgent"]), 403)  # another tenant's key
        assert_problem(await bulk(client, tenant_id, body, {}), 401)
        # Tenant B has no alert a1, whoever's it is; nor does its filter reach tenant A's.
        assert outcomes(await bulk(client, other, body)) == {"a1": "notFound"}
        assert outcomes(await bulk(client, other, {"action": "acknowledge", "filter": {"severity": "high"}})) == {}
        assert await versions(db_pool, tenant_id) == {"a1": ("active", 1)}
        done = await bulk(client, tenant_id, {**body, "action": "resolve", "resolvedReason": "ignore"},
                          keys["securityAdministrator"])
        assert outcomes(done) == {"a1": "changed"}
    assert await versions(db_pool, tenant_id) == {"a1": ("resolved", 2)}
