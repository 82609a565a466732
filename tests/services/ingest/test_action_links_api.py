"""One-click responses on the write API (``/v1/actions/{token}``): real PostgreSQL and Kafka, the write
API in-process, links signed with ``shared.action_links`` and the test settings' keys.

GET shows a page and changes nothing; POST records the response as the link's recipient, once; a
replayed, expired, tampered or foreign link, or one for an unknown alert, changes nothing and says so
(an HTML page, or a problem document for a JSON client); never a key, never a 5xx.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx

from services.ingest.config import get_settings
from shared.action_links import Action, sign_action_link
from shared.wire import utcnow
from tests.conftest import AUTH
from tests.services.ingest.support import alert_records, running_ingest

RECIPIENT = "soc@partner.example"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON = {"Accept": "application/json"}


def link(tenant_id: str, alert_id: str, action: Action = Action.acknowledge, *, keys: list[str] | None = None,
         issued_ago: timedelta = timedelta(0)) -> str:
    settings = get_settings()
    token = sign_action_link(keys or settings.action_link_key_list, tenant_id=tenant_id, alert_id=alert_id,
                             action=action, recipient=RECIPIENT, now=utcnow() - issued_ago)
    return f"/v1/actions/{token}"


async def post_alert(client: httpx.AsyncClient, tenant_id: str, alert_id: str, **fields) -> None:
    alert = {"id": alert_id, "displayName": "Unusual sign-in <script>", "severity": "high",
             "customerTenantId": "customer-1", **fields}
    answer = await client.post(f"/v1/tenants/{tenant_id}/alerts", json=alert, headers=AUTH)
    assert answer.status_code == 202, answer.text


async def stored(db_pool, tenant_id: str, alert_id: str) -> tuple[str, int]:
    row = await db_pool.fetchrow(
        "SELECT alert->>'status' AS status, version FROM ingest_alert_state WHERE tenant_id = $1 AND alert_id = $2",
        tenant_id, alert_id)
    return row["status"], row["version"]


async def used_links(db_pool, tenant_id: str) -> list[tuple[str, str, str]]:
    rows = await db_pool.fetch(
        "SELECT alert_id, action, recipient FROM used_action_links WHERE tenant_id = $1 ORDER BY used_at", tenant_id)
    return [(r["alert_id"], r["action"], r["recipient"]) for r in rows]


def assert_kept_to_itself(answer: httpx.Response) -> None:
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]


async def test_get_changes_nothing_post_records_the_response_as_the_recipient_once(
    test_env, tenant_id, db_pool, kafka_bootstrap, topic_prefix
):
    async with running_ingest() as client:
        await post_alert(client, tenant_id, "a1")
        url = link(tenant_id, "a1")
        # A mail scanner opens the link, twice; a link checker asks HEAD: nothing changes. No key.
        for _ in range(2):
            shown = await client.get(url)
            assert shown.status_code == 200, shown.text
            assert shown.headers["content-type"].startswith("text/html")
            assert_kept_to_itself(shown)
            assert '<form method="post">' in shown.text and "Confirm: Acknowledge" in shown.text
            assert RECIPIENT in shown.text and "customer-1" in shown.text and "high" in shown.text
            assert "Unusual sign-in &lt;script&gt;" in shown.text  # autoescaped
        assert (await client.head(url)).status_code == 200
        assert await stored(db_pool, tenant_id, "a1") == ("active", 1)
        assert await used_links(db_pool, tenant_id) == []

        # The form posts to the same URL: recorded, by the recipient.
        confirmed = await client.post(url, content=b"", headers=FORM)
        assert confirmed.status_code == 200, confirmed.text
        assert "Recorded" in confirmed.text and "investigating" in confirmed.text
        assert_kept_to_itself(confirmed)
        assert await stored(db_pool, tenant_id, "a1") == ("investigating", 2)
        assert await used_links(db_pool, tenant_id) == [("a1", "acknowledge", RECIPIENT)]

        # A replay (a double click, the back button): 409, nothing changes; a JSON client gets a problem.
        replayed = await client.post(url, content=b"", headers=FORM)
        assert replayed.status_code == 409 and "already used" in replayed.text
        assert replayed.headers["content-type"].startswith("text/html")
        assert_kept_to_itself(replayed)
        as_json = await client.post(url, headers=JSON)
        assert as_json.status_code == 409
        assert as_json.headers["content-type"] == "application/problem+json"
        assert as_json.json()["status"] == 409
        shown_after = await client.get(url)
        assert shown_after.status_code == 409 and '<form method="post">' not in shown_after.text
        assert await stored(db_pool, tenant_id, "a1") == ("investigating", 2)

        # Read while the write API runs: its relay may still be publishing (a new topic's leader).
        records = await alert_records(kafka_bootstrap, topic_prefix, tenant_id, at_least=2)
    assert [r["value"]["eventType"] for r in sorted(records, key=lambda r: r["offset"])] == [
        "alert-created", "alert-updated"]
    updated = max(records, key=lambda r: r["offset"])["value"]
    assert updated["actor"] == {"type": "user", "id": RECIPIENT}
    assert updated["changes"] == [{"field": "status", "from": "active", "to": "investigating"}]
    assert [(c["field"], c["to"], c["actor"]["id"]) for c in updated["statusChanges"]] == [
        ("status", "investigating", RECIPIENT)]
    assert updated["alert"]["activityLogs"][-1]["updatedBy"] == RECIPIENT


async def test_a_double_click_records_once(test_env, tenant_id, db_pool, kafka_bootstrap, topic_prefix):
    async with running_ingest() as client:
        await post_alert(client, tenant_id, "a1")
        url = link(tenant_id, "a1", Action.resolve_fraud)
        answers = await asyncio.gather(*(client.post(url, headers=FORM) for _ in range(4)))
        assert sorted(a.status_code for a in answers) == [200, 409, 409, 409], [a.text for a in answers]
        assert await used_links(db_pool, tenant_id) == [("a1", "resolve-fraud", RECIPIENT)]
        records = await alert_records(kafka_bootstrap, topic_prefix, tenant_id, at_least=2)
    assert [r["value"]["eventType"] for r in records] == ["alert-created", "alert-updated"]
    assert records[-1]["value"]["alert"]["resolvedReason"] == "fraud"
    assert records[-1]["value"]["alert"]["resolvedBy"] == RECIPIENT


async def test_expired_tampered_foreign_and_unknown_links_change_nothing(test_env, tenant_id, db_pool):
    max_age = timedelta(hours=get_settings().action_link_max_age_hours)
    async with running_ingest() as client:
        await post_alert(client, tenant_id, "a1")
        good = link(tenant_id, "a1")
        position = len("/v1/actions/") + 20
        tampered = good[:position] + ("A" if good[position] != "A" else "B") + good[position + 1:]
        refusals = {
            "expired": (link(tenant_id, "a1", issued_ago=max_age + timedelta(minutes=1)), 410, "expired"),
            "tampered": (tampered, 400, "not valid"),
            "foreign key": (link(tenant_id, "a1", keys=["another-deployment-key-of-32-chars!"]), 400, "not valid"),
            "not a token": ("/v1/actions/not-a-token", 400, "not valid"),
            "unknown alert": (link(tenant_id, "nowhere"), 404, "not found"),
        }
        for name, (url, status, says) in refusals.items():
            for method in ("GET", "POST"):
                page = await client.request(method, url, headers=FORM if method == "POST" else {})
                assert page.status_code == status, f"{name} {method}: {page.status_code} {page.text}"
                assert page.headers["content-type"].startswith("text/html"), name
                assert says in page.text.lower() and "Nothing was changed" in page.text, f"{name}: {page.text}"
                assert '<form method="post">' not in page.text
                assert_kept_to_itself(page)
                problem = await client.request(method, url, headers=JSON)
                assert problem.status_code == status, name
                assert problem.headers["content-type"] == "application/problem+json", name
                assert problem.json()["status"] == status and problem.json()["detail"], name
                assert_kept_to_itself(problem)
        assert await stored(db_pool, tenant_id, "a1") == ("active", 1)
        assert await used_links(db_pool, tenant_id) == []
        # The genuine link still works after all that.
        assert (await client.post(good, headers=FORM)).status_code == 200


async def test_an_action_that_changes_nothing_says_so_and_leaves_the_link_unused(test_env, tenant_id, db_pool):
    async with running_ingest() as client:
        await post_alert(client, tenant_id, "a1")
        acknowledge = link(tenant_id, "a1", Action.acknowledge)
        assert (await client.post(link(tenant_id, "a1", Action.resolve_legitimate), headers=FORM)).status_code == 200
        # Acknowledging never reopens a resolved alert.
        for method in ("GET", "POST"):
            page = await client.request(method, acknowledge, headers=FORM if method == "POST" else {})
            assert page.status_code == 200, page.text
            assert "Nothing to change" in page.text and "already resolved (legitimate)" in page.text
            assert '<form method="post">' not in page.text
        assert await stored(db_pool, tenant_id, "a1") == ("resolved", 2)
        assert await used_links(db_pool, tenant_id) == [("a1", "resolve-legitimate", RECIPIENT)]


async def test_a_response_to_an_alert_from_partner_center_is_queued_for_it(test_env, tenant_id, db_pool):
    async with running_ingest() as client:
        await post_alert(client, tenant_id, "pc-1")
        # As a poll of Partner Center leaves an alert it read: in step with Partner Center's copy.
        await db_pool.execute(
            "INSERT INTO graph_alert_sync (tenant_id, alert_id, state, last_synced_at) "
            "VALUES ($1, 'pc-1', 'synced', now())", tenant_id)
        assert (await client.post(link(tenant_id, "pc-1", Action.resolve_ignore), headers=FORM)).status_code == 200
    row = await db_pool.fetchrow(
        "SELECT state, pending_status, pending_resolved_reason, changed_by FROM graph_alert_sync "
        "WHERE tenant_id = $1 AND alert_id = 'pc-1'", tenant_id)
    assert dict(row) == {"state": "pending", "pending_status": "resolved", "pending_resolved_reason": "ignore",
                         "changed_by": RECIPIENT}


async def test_the_links_need_no_key_and_every_other_route_still_does(test_env, tenant_id):
    async with running_ingest() as client:
        await post_alert(client, tenant_id, "a1")
        # A key sent along (a browser never sends one) changes nothing either way.
        shown = await client.get(link(tenant_id, "a1"), headers={"Authorization": "Bearer not-a-key"})
        assert shown.status_code == 200, shown.text
        unkeyed = await client.post(f"/v1/tenants/{tenant_id}/alerts", json={"id": "a2"})
        assert unkeyed.status_code == 401
        unkeyed_read = await client.get(f"/v1/tenants/{tenant_id}/security-contact")
        assert unkeyed_read.status_code == 401
