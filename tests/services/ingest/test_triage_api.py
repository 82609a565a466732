"""Triage on the write API (#18): an alert's assignee (``/alerts/{id}/assignee``) and its notes
(``/alerts/{id}/notes``); real PostgreSQL and Kafka, the write API in-process.

Each change is, in one transaction, its row and its event on the compacted ``alert-triage`` topic
(``alert-assigned``, key tenant:alert:assignee; ``alert-note-added``, key tenant:alert:note:<id>). Neither
is a status change: no ``alert-updated``, the alert's state untouched (the response clock runs on).
"""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest

from services.ingest.routes_triage import note_text
from services.ingest.triage_store import same_assignee
from shared.events import Topic
from tests.conftest import AUTH
from tests.services.ingest.support import alert_records, running_ingest, topic_records

OPERATOR_ACTOR = {"type": "user", "id": "operator"}


def alert_url(tenant_id: str, alert_id: str = "a1") -> str:
    return f"/v1/tenants/{tenant_id}/alerts/{alert_id}"


async def post_alert(client: httpx.AsyncClient, tenant_id: str, alert_id: str = "a1") -> None:
    alert = {"id": alert_id, "displayName": "Unusual sign-in", "severity": "high", "customerTenantId": "customer-1"}
    answer = await client.post(f"/v1/tenants/{tenant_id}/alerts", json=alert, headers=AUTH)
    assert answer.status_code == 202, answer.text


async def bearer_of(client: httpx.AsyncClient, tenant_id: str, role: str) -> dict[str, str]:
    created = await client.post("/v1/keys", json={"tenantId": tenant_id, "role": role, "userId": f"{role}-user"},
                                headers=AUTH)
    assert created.status_code == 201, created.text
    return {"Authorization": f"Bearer {created.json()['key']}"}


async def triage_events(test_env, tenant_id: str, alert_id: str, kind: str, count: int | None = None) -> list[dict]:
    """The alert's ``kind`` records (``assignee`` or ``note``) on the triage topic, by offset (the order
    published for one key, ``assignee``; notes have a key each)."""
    records = await topic_records(test_env, Topic.alert_triage, f"{tenant_id}:{alert_id}:{kind}", count=count)
    return sorted(records, key=lambda r: r["offset"])


async def stored_version(db_pool, tenant_id: str, alert_id: str = "a1") -> int:
    return await db_pool.fetchval(
        "SELECT version FROM ingest_alert_state WHERE tenant_id = $1 AND alert_id = $2", tenant_id, alert_id)


def assert_problem(answer: httpx.Response, status: int, field: str | None = None) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json", answer.headers
    if field is not None:
        assert field in [e["field"] for e in answer.json()["errors"]], answer.json()


# --- the rules, no I/O ----------------------------------------------------------------------------


def test_a_note_is_kept_with_its_line_breaks_as_newlines_trimmed():
    assert note_text(" \r\n a\r\nb\rc\t d \n") == "a\nb\nc\t d"
    assert note_text("x" * 4000 + "   ") == "x" * 4000


@pytest.mark.parametrize(("text", "says"), [
    ("", "must not be empty"), (" \r\n\t", "must not be empty"), ("x" * 4001, "this has 4001"),
    ("ok\x0b", "U+000B at position 2"), ("\x0c page", "U+000C at position 0"), ("a\x85", "U+0085 at position 1"),
    ("\x1b[0m", "U+001B"), ("a\x7f", "U+007F"),
])
def test_a_note_that_breaks_a_rule_is_refused_saying_which(text, says):
    with pytest.raises(ValueError, match=says.replace("[", r"\[").replace("+", r"\+")):
        note_text(text)


def test_one_assignee_in_any_case_and_nobody_is_nobody():
    assert same_assignee("Kim@partner.example", "kim@partner.example")
    assert same_assignee(None, None)
    assert not same_assignee("kim@partner.example", None) and not same_assignee(None, "kim@partner.example")
    assert not same_assignee("kim@partner.example", "lee@partner.example")


# --- assignment -----------------------------------------------------------------------------------


