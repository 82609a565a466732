"""The read API's read model on the real broker and PostgreSQL: the owners' events in (alert response
times, deliveries, customers' MFA), the read API out, with nothing read from another service's schema."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from shared.events import AlertResponseTimeChanged, CustomerMfaRemoved, DeliveriesGrouped, GroupedDelivery, Topic
from shared.response_time import aggregate, figures
from shared.wire import utcnow
from tests.conftest import AUTH
from tests.services.scoring.conftest import read_model_applied
from tests.services.scoring.read_model_events import alert_response_time, customer_mfa, delivery_changed
from tests.support.kafka import produce, read_topic
from tests.support.polling import eventually

H = timedelta(hours=1)
DAY = timedelta(days=1)
DELIVERY_FIELDS = {"id", "alertId", "subject", "channel", "kind", "state", "recipient", "attempts", "redeliveries",
                   "nextAttemptDateTime", "lastAttemptDateTime", "lastStatusCode", "lastError",
                   "deliveredDateTime", "deadLetteredDateTime", "createdDateTime", "digestId"}


async def get(process, tenant_id: str, path: str, **params: Any) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.get(f"{process.url}/v1/tenants/{tenant_id}{path}", params=params, headers=AUTH)


async def body_of(process, tenant_id: str, path: str, **params: Any) -> Any:
    response = await get(process, tenant_id, path, **params)
    assert response.status_code == 200, response.text
    return response.json()


@dataclass(frozen=True)
class Timing:
    """An alert as ``shared.response_time.aggregate`` reads it, from the event that told of it."""

    status: str
    is_test: bool
    clock_started_at: datetime
    responded_at: datetime | None
    latency_us: int | None

    @classmethod
    def of(cls, event: AlertResponseTimeChanged) -> Timing:
        return cls(event.status, event.is_test, event.clock_started_date_time, event.responded_date_time,
                   event.latency_us)


# --- alert-response-times: GET /alerts, /alerts/{id}, /response-time --------------------------------


async def test_alert_response_times_show_on_alerts_and_the_figures_are_the_response_time_rules(
    scoring, send_event, tenant_id
):
    now = utcnow().replace(microsecond=0)
    events = [
        alert_response_time(tenant_id, "fast", now - 30 * H, responded_at=now - 28 * H, status="resolved",
                            displayName="Fast one"),
        alert_response_time(tenant_id, "slow", now - 50 * H, responded_at=now - 10 * H, status="investigating"),
        alert_response_time(tenant_id, "open", now - 5 * H),
        alert_response_time(tenant_id, "closed-unanswered", now - 8 * H, status="resolved"),
        alert_response_time(tenant_id, "test", now - 100 * H, is_test=True),
        alert_response_time(tenant_id, "long-ago", now - 40 * DAY, responded_at=now - 31 * DAY, status="resolved"),
    ]
    for event in events:
        await send_event(Topic.alert_response_times, event)

    listed = await eventually(lambda: body_of(scoring, tenant_id, "/alerts"),
                              lambda body: len(body["value"]) == len(events), within=30, what="every alert listed")
    assert [a["id"] for a in listed["value"]] == ["open", "closed-unanswered", "fast", "slow", "test", "long-ago"]
    fast = await body_of(scoring, tenant_id, "/alerts/fast")
    assert fast == next(a for a in listed["value"] if a["id"] == "fast")
    assert fast | {"openAgeHours": None} == {
        "id": "fast", "displayName": "Fast one", "severity": "high", "isTest": False,
        "detectedDateTime": (now - 30 * H).isoformat().replace("+00:00", "Z"),
        "status": "resolved",
        "clockStartedDateTime": (now - 30 * H).isoformat().replace("+00:00", "Z"),
        "respondedDateTime": (now - 28 * H).isoformat().replace("+00:00", "Z"),
        "respondedBy": "ana@partner.example",
        "latencyHours": 2.0,
        "openAgeHours": None,
        "timeLeftHours": None,  # answered
        "countsTowardResponseTime": True,
        "partnerCenterSync": None,  # it did not come from Partner Center (test_alert_sync.py)
        "assignedTo": None,
        "notesCount": 0,
    }
    still_open = next(a for a in listed["value"] if a["id"] == "open")
    assert still_open["latencyHours"] is None and 5.0 <= still_open["openAgeHours"] < 6.0
    assert abs(still_open["timeLeftHours"] - (24.0 - still_open["openAgeHours"])) < 1e-6
    unanswered = next(a for a in listed["value"] if a["id"] == "closed-unanswered")
    assert (unanswered["openAgeHours"], unanswered["countsTowardResponseTime"], unanswered["timeLeftHours"]) == (
        None, False, None)
    assert next(a for a in listed["value"] if a["id"] == "test")["countsTowardResponseTime"] is False
    answered = await body_of(scoring, tenant_id, "/alerts", responded="true", status="resolved")
    assert [a["id"] for a in answered["value"]] == ["fast", "long-ago"]

    # The figures are the response-time service's own rules over the same alerts, at the same instant.
    before = utcnow()
    body = await body_of(scoring, tenant_id, "/response-time")
    after = utcnow()
    timings = [Timing.of(e) for e in events]
    low, high = (figures(aggregate(timings, at), at).model_dump(mode="json") for at in (before, after))
    assert low["respondedCount"] == 2 and low["openCount"] == 1 and low["averageResponseTimeInHours"] == 21.0
    for moving in ("oldestOpenAgeHours", "projectedAverageResponseTimeInHours"):  # open alerts age meanwhile
        assert low[moving] <= body[moving] <= high[moving]
        body[moving] = low[moving] = high[moving]
    assert body == low == high


async def test_a_redelivered_event_is_applied_once(scoring, send_event, tenant_id, db_pool):
    at = utcnow()
    # Two changes of one alert at the same instant: the later record wins, as the owner published them.
    opened = alert_response_time(tenant_id, "x", at - 3 * H, occurred=at)
    answered = alert_response_time(tenant_id, "x", at - 3 * H, responded_at=at - H, status="investigating",
                                   occurred=at)
    for event in (opened, answered, opened):  # the first one again: a redelivery
        await send_event(Topic.alert_response_times, event)
    # Older than both, on the same key (so the same partition, after the redelivery): once it is
    # claimed, the redelivery has been through too.
    marker = await send_event(Topic.alert_response_times,
                              alert_response_time(tenant_id, "x", at - 3 * H, occurred=at - H))
    await read_model_applied(db_pool, marker)
    alert = await body_of(scoring, tenant_id, "/alerts/x")
    assert (alert["status"], alert["latencyHours"]) == ("investigating", 2.0)
    figures_now = await body_of(scoring, tenant_id, "/response-time")
    assert (figures_now["respondedCount"], figures_now["openCount"]) == (1, 0)


async def test_an_older_alert_event_never_overrides_a_newer_one(scoring, send_event, tenant_id, db_pool):
    at = utcnow()
    answered = alert_response_time(tenant_id, "x", at - 3 * H, responded_at=at - H, status="resolved", occurred=at)
    late = alert_response_time(tenant_id, "x", at - 3 * H, occurred=at - 2 * H)  # before the answer
    await send_event(Topic.alert_response_times, answered)
    await send_event(Topic.alert_response_times, late)
    await read_model_applied(db_pool, late)
    alert = await body_of(scoring, tenant_id, "/alerts/x")
    assert (alert["status"], alert["respondedDateTime"] is not None) == ("resolved", True)
    assert (await body_of(scoring, tenant_id, "/response-time"))["respondedCount"] == 1


# --- deliveries: GET /deliveries, /deliveries/{id} -------------------------------------------------------


async def test_deliveries_show_as_the_notifier_shows_them_and_only_a_newer_state_replaces_one(
    scoring, send_event, tenant_id, db_pool
):
    now = utcnow().replace(microsecond=0)
    pending_id, delivered_id, dead_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    pending = delivery_changed(tenant_id, pending_id, now - 3 * H, next_attempt_date_time=now + H)
    delivered = delivery_changed(tenant_id, delivered_id, now - 2 * H, state="delivered", attempts=1,
                                 recipient="https://tickets.example/hook", last_status_code=200,
                                 last_attempt_date_time=now - 2 * H, delivered_date_time=now - 2 * H)
    dead = delivery_changed(tenant_id, dead_id, now - H, state="dead", alert_id="a2", channel="email:contact",
                            attempts=5, last_error="connection refused", dead_lettered_date_time=now)
    for event in (pending, delivered, dead):
        await send_event(Topic.deliveries, event)

    listed = await eventually(lambda: body_of(scoring, tenant_id, "/deliveries"),
                              lambda body: len(body["value"]) == 3, within=30, what="every delivery listed")
    expected = {e.delivery.id: e.delivery.model_dump(mode="json") for e in (pending, delivered, dead)}
    assert listed == {"value": [expected[dead_id], expected[delivered_id], expected[pending_id]]}  # newest first
    assert all(set(view) == DELIVERY_FIELDS for view in listed["value"])
    assert listed["value"][0]["lastError"] == "connection refused" and listed["value"][0]["channel"] == "email:contact"
    assert (await body_of(scoring, tenant_id, "/deliveries", state="dead"))["value"] == [expected[dead_id]]
    by_alert = await body_of(scoring, tenant_id, "/deliveries", alertId="a1")
    assert [v["id"] for v in by_alert["value"]] == [str(delivered_id), str(pending_id)]
    assert [v["id"] for v in (await body_of(scoring, tenant_id, "/deliveries", top=1))["value"]] == [str(dead_id)]
    assert await body_of(scoring, tenant_id, f"/deliveries/{delivered_id}") == expected[delivered_id]
    missing = await get(scoring, tenant_id, f"/deliveries/{uuid.uuid4()}")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/problem+json")

    # The pending one is delivered; then its older pending state arrives late and changes nothing.
    now_delivered = delivery_changed(tenant_id, pending_id, now - 3 * H, state="delivered", attempts=1,
                                     delivered_date_time=now, occurred=utcnow() + timedelta(seconds=1))
    await send_event(Topic.deliveries, now_delivered)
    await send_event(Topic.deliveries, pending)  # applied before: dropped
    late = await send_event(Topic.deliveries, delivery_changed(tenant_id, pending_id, now - 3 * H, occurred=now))
    await read_model_applied(db_pool, late)
    assert await body_of(scoring, tenant_id, f"/deliveries/{pending_id}") == now_delivered.delivery.model_dump(
        mode="json")


async def test_a_deliveries_grouped_event_shows_each_delivery_it_names_grouped_in_its_digest(
    scoring, send_event, tenant_id, db_pool
):
    now = utcnow().replace(microsecond=0)
    digest_id, first, second = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    grouped = DeliveriesGrouped(tenant_id=tenant_id, digest_id=digest_id, channel="email:contact",
                                created_date_time=now - H, deliveries=[GroupedDelivery(id=first, alert_id="a6"),
                                                                       GroupedDelivery(id=second, alert_id="a7")])
    await send_event(Topic.deliveries, grouped)
    await send_event(Topic.deliveries, grouped)  # once more: applied once

    listed = await eventually(lambda: body_of(scoring, tenant_id, "/deliveries"),
                              lambda body: len(body["value"]) == 2, within=30, what="both deliveries listed")
    assert sorted(listed["value"], key=lambda v: v["alertId"]) == [
        {"id": str(delivery_id), "alertId": alert_id, "subject": alert_id, "channel": "email:contact",
         "kind": "alert", "state": "grouped", "recipient": None, "attempts": 0, "redeliveries": 0,
         "nextAttemptDateTime": None, "lastAttemptDateTime": None, "lastStatusCode": None, "lastError": None,
         "deliveredDateTime": None, "deadLetteredDateTime": None,
         "createdDateTime": (now - H).isoformat().replace("+00:00", "Z"), "digestId": str(digest_id)}
        for delivery_id, alert_id in ((first, "a6"), (second, "a7"))]
    await read_model_applied(db_pool, grouped)
    timeline = await body_of(scoring, tenant_id, "/alerts/a7/timeline")
    [entry] = [e for e in timeline["value"] if e["type"] == "notified"]
    assert (entry["details"]["state"], entry["details"]["digestId"]) == ("grouped", str(digest_id))


# --- customer-mfa: GET /customers/mfa ---------------------------------------------------------------------


async def test_customers_of_the_newest_report_show_and_an_older_report_never_overrides_it(
    scoring, send_event, tenant_id, db_pool
):
    first = utcnow().replace(microsecond=0) - DAY
    for event in (customer_mfa(tenant_id, "c1", "Contoso", first),
                  customer_mfa(tenant_id, "c2", "Fabrikam", first, admins=3, admins_with_mfa=1),
                  customer_mfa(tenant_id, "c3", "northwind", first)):
        await send_event(Topic.customer_mfa, event)
    page = await eventually(lambda: body_of(scoring, tenant_id, "/customers/mfa"),
                            lambda body: body["@odata.count"] == 3, within=30, what="the first report")
    assert page == {"value": [
        {"customerTenantId": "c1", "customerName": "Contoso", "admins": 2, "adminsWithMfa": 2, "adminsWithoutMfa": 0,
         "nonAdminsWithMfa": 5, "totalUsers": 10, "compliant": True,
         "observedDateTime": first.isoformat().replace("+00:00", "Z")},
        {"customerTenantId": "c2", "customerName": "Fabrikam", "admins": 3, "adminsWithMfa": 1, "adminsWithoutMfa": 2,
         "nonAdminsWithMfa": 5, "totalUsers": 10, "compliant": False,
         "observedDateTime": first.isoformat().replace("+00:00", "Z")},
        {"customerTenantId": "c3", "customerName": "northwind", "admins": 2, "adminsWithMfa": 2, "adminsWithoutMfa": 0,
         "nonAdminsWithMfa": 5, "totalUsers": 10, "compliant": True,
         "observedDateTime": first.isoformat().replace("+00:00", "Z")},
    ], "@odata.count": 3}
    assert [c["customerTenantId"] for c in (await body_of(scoring, tenant_id, "/customers/mfa", search="FAB"))[
        "value"]] == ["c2"]
    assert [c["customerTenantId"] for c in (await body_of(scoring, tenant_id, "/customers/mfa", compliant="false"))[
        "value"]] == ["c2"]
    two = await body_of(scoring, tenant_id, "/customers/mfa", top=2)
    assert two["@odata.count"] == 3 and two["@odata.nextLink"].endswith("top=2&skip=2")

    # A newer report leaves Fabrikam out (it is gone) and changes Contoso; then Contoso's older
    # figures arrive late (a replay) and change nothing.
    second = first + H
    for event in (customer_mfa(tenant_id, "c1", "Contoso", second, admins_with_mfa=1),
                  customer_mfa(tenant_id, "c3", "northwind", second)):
        await send_event(Topic.customer_mfa, event)
    late = await send_event(Topic.customer_mfa, customer_mfa(tenant_id, "c1", "Contoso", first))
    await read_model_applied(db_pool, late)
    page = await eventually(lambda: body_of(scoring, tenant_id, "/customers/mfa"),
                            lambda body: body["@odata.count"] == 2, within=30, what="the second report")
    assert [(c["customerTenantId"], c["adminsWithMfa"], c["compliant"]) for c in page["value"]] == [
        ("c1", 1, False), ("c3", 2, True)]


def customer_removed(tenant_id: str, customer_tenant_id: str, observed: datetime) -> CustomerMfaRemoved:
    """The customer left out of the tenant's report observed at ``observed``, as the write API tells it."""
    return CustomerMfaRemoved(tenant_id=tenant_id, occurred_date_time=observed,
                              customer_tenant_id=customer_tenant_id, observed_date_time=observed)


