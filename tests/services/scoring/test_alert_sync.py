"""Each alert's sync state with Partner Center on the read API (#12), on the real broker and PostgreSQL:
the write API's ``alert-sync-changed`` events in, ``partnerCenterSync`` on ``GET /alerts`` and
``GET /alerts/{alertId}`` out, beside the alert the response-time service tells of (another topic)."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import httpx

from shared.events import Topic
from shared.wire import utcnow
from tests.conftest import AUTH
from tests.services.scoring.conftest import read_model_applied
from tests.services.scoring.read_model_events import alert_response_time, alert_sync_changed
from tests.support.kafka import produce, read_topic
from tests.support.polling import eventually

H = timedelta(hours=1)


async def get(process, tenant_id: str, path: str, **params: Any) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.get(f"{process.url}/v1/tenants/{tenant_id}{path}", params=params, headers=AUTH)


async def body_of(process, tenant_id: str, path: str, **params: Any) -> Any:
    response = await get(process, tenant_id, path, **params)
    assert response.status_code == 200, response.text
    return response.json()


async def sync_of(process, tenant_id: str, alert_id: str) -> Any:
    return (await body_of(process, tenant_id, f"/alerts/{alert_id}"))["partnerCenterSync"]


async def test_an_alert_from_partner_center_shows_its_sync_state_and_any_other_alert_null(
    scoring, send_event, tenant_id
):
    now = utcnow().replace(microsecond=0)
    for alert_id, hours_ago in (("polled", 3), ("posted", 2), ("answered", 1)):
        await send_event(Topic.alert_response_times, alert_response_time(tenant_id, alert_id, now - hours_ago * H))
    pending = alert_sync_changed(tenant_id, "answered", "pending", last_synced_date_time=now - H,
                                 pending_status="resolved", attempts=2, last_error="503 ServiceUnavailable")
    synced = alert_sync_changed(tenant_id, "polled", "synced", last_synced_date_time=now - 3 * H)
    for event in (pending, synced):
        await send_event(Topic.alert_sync, event)

    listed = await eventually(
        lambda: body_of(scoring, tenant_id, "/alerts"),
        lambda body: len(body["value"]) == 3 and all(a["partnerCenterSync"] for a in body["value"]
                                                     if a["id"] != "posted"),
        within=30, what="every alert listed, each from Partner Center with its sync state")
    by_id = {a["id"]: a["partnerCenterSync"] for a in listed["value"]}
    assert by_id == {
        "answered": {"state": "pending", "lastSyncedDateTime": (now - H).isoformat().replace("+00:00", "Z"),
                     "pendingStatus": "resolved", "attempts": 2, "lastError": "503 ServiceUnavailable"},
        "posted": None,  # it came through the webhook, not from Partner Center
        "polled": {"state": "synced", "lastSyncedDateTime": (now - 3 * H).isoformat().replace("+00:00", "Z"),
                   "pendingStatus": None, "attempts": 0, "lastError": None},
    }
    assert await sync_of(scoring, tenant_id, "answered") == pending.sync.model_dump(mode="json")
    assert await sync_of(scoring, tenant_id, "posted") is None
    # The join leaves filters and paging as they were.
    unanswered = await body_of(scoring, tenant_id, "/alerts", responded="false", top=2)
    assert [(a["id"], a["partnerCenterSync"] and a["partnerCenterSync"]["state"])
            for a in unanswered["value"]] == [("answered", "pending"), ("posted", None)]
    async with httpx.AsyncClient(timeout=10) as http:
        following = (await http.get(unanswered["@odata.nextLink"], headers=AUTH)).json()
    assert [(a["id"], a["partnerCenterSync"]["state"]) for a in following["value"]] == [("polled", "synced")]


async def test_a_sync_state_arriving_before_its_alert_shows_once_the_alert_does(
    scoring, send_event, tenant_id, db_pool
):
    now = utcnow().replace(microsecond=0)
    early = await send_event(Topic.alert_sync, alert_sync_changed(tenant_id, "x", "synced", last_synced_date_time=now))
    await read_model_applied(db_pool, early)
    assert (await get(scoring, tenant_id, "/alerts/x")).status_code == 404  # no alert yet: nothing to show it on
    assert (await body_of(scoring, tenant_id, "/alerts"))["value"] == []

    await send_event(Topic.alert_response_times, alert_response_time(tenant_id, "x", now - H))
    alert = await eventually(lambda: get(scoring, tenant_id, "/alerts/x"), lambda r: r.status_code == 200,
                             within=30, what="the alert")
    assert alert.json()["partnerCenterSync"] == early.sync.model_dump(mode="json")
    assert [a["partnerCenterSync"] for a in (await body_of(scoring, tenant_id, "/alerts"))["value"]] == [
        early.sync.model_dump(mode="json")]


async def test_the_newest_sync_state_wins_and_a_redelivered_one_changes_nothing(
    scoring, send_event, tenant_id, db_pool
):
    at = utcnow()
    await send_event(Topic.alert_response_times, alert_response_time(tenant_id, "x", at - 3 * H))
    # Two changes at the same instant: the later record wins, as the write API published them.
    pending = alert_sync_changed(tenant_id, "x", "pending", pending_status="resolved", attempts=1, occurred=at)
    failed = alert_sync_changed(tenant_id, "x", "failed", pending_status="resolved", attempts=1,
                                last_error="403 Forbidden: not allowed", occurred=at)
    for event in (pending, failed, pending):  # the first one again: a redelivery
        await send_event(Topic.alert_sync, event)
    # Older than both, on the same key (so the same partition, after the redelivery): once it is
    # claimed, the redelivery has been through too.
    late = await send_event(Topic.alert_sync, alert_sync_changed(tenant_id, "x", "synced", occurred=at - H))
    await read_model_applied(db_pool, late)
    await eventually(lambda: get(scoring, tenant_id, "/alerts/x"), lambda r: r.status_code == 200, within=30,
                     what="the alert")
    assert await sync_of(scoring, tenant_id, "x") == failed.sync.model_dump(mode="json")

    # A newer state replaces it.
    synced = await send_event(Topic.alert_sync, alert_sync_changed(tenant_id, "x", "synced",
                                                                   last_synced_date_time=at + H, occurred=at + H))
    await read_model_applied(db_pool, synced)
    assert await sync_of(scoring, tenant_id, "x") == {
        "state": "synced", "lastSyncedDateTime": (at + H).isoformat().replace("+00:00", "Z"),
        "pendingStatus": None, "attempts": 0, "lastError": None}


async def test_a_poison_record_of_the_alert_sync_topic_is_dead_lettered_and_blocks_nothing(
    scoring, send_event, tenant_id, kafka_bootstrap, topic_prefix
):
    now = utcnow().replace(microsecond=0)
    await send_event(Topic.alert_response_times, alert_response_time(tenant_id, "after", now - H))
    good = alert_sync_changed(tenant_id, "after", "synced", last_synced_date_time=now)
    envelope = {k: v for k, v in json.loads(good.model_dump_json()).items() if k != "eventId"}
    # An unknown state; and a record of an event type no handler takes on this topic.
    unknown_state = envelope | {"eventId": str(uuid.uuid4()), "sync": {"state": "half-synced"}}
    other_type = envelope | {"eventId": str(uuid.uuid4()), "eventType": "alert-sync-deleted"}
    for poison in (unknown_state, other_type):
        await produce(kafka_bootstrap, f"{topic_prefix}{Topic.alert_sync.value}", json.dumps(poison).encode(),
                      key=good.kafka_key(), headers={"eventType": poison["eventType"], "eventId": poison["eventId"],
                                                     "tenantId": tenant_id})
    await send_event(Topic.alert_sync, good)
    await eventually(lambda: get(scoring, tenant_id, "/alerts/after"),
                     lambda r: r.status_code == 200 and r.json()["partnerCenterSync"] is not None,
                     within=30, what="the sync state after the poison records")
    for poison, error in ((unknown_state, "ValidationError"), (other_type, "PoisonEvent")):
        dead = await read_topic(kafka_bootstrap, f"{topic_prefix}dead-letter", count=1, timeout=30,
                                predicate=lambda r, poison=poison: r["headers"].get("eventId") == poison["eventId"])
        assert dead[0]["headers"]["dlq.error"] == error
