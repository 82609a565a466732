"""An alert's timeline and triage on the read API (#18), a scoring process on the real broker and
PostgreSQL: the owners' events in (alerts, alert-triage, deliveries, alert-response-times), ``GET
/alerts/{alertId}/timeline`` and the alerts' ``assignedTo`` / ``notesCount`` / ``?assignee=`` out."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import httpx

from shared.alerts import Alert
from shared.auth import Role, create_key
from shared.events import (
    Actor,
    ActorType,
    AlertAssigned,
    AlertCreated,
    AlertNoteAdded,
    AlertUpdated,
    Event,
    FieldChange,
    StatusChange,
    Topic,
)
from shared.wire import format_utc, utcnow
from tests.conftest import AUTH
from tests.services.scoring.conftest import read_model_applied
from tests.services.scoring.read_model_events import alert_response_time, delivery_changed
from tests.support.kafka import produce, read_topic

H = timedelta(hours=1)
M = timedelta(minutes=1)
ANA = Actor(type=ActorType.user, id="ana@partner.example")


async def get(process, tenant_id: str, path: str, headers: dict[str, str] = AUTH, **params: Any) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.get(f"{process.url}/v1/tenants/{tenant_id}{path}", params=params, headers=headers)


async def body_of(process, tenant_id: str, path: str, headers: dict[str, str] = AUTH, **params: Any) -> Any:
    response = await get(process, tenant_id, path, headers, **params)
    assert response.status_code == 200, response.text
    return response.json()


def assignment(tenant_id: str, alert_id: str, assignee: str | None, previous: str | None, at) -> AlertAssigned:
    return AlertAssigned(tenant_id=tenant_id, occurred_date_time=at, alert_id=alert_id, assignee=assignee,
                         previous_assignee=previous, actor=ANA)


def note(tenant_id: str, alert_id: str, text: str, at) -> AlertNoteAdded:
    return AlertNoteAdded(tenant_id=tenant_id, occurred_date_time=at, alert_id=alert_id, note_id=uuid.uuid4(),
                          text=text, author=ANA)


async def send_all(send_event, db_pool, events: list[tuple[Topic, Event]]) -> None:
    for topic, event in events:
        await send_event(topic, event)
    for _, event in events:
        await read_model_applied(db_pool, event)


async def test_an_alerts_timeline_lists_what_happened_to_it_newest_first_and_pages(
    scoring, send_event, db_pool, tenant_id
):
    now = utcnow().replace(microsecond=0)
    received_at, detected = now - 50 * M, now - 2 * H
    acknowledged_at = now - 10 * M
    delivery_id = uuid.uuid4()
    created = AlertCreated(tenant_id=tenant_id, occurred_date_time=received_at, ingested_date_time=received_at,
                           alert=Alert(id="a1", display_name="Impossible travel", severity="high",
                                       detected_date_time=detected))
    update = AlertUpdated(
        tenant_id=tenant_id, occurred_date_time=acknowledged_at, alert_id="a1", actor=ANA,
        changed_date_time=acknowledged_at, changes=[FieldChange(field="status", from_="active", to="investigating")],
        status_changes=[StatusChange(field="status", from_="active", to="investigating", actor=ANA,
                                     changed_date_time=acknowledged_at)],
        alert=Alert(id="a1", status="investigating"))
    events: list[tuple[Topic, Event]] = [
        (Topic.alerts, created),
        (Topic.deliveries, delivery_changed(tenant_id, delivery_id, received_at + M, channel="email:contact",
                                            recipient="soc@partner.example", occurred=received_at + M)),
        (Topic.deliveries, delivery_changed(tenant_id, delivery_id, received_at + M, channel="email:contact",
                                            recipient="soc@partner.example", state="delivered", attempts=1,
                                            delivered_date_time=received_at + 2 * M, occurred=received_at + 2 * M)),
        (Topic.alert_triage, assignment(tenant_id, "a1", "bo@partner.example", None, now - 30 * M)),
        (Topic.alert_triage, note(tenant_id, "a1", "Called the customer", now - 20 * M)),
        (Topic.alerts, update),
        (Topic.alert_response_times, alert_response_time(tenant_id, "a1", detected, responded_at=acknowledged_at,
                                                         status="investigating", occurred=acknowledged_at)),
    ]
    await send_all(send_event, db_pool, events)
    await send_event(Topic.alerts, created)  # a redelivery: adds nothing

    whole = await body_of(scoring, tenant_id, "/alerts/a1/timeline")
    assert "@odata.nextLink" not in whole
    assert [(e["type"], e["occurredDateTime"], e["actor"]) for e in whole["value"]] == [
        ("responded", format_utc(acknowledged_at), "ana@partner.example"),
        ("updated", format_utc(acknowledged_at), "ana@partner.example"),
        ("noted", format_utc(now - 20 * M), "ana@partner.example"),
        ("assigned", format_utc(now - 30 * M), "ana@partner.example"),
        ("notified", format_utc(received_at + M), None),
        ("received", format_utc(received_at), None),
    ]
    details = [e["details"] for e in whole["value"]]
    assert details[0] == {"latencyHours": round(110 / 60, 9)}
    assert details[1] == {"changes": [{"field": "status", "from": "active", "to": "investigating"}]}
    assert details[2]["text"] == "Called the customer"
    assert details[3] == {"assignee": "bo@partner.example", "previousAssignee": None}
    assert (details[4]["state"], details[4]["channel"], details[4]["recipient"]) == (
        "delivered", "email:contact", "soc@partner.example")
    assert details[5]["displayName"] == "Impossible travel"

    # Two at a time, following @odata.nextLink.
    pages: list[dict] = []
    async with httpx.AsyncClient(timeout=10, headers=AUTH) as http:
        url: str | None = f"{scoring.url}/v1/tenants/{tenant_id}/alerts/a1/timeline?top=2"
        while url:
            page = (await http.get(url)).json()
            pages.append(page)
            url = page.get("@odata.nextLink")
    assert [len(p["value"]) for p in pages] == [2, 2, 2]
    assert [e for p in pages for e in p["value"]] == whole["value"]


async def test_a_timeline_of_an_alert_never_heard_of_is_404_and_a_bad_token_422(scoring, send_event, db_pool,
                                                                               tenant_id):
    now = utcnow().replace(microsecond=0)
    await send_all(send_event, db_pool, [(Topic.alert_triage, note(tenant_id, "a1", "first seen by its note", now))])
    assert len((await body_of(scoring, tenant_id, "/alerts/a1/timeline"))["value"]) == 1

    for unknown_tenant, alert_id in ((tenant_id, "nope"), (f"{tenant_id}-other", "a1")):
        missing = await get(scoring, unknown_tenant, f"/alerts/{alert_id}/timeline")
        assert missing.status_code == 404, missing.text
        assert missing.headers["content-type"].startswith("application/problem+json")
        assert alert_id in missing.json()["detail"]
    bad = await get(scoring, tenant_id, "/alerts/a1/timeline", skiptoken="not-ours")
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.skiptoken"
    assert (await get(scoring, tenant_id, "/alerts/a1/timeline", top=0)).status_code == 422


async def test_alerts_show_their_assignee_and_notes_and_filter_by_assignee_me_and_none(
    scoring, send_event, db_pool, tenant_id, scoring_database
):
    now = utcnow().replace(microsecond=0)
    me = "me@partner.example"
    my_key = {"Authorization": "Bearer " + await create_key(scoring_database, tenant_id,
                                                            Role.security_reader, me)}
    events: list[tuple[Topic, Event]] = [
        *((Topic.alert_response_times, alert_response_time(tenant_id, f"a{n}", now - n * H)) for n in range(1, 5)),
        (Topic.alert_triage, assignment(tenant_id, "a1", "Bo@Partner.example", None, now - 3 * M)),
        (Topic.alert_triage, note(tenant_id, "a1", "one", now - 2 * M)),
        (Topic.alert_triage, note(tenant_id, "a1", "two", now - M)),
        (Topic.alert_triage, assignment(tenant_id, "a2", me, None, now - 3 * M)),
        (Topic.alert_triage, assignment(tenant_id, "a3", "bo@partner.example", None, now - 3 * M)),
        (Topic.alert_triage, assignment(tenant_id, "a3", None, "bo@partner.example", now - 2 * M)),
        # a4: never assigned, no note
    ]
    await send_all(send_event, db_pool, events)

    listed = await body_of(scoring, tenant_id, "/alerts", my_key)
    assert [(a["id"], a["assignedTo"], a["notesCount"]) for a in listed["value"]] == [
        ("a1", "Bo@Partner.example", 2), ("a2", me, 0), ("a3", None, 0), ("a4", None, 0)]
    one = await body_of(scoring, tenant_id, "/alerts/a1", my_key)
    assert (one["assignedTo"], one["notesCount"]) == ("Bo@Partner.example", 2)

    async def ids(assignee: str, **params: Any) -> list[str]:
        body = await body_of(scoring, tenant_id, "/alerts", my_key, assignee=assignee, **params)
        return [a["id"] for a in body["value"]]

    assert await ids("bo@partner.example") == ["a1"]  # e-mail addresses compared without case
    assert await ids("me") == ["a2"]  # the calling key's user
    assert await ids(me.upper()) == ["a2"]
    assert await ids("none") == ["a3", "a4"]
    assert await ids("none", top=1, skip=1) == ["a4"]
    assert await ids("nobody@partner.example") == []
    refused = await get(scoring, tenant_id, "/alerts", my_key, assignee="not an address")
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["errors"][0]["field"] == "query.assignee"


async def test_a_poison_record_of_the_alerts_or_triage_topic_is_dead_lettered_and_blocks_nothing(
    scoring, send_event, db_pool, tenant_id, kafka_bootstrap, topic_prefix
):
    now = utcnow().replace(microsecond=0)
    poison_ids = []
    for topic, event_type in ((Topic.alert_triage, "alert-assigned"), (Topic.alert_triage, "alert-unknown"),
                              (Topic.alerts, "alert-created")):
        # The envelope of its type with the type's own fields missing: the model refuses it.
        poison_id = str(uuid.uuid4())
        poison_ids.append(poison_id)
        envelope = {"eventId": poison_id, "eventType": event_type, "schemaVersion": 1,
                    "occurredDateTime": format_utc(now), "tenantId": tenant_id}
        await produce(kafka_bootstrap, f"{topic_prefix}{topic.value}", json.dumps(envelope).encode(),
                      key=f"{tenant_id}:a1:assignee".encode() if topic is Topic.alert_triage
                      else f"{tenant_id}:a1".encode(),
                      headers={"eventType": event_type, "eventId": poison_id, "tenantId": tenant_id})
    after = assignment(tenant_id, "a1", "bo@partner.example", None, now)
    await send_all(send_event, db_pool, [(Topic.alert_triage, after)])
    assert [e["type"] for e in (await body_of(scoring, tenant_id, "/alerts/a1/timeline"))["value"]] == ["assigned"]
    dead = await read_topic(kafka_bootstrap, f"{topic_prefix}dead-letter", count=3, timeout=30,
                            predicate=lambda r: r["headers"].get("eventId") in poison_ids)
    assert sorted(r["headers"]["dlq.error"] for r in dead) == ["PoisonEvent", "ValidationError", "ValidationError"]