async def customer_rows(scoring, tenant_id: str) -> list[tuple[str, str, str]]:
    page = await body_of(scoring, tenant_id, "/customers/mfa")
    assert page["@odata.count"] == len(page["value"])
    return [(c["customerTenantId"], c["customerName"], c["observedDateTime"]) for c in page["value"]]


async def test_a_removed_customer_is_gone_and_an_older_observation_arriving_late_does_not_bring_it_back(
    scoring, send_event, tenant_id, db_pool
):
    first = utcnow().replace(microsecond=0) - DAY
    second, third = first + H, first + 2 * H

    def wire(at: datetime) -> str:
        return at.isoformat().replace("+00:00", "Z")

    for event in (customer_mfa(tenant_id, "c1", "Contoso", first), customer_mfa(tenant_id, "c2", "Fabrikam", first)):
        await send_event(Topic.customer_mfa, event)
    await eventually(lambda: customer_rows(scoring, tenant_id), lambda rows: len(rows) == 2, within=30,
                     what="the first report")

    # An empty report: both customers are removed.
    for cid in ("c1", "c2"):
        await send_event(Topic.customer_mfa, customer_removed(tenant_id, cid, second))
    await eventually(lambda: customer_rows(scoring, tenant_id), lambda rows: rows == [], within=30,
                     what="no customer after the empty report")

    # Contoso's figures of the first report arrive late (a replay), and so does the removal again:
    # neither changes anything.
    await send_event(Topic.customer_mfa, customer_removed(tenant_id, "c1", second))
    late = await send_event(Topic.customer_mfa, customer_mfa(tenant_id, "c1", "Contoso", first))
    await read_model_applied(db_pool, late)
    assert await customer_rows(scoring, tenant_id) == []

    # A newer report has Contoso again; then Contoso's removal by the older empty report arrives late.
    await send_event(Topic.customer_mfa, customer_mfa(tenant_id, "c1", "Contoso again", third))
    stale_removal = await send_event(Topic.customer_mfa, customer_removed(tenant_id, "c1", second))
    await read_model_applied(db_pool, stale_removal)
    assert await customer_rows(scoring, tenant_id) == [("c1", "Contoso again", wire(third))]