async def test_assign_reassign_and_unassign_are_events_with_the_previous_assignee_and_no_status_change(
    test_env, tenant_id, db_pool, kafka_bootstrap, topic_prefix
):
    url = f"{alert_url(tenant_id)}/assignee"
    async with running_ingest() as client:
        await post_alert(client, tenant_id)
        never = await client.get(url, headers=AUTH)
        assert never.status_code == 200, never.text
        assert never.json() == {"alertId": "a1", "assignee": None, "assignedBy": None, "assignedDateTime": None}

        assigned = await client.put(url, json={"assignee": " Alice@Partner.Example "}, headers=AUTH)
        assert assigned.status_code == 200, assigned.text
        body = assigned.json()
        # Normalised as the security contact's address is (the domain lower-cased, no spaces).
        assert (body["alertId"], body["assignee"], body["assignedBy"]) == ("a1", "Alice@partner.example", "operator")
        assert body["assignedDateTime"].endswith("Z")
        assert (await client.get(url, headers=AUTH)).json() == body

        again = await client.put(url, json={"assignee": "Alice@partner.example"}, headers=AUTH)
        assert again.status_code == 200 and again.json() == body  # the same assignee: nothing changes

        reassigned = await client.put(url, json={"assignee": "bob@partner.example"}, headers=AUTH)
        assert reassigned.status_code == 200 and reassigned.json()["assignee"] == "bob@partner.example"
        unassigned = await client.delete(url, headers=AUTH)
        assert unassigned.status_code == 200, unassigned.text
        assert unassigned.json()["assignee"] is None and unassigned.json()["assignedBy"] == "operator"
        assert (await client.delete(url, headers=AUTH)).json() == unassigned.json()  # nobody again: no change

        records = await triage_events(test_env, tenant_id, "a1", "assignee", count=3)
        alert_events = await alert_records(kafka_bootstrap, topic_prefix, tenant_id, at_least=1)
        assert await stored_version(db_pool, tenant_id) == 1  # the alert itself never changed
    assert [r["key"] for r in records] == [f"{tenant_id}:a1:assignee"] * 3
    assert [r["headers"]["eventType"] for r in records] == ["alert-assigned"] * 3
    values = [r["value"] for r in records]
    assert [(v["assignee"], v["previousAssignee"]) for v in values] == [
        ("Alice@partner.example", None), ("bob@partner.example", "Alice@partner.example"),
        (None, "bob@partner.example")]
    assert all(v["actor"] == OPERATOR_ACTOR and v["alertId"] == "a1" and v["tenantId"] == tenant_id for v in values)
    times = [datetime.fromisoformat(v["occurredDateTime"]) for v in values]
    assert times == sorted(times) and len(set(times)) == 3
    assert values[0]["occurredDateTime"] == body["assignedDateTime"]
    # Not a response: no alert-updated, the Partner Center clock keeps running.
    assert [r["value"]["eventType"] for r in alert_events] == ["alert-created"]


async def test_assignment_refusals_change_nothing(test_env, tenant_id, db_pool):
    url = f"{alert_url(tenant_id)}/assignee"
    async with running_ingest() as client:
        await post_alert(client, tenant_id)
        for body in ({"assignee": "not an address"}, {"assignee": "alice@"}, {"assignee": ""}, {"assignee": None},
                     {"assignee": 42}, {"assignee": "a" * 330 + "@partner.example"}):
            refused = await client.put(url, json=body, headers=AUTH)
            assert_problem(refused, 422, "assignee")
        refused = await client.put(url, json={"assignee": "alice@partner.example", "note": "x"}, headers=AUTH)
        assert_problem(refused, 422, "note")
        assert_problem(await client.put(url, json={}, headers=AUTH), 422, "assignee")
        assert "not a valid e-mail address" in (
            await client.put(url, json={"assignee": "not an address"}, headers=AUTH)).json()["detail"]
        unknown = f"{alert_url(tenant_id, 'nowhere')}/assignee"
        assert_problem(await client.put(unknown, json={"assignee": "alice@partner.example"}, headers=AUTH), 404)
        assert_problem(await client.delete(unknown, headers=AUTH), 404)
        assert_problem(await client.get(unknown, headers=AUTH), 404)
        assert "no alert 'nowhere'" in (await client.get(unknown, headers=AUTH)).json()["detail"]
        assert (await client.get(url, headers=AUTH)).json()["assignee"] is None
    assert await db_pool.fetchval("SELECT count(*) FROM alert_assignments WHERE tenant_id = $1", tenant_id) == 0
    assert await db_pool.fetchval(
        "SELECT count(*) FROM ingest.outbox WHERE convert_from(key, 'UTF8') LIKE $1", f"{tenant_id}:%:assignee") == 0


