"""A storm digest's bulk acknowledge link on the write API (``/v1/actions/bulk/{token}``): real
PostgreSQL and Kafka, the write API in-process, links signed with ``shared.action_links`` and the test
settings' keys.

GET lists the link's alerts and changes nothing; POST acknowledges those still active as the link's
recipient, once, and leaves the others (taken up, resolved, not known) as they are; a replayed,
expired, tampered or foreign link, or a one-alert link at the bulk URL (and the reverse), changes
nothing and says so (an HTML page, or a problem document for a JSON client); never a key, never a 5xx.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import timedelta

import httpx

from services.ingest.config import get_settings
from shared.action_links import sign_bulk_link
from shared.wire import utcnow
from tests.conftest import AUTH
from tests.services.ingest.support import alert_records, running_ingest
from tests.services.ingest.test_action_links_api import (
    FORM,
    JSON,
    RECIPIENT,
    assert_kept_to_itself,
    link,
    post_alert,
    stored,
    used_links,
)


def bulk_link(tenant_id: str, alert_ids: list[str], *, keys: list[str] | None = None,
              issued_ago: timedelta = timedelta(0)) -> str:
    settings = get_settings()
    token = sign_bulk_link(keys or settings.action_link_key_list, tenant_id=tenant_id, alert_ids=alert_ids,
                           recipient=RECIPIENT, now=utcnow() - issued_ago)
    return f"/v1/actions/bulk/{token}"


async def patch_alert(client: httpx.AsyncClient, tenant_id: str, alert_id: str, **change) -> None:
    answer = await client.patch(f"/v1/tenants/{tenant_id}/alerts/{alert_id}", json=change, headers=AUTH)
    assert answer.status_code in (200, 202), answer.text


async def known_ids(db_pool, tenant_id: str) -> set[str]:
    rows = await db_pool.fetch("SELECT alert_id FROM ingest_alert_state WHERE tenant_id = $1", tenant_id)
    return {r["alert_id"] for r in rows}


def events_by_alert(records: list[dict]) -> dict[str, list[dict]]:
    by_alert: dict[str, list[dict]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r["partition"], r["offset"])):
        by_alert[record["value"]["alert"]["id"]].append(record["value"])
    return by_alert


async def test_get_changes_nothing_post_acknowledges_the_active_ones_once_and_leaves_the_rest(
    test_env, tenant_id, db_pool, kafka_bootstrap, topic_prefix
):
    async with running_ingest() as client:
        for alert_id in ("s1", "s2", "s3", "taken", "done"):
            await post_alert(client, tenant_id, alert_id, displayName=f"Storm {alert_id} <b>")
        await patch_alert(client, tenant_id, "taken", status="investigating")
        await patch_alert(client, tenant_id, "done", status="resolved", resolvedReason="fraud")
        url = bulk_link(tenant_id, ["s1", "taken", "nowhere", "s2", "done", "s3"])

        # A mail scanner opens the link, twice; a link checker asks HEAD: nothing changes. No key.
        for _ in range(2):
            shown = await client.get(url)
            assert shown.status_code == 200, shown.text
            assert shown.headers["content-type"].startswith("text/html")
            assert_kept_to_itself(shown)
            assert '<form method="post">' in shown.text and "Acknowledge 3 alerts" in shown.text
            assert RECIPIENT in shown.text and "customer-1" in shown.text and "high" in shown.text
            assert "Storm s1 &lt;b&gt;" in shown.text and "Storm s3 &lt;b&gt;" in shown.text  # autoescaped
            assert "investigating" in shown.text and "resolved (fraud)" in shown.text
            assert "nowhere" in shown.text and "not known" in shown.text
        assert (await client.head(url)).status_code == 200
        assert [await stored(db_pool, tenant_id, a) for a in ("s1", "s2", "s3")] == [("active", 1)] * 3
        assert await used_links(db_pool, tenant_id) == []

        # The form posts to the same URL: the three still active are acknowledged, by the recipient.
        confirmed = await client.post(url, content=b"", headers=FORM)
        assert confirmed.status_code == 200, confirmed.text
        assert_kept_to_itself(confirmed)
        assert "Recorded" in confirmed.text and "3 alerts acknowledged" in confirmed.text
        assert "3 left as they were" in confirmed.text and "not known" in confirmed.text
        assert [await stored(db_pool, tenant_id, a) for a in ("s1", "s2", "s3")] == [("investigating", 2)] * 3
        assert await stored(db_pool, tenant_id, "taken") == ("investigating", 2)
        assert await stored(db_pool, tenant_id, "done") == ("resolved", 2)
        assert await known_ids(db_pool, tenant_id) == {"s1", "s2", "s3", "taken", "done"}  # none made up
        assert await used_links(db_pool, tenant_id) == [("s1", "acknowledge", RECIPIENT)]

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
        assert [await stored(db_pool, tenant_id, a) for a in ("s1", "s2", "s3")] == [("investigating", 2)] * 3

        # 5 created, 2 changes by the key, 3 acknowledgements: nothing more (the replay made no event).
        # (Read while the write API runs: its relay may still be publishing to the run's new topics.)
        events = events_by_alert(await alert_records(kafka_bootstrap, topic_prefix, tenant_id, at_least=10))
    assert {a: [e["eventType"] for e in evs] for a, evs in events.items()} == {
        "s1": ["alert-created", "alert-updated"], "s2": ["alert-created", "alert-updated"],
        "s3": ["alert-created", "alert-updated"], "taken": ["alert-created", "alert-updated"],
        "done": ["alert-created", "alert-updated"]}
    for alert_id in ("s1", "s2", "s3"):
        acknowledged = events[alert_id][-1]
        assert acknowledged["actor"] == {"type": "user", "id": RECIPIENT}
        assert acknowledged["changes"] == [{"field": "status", "from": "active", "to": "investigating"}]
        assert acknowledged["alert"]["activityLogs"][-1]["updatedBy"] == RECIPIENT
    assert events["taken"][-1]["actor"]["id"] != RECIPIENT


async def test_a_double_click_acknowledges_once(test_env, tenant_id, db_pool, kafka_bootstrap, topic_prefix):
    async with running_ingest() as client:
        for alert_id in ("d1", "d2"):
            await post_alert(client, tenant_id, alert_id)
        url = bulk_link(tenant_id, ["d1", "d2"])
        answers = await asyncio.gather(*(client.post(url, headers=FORM) for _ in range(4)))
        assert sorted(a.status_code for a in answers) == [200, 409, 409, 409], [a.text for a in answers]
        assert await used_links(db_pool, tenant_id) == [("d1", "acknowledge", RECIPIENT)]
        events = events_by_alert(await alert_records(kafka_bootstrap, topic_prefix, tenant_id, at_least=4))
    assert {a: [e["eventType"] for e in evs] for a, evs in events.items()} == {
        "d1": ["alert-created", "alert-updated"], "d2": ["alert-created", "alert-updated"]}


async def test_expired_tampered_foreign_and_one_alert_links_change_nothing(test_env, tenant_id, db_pool):
    max_age = timedelta(hours=get_settings().action_link_max_age_hours)
    async with running_ingest() as client:
        await post_alert(client, tenant_id, "a1")
        good = bulk_link(tenant_id, ["a1"])
        position = len("/v1/actions/bulk/") + 20
        tampered = good[:position] + ("A" if good[position] != "A" else "B") + good[position + 1:]
        one_alert_token = link(tenant_id, "a1").removeprefix("/v1/actions/")
        bulk_token = good.removeprefix("/v1/actions/bulk/")
        refusals = {
            "expired": (bulk_link(tenant_id, ["a1"], issued_ago=max_age + timedelta(minutes=1)), 410, "expired"),
            "tampered": (tampered, 400, "not valid"),
            "foreign key": (bulk_link(tenant_id, ["a1"], keys=["another-deployment-key-of-32-chars!"]), 400,
                            "not valid"),
            "not a token": ("/v1/actions/bulk/not-a-token", 400, "not valid"),
            "a one-alert link at the bulk URL": (f"/v1/actions/bulk/{one_alert_token}", 400, "not valid"),
            "a bulk link at the one-alert URL": (f"/v1/actions/{bulk_token}", 400, "not valid"),
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
        assert await stored(db_pool, tenant_id, "a1") == ("investigating", 2)


async def test_a_link_none_of_whose_alerts_is_still_active_says_so_and_stays_unused(test_env, tenant_id, db_pool):
    async with running_ingest() as client:
        await post_alert(client, tenant_id, "n1")
        await patch_alert(client, tenant_id, "n1", status="resolved", resolvedReason="legitimate")
        for alert_ids in (["n1", "nowhere"], ["nowhere", "nor-here"]):
            url = bulk_link(tenant_id, alert_ids)
            for method in ("GET", "POST"):
                page = await client.request(method, url, headers=FORM if method == "POST" else {})
                assert page.status_code == 200, page.text
                assert "Nothing to change" in page.text and "not known" in page.text
                assert '<form method="post">' not in page.text
                assert_kept_to_itself(page)
        assert await stored(db_pool, tenant_id, "n1") == ("resolved", 2)
        assert await known_ids(db_pool, tenant_id) == {"n1"}
        assert await used_links(db_pool, tenant_id) == []


async def test_a_link_acts_only_within_its_tenant(test_env, tenant_id, db_pool):
    other_tenant = f"{tenant_id}-other"
    async with running_ingest() as client:
        await post_alert(client, tenant_id, "mine")
        await post_alert(client, other_tenant, "theirs")
        # A link of this tenant naming the other tenant's alert id: not known here, left alone.
        answer = await client.post(bulk_link(tenant_id, ["theirs", "mine"]), headers=FORM)
        assert answer.status_code == 200, answer.text
        assert "1 alert acknowledged" in answer.text and "not known" in answer.text
    assert await stored(db_pool, tenant_id, "mine") == ("investigating", 2)
    assert await stored(db_pool, other_tenant, "theirs") == ("active", 1)


async def test_an_acknowledgement_of_alerts_from_partner_center_is_queued_for_it(test_env, tenant_id, db_pool):
    async with running_ingest() as client:
        for alert_id in ("pc-1", "local-1"):
            await post_alert(client, tenant_id, alert_id)
        # As a poll of Partner Center leaves an alert it read: in step with Partner Center's copy.
        await db_pool.execute(
            "INSERT INTO graph_alert_sync (tenant_id, alert_id, state, last_synced_at) "
            "VALUES ($1, 'pc-1', 'synced', now())", tenant_id)
        assert (await client.post(bulk_link(tenant_id, ["local-1", "pc-1"]), headers=FORM)).status_code == 200
    rows = await db_pool.fetch(
        "SELECT alert_id, state, pending_status, changed_by FROM graph_alert_sync WHERE tenant_id = $1", tenant_id)
    assert [dict(r) for r in rows] == [
        {"alert_id": "pc-1", "state": "pending", "pending_status": "investigating", "changed_by": RECIPIENT}]