# --- poison --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("topic, poison_type", [
    (Topic.alert_response_times, "alert-response-time-changed"), (Topic.deliveries, "delivery-changed"),
    (Topic.customer_mfa, "customer-mfa-observed"), (Topic.customer_mfa, "customer-mfa-removed")])
async def test_a_poison_record_of_a_read_model_topic_is_dead_lettered_and_blocks_nothing(
    scoring, send_event, tenant_id, topic, poison_type, kafka_bootstrap, topic_prefix
):
    now = utcnow().replace(microsecond=0)
    good = {Topic.alert_response_times: alert_response_time(tenant_id, "after", now - H),
            Topic.deliveries: delivery_changed(tenant_id, uuid.uuid4(), now - H),
            Topic.customer_mfa: customer_mfa(tenant_id, "after", "After", now - H)}[topic]
    # The envelope of its type with the type's own fields missing: the model refuses it.
    poison_id = str(uuid.uuid4())
    envelope = {k: v for k, v in json.loads(good.model_dump_json()).items()
                if k in ("schemaVersion", "occurredDateTime", "tenantId")} | {"eventId": poison_id,
                                                                                 "eventType": poison_type}
    await produce(kafka_bootstrap, f"{topic_prefix}{topic.value}", json.dumps(envelope).encode(),
                  key=good.kafka_key(), headers={"eventType": poison_type, "eventId": poison_id,
                                                 "tenantId": tenant_id})
    await send_event(topic, good)
    path = {Topic.alert_response_times: "/alerts", Topic.deliveries: "/deliveries",
            Topic.customer_mfa: "/customers/mfa"}[topic]
    await eventually(lambda: body_of(scoring, tenant_id, path), lambda body: len(body["value"]) == 1, within=30,
                     what="the event after the poison one")
    dead = await read_topic(kafka_bootstrap, f"{topic_prefix}dead-letter", count=1, timeout=30,
                            predicate=lambda r: r["headers"].get("eventId") == poison_id)
    assert dead[0]["headers"]["dlq.error"] == "ValidationError"


async def test_a_response_without_its_latency_contradicts_the_contract_and_is_dead_lettered(
    scoring, send_event, tenant_id, kafka_bootstrap, topic_prefix
):
    now = utcnow().replace(microsecond=0)
    contradiction = alert_response_time(tenant_id, "x", now - 2 * H, responded_at=now - H).model_copy(
        update={"latency_us": None})
    await send_event(Topic.alert_response_times, contradiction)
    await send_event(Topic.alert_response_times, alert_response_time(tenant_id, "y", now - H))
    await eventually(lambda: body_of(scoring, tenant_id, "/alerts"), lambda body: len(body["value"]) == 1,
                     within=30, what="the event after the poison one")
    dead = await read_topic(kafka_bootstrap, f"{topic_prefix}dead-letter", count=1, timeout=30,
                            predicate=lambda r: r["headers"].get("eventId") == str(contradiction.event_id))
    assert dead[0]["headers"]["dlq.error"] == "PoisonEvent" and "latencyUs" in dead[0]["headers"]["dlq.reason"]
    assert (await get(scoring, tenant_id, "/alerts/x")).status_code == 404