async def test_triage_takes_the_permission_to_change_an_alert_and_reading_the_read_one(test_env, tenant_id):
    assignee_url, notes_url = f"{alert_url(tenant_id)}/assignee", f"{alert_url(tenant_id)}/notes"
    async with running_ingest() as client:
        await post_alert(client, tenant_id)
        reader = await bearer_of(client, tenant_id, "securityReader")
        administrator = await bearer_of(client, tenant_id, "securityAdministrator")
        other_tenant_admin = await bearer_of(client, f"{tenant_id}-other", "adminAgent")
        for key in (reader, other_tenant_admin):
            assert_problem(await client.put(assignee_url, json={"assignee": "a@partner.example"}, headers=key), 403)
            assert_problem(await client.delete(assignee_url, headers=key), 403)
            assert_problem(await client.post(notes_url, json={"text": "mine"}, headers=key), 403)
        assert_problem(await client.get(assignee_url, headers=other_tenant_admin), 403)
        assert_problem(await client.get(notes_url, headers=other_tenant_admin), 403)
        assert_problem(await client.put(assignee_url, json={"assignee": "a@partner.example"}), 401)

        # A securityAdministrator may change alerts: the actor is its key's user.
        assigned = await client.put(assignee_url, json={"assignee": "a@partner.example"}, headers=administrator)
        assert assigned.status_code == 200 and assigned.json()["assignedBy"] == "securityAdministrator-user"
        noted = await client.post(notes_url, json={"text": "looking"}, headers=administrator)
        assert noted.status_code == 201 and noted.json()["author"] == "securityAdministrator-user"
        # A reader reads both.
        assert (await client.get(assignee_url, headers=reader)).json()["assignee"] == "a@partner.example"
        assert [n["text"] for n in (await client.get(notes_url, headers=reader)).json()["value"]] == ["looking"]
        [assigned_event] = await triage_events(test_env, tenant_id, "a1", "assignee", count=1)
        [noted_event] = await triage_events(test_env, tenant_id, "a1", "note", count=1)
    assert assigned_event["value"]["actor"] == {"type": "user", "id": "securityAdministrator-user"}
    assert noted_event["value"]["author"] == {"type": "user", "id": "securityAdministrator-user"}


async def test_another_tenants_alert_is_not_found(test_env, tenant_id, db_pool):
    other = f"{tenant_id}-b"
    async with running_ingest() as client:
        await post_alert(client, tenant_id, "shared-id")
        # The operator may act for any tenant: tenant B has no alert of that id, whoever's it is.
        url = alert_url(other, "shared-id")
        assert_problem(await client.put(f"{url}/assignee", json={"assignee": "a@partner.example"}, headers=AUTH), 404)
        assert_problem(await client.get(f"{url}/assignee", headers=AUTH), 404)
        assert_problem(await client.post(f"{url}/notes", json={"text": "wrong tenant"}, headers=AUTH), 404)
        assert_problem(await client.get(f"{url}/notes", headers=AUTH), 404)
        own = await client.post(f"{alert_url(tenant_id, 'shared-id')}/notes", json={"text": "ours"}, headers=AUTH)
        assert own.status_code == 201
        assert_problem(await client.get(f"{url}/notes/{own.json()['id']}", headers=AUTH), 404)
    assert await db_pool.fetchval("SELECT count(*) FROM alert_notes WHERE tenant_id = $1", other) == 0
    assert await db_pool.fetchval("SELECT count(*) FROM alert_assignments WHERE tenant_id = $1", other) == 0


# --- notes ----------------------------------------------------------------------------------------


async def test_notes_are_told_listed_newest_first_in_pages_and_change_nothing_of_the_alert(
    test_env, tenant_id, db_pool, kafka_bootstrap, topic_prefix
):
    url = f"{alert_url(tenant_id)}/notes"
    async with running_ingest() as client:
        await post_alert(client, tenant_id)
        empty = await client.get(url, headers=AUTH)
        assert empty.status_code == 200 and empty.json() == {"value": []}
        added = []
        for text in ("first shift: looking", "called the customer", "handing over"):
            answer = await client.post(url, json={"text": text}, headers=AUTH)
            assert answer.status_code == 201, answer.text
            note = answer.json()
            assert set(note) == {"id", "alertId", "text", "author", "createdDateTime"}
            assert (note["alertId"], note["text"], note["author"]) == ("a1", text, "operator")
            assert answer.headers["location"] == f"{url}/{note['id']}"
            shown = await client.get(answer.headers["location"], headers=AUTH)
            assert shown.status_code == 200 and shown.json() == note
            added.append(note)

        first = await client.get(url, params={"top": 2}, headers=AUTH)
        assert first.status_code == 200, first.text
        assert first.json()["value"] == [added[2], added[1]]
        next_link = first.json()["@odata.nextLink"]
        assert next_link.startswith(f"{url}?")
        second = await client.get(next_link, headers=AUTH)
        assert second.json() == {"value": [added[0]]}
        assert (await client.get(url, headers=AUTH)).json() == {"value": list(reversed(added))}
        assert_problem(await client.get(url, params={"skiptoken": "not-ours"}, headers=AUTH), 422, "query.skiptoken")
        assert_problem(await client.get(url, params={"top": 0}, headers=AUTH), 422)
        assert_problem(await client.get(f"{url}/00000000-0000-4000-8000-000000000000", headers=AUTH), 404)

        # Each note its own key, so maybe its own partition: in the order written, by their times.
        records = sorted(await triage_events(test_env, tenant_id, "a1", "note", count=3),
                         key=lambda r: datetime.fromisoformat(r["value"]["occurredDateTime"]))
        alert_events = await alert_records(kafka_bootstrap, topic_prefix, tenant_id, at_least=1)
        assert await stored_version(db_pool, tenant_id) == 1
    assert [r["headers"]["eventType"] for r in records] == ["alert-note-added"] * 3
    assert [r["key"] for r in records] == [f"{tenant_id}:a1:note:{n['id']}" for n in added]
    assert [(r["value"]["noteId"], r["value"]["text"], r["value"]["author"]) for r in records] == [
        (n["id"], n["text"], OPERATOR_ACTOR) for n in added]
    assert [r["value"]["occurredDateTime"] for r in records] == [n["createdDateTime"] for n in added]
    assert [r["value"]["eventType"] for r in alert_events] == ["alert-created"]


async def test_note_text_is_trimmed_bounded_and_free_of_control_characters(test_env, tenant_id, db_pool):
    url = f"{alert_url(tenant_id)}/notes"
    async with running_ingest() as client:
        await post_alert(client, tenant_id)
        kept = await client.post(url, json={"text": "  line one\r\n\tline two\rthree \n "}, headers=AUTH)
        assert kept.status_code == 201, kept.text
        # Trimmed; a line break of any convention kept as \n; tabs kept.
        assert kept.json()["text"] == "line one\n\tline two\nthree"
        longest = await client.post(url, json={"text": "  " + "é" * 4000 + "\n"}, headers=AUTH)
        assert longest.status_code == 201 and longest.json()["text"] == "é" * 4000

        for text in ("", "   \n\t ", "x" * 4001, "bell \x07", "\x1b[31mred", "del \x7f", "c1 \x85"):
            refused = await client.post(url, json={"text": text}, headers=AUTH)
            assert_problem(refused, 422, "text")
        # NUL and a lone surrogate: refused by every wire model, before its fields are read.
        for raw in (b'{"text": "nul \\u0000"}', b'{"text": "ok \\ud800"}'):
            refused = await client.post(url, content=raw, headers={**AUTH, "Content-Type": "application/json"})
            assert_problem(refused, 422)
            assert "text at text" in refused.json()["detail"]
        bell = await client.post(url, json={"text": "bell \x07"}, headers=AUTH)
        assert "control character U+0007 at position 5" in bell.json()["detail"]
        assert "4000" in (await client.post(url, json={"text": "x" * 4001}, headers=AUTH)).json()["detail"]
        for body in ({}, {"text": 5}, {"text": "ok", "author": "someone else"}):
            assert_problem(await client.post(url, json=body, headers=AUTH), 422)
        assert_problem(await client.post(f"{alert_url(tenant_id, 'nowhere')}/notes", json={"text": "hi"},
                                         headers=AUTH), 404)
    assert await db_pool.fetchval("SELECT count(*) FROM alert_notes WHERE tenant_id = $1", tenant_id) == 2
