"""The one-line summary of a timeline entry's details, as ``alerts timeline`` shows it (pure, no I/O)."""

from __future__ import annotations

from cli.timeline import summary, timeline_row


def entry(type_: str, details: dict, actor: str | None = None) -> dict:
    return {"type": type_, "occurredDateTime": "2026-05-01T10:00:00Z", "actor": actor, "details": details}


def test_a_received_alert_says_its_severity_status_title_and_customer():
    received = entry("received", {"displayName": "Impossible travel", "severity": "high", "status": "active",
                                  "detectedDateTime": "2026-05-01T09:00:00Z", "customerTenantId": "customer-1",
                                  "isTest": False})
    assert summary(received) == "high, active: Impossible travel (customer customer-1)"
    assert summary(entry("received", {**received["details"], "isTest": True})).endswith("(customer customer-1, test)")


def test_an_update_lists_each_change_from_to():
    updated = entry("updated", {"changes": [{"field": "status", "from": "active", "to": "resolved"},
                                            {"field": "resolvedReason", "from": None, "to": "fraud"}]})
    assert summary(updated) == "status active → resolved, resolvedReason - → fraud"


def test_a_delivery_says_where_it_went_and_how_it_ended():
    delivered = {"deliveryId": "d-1", "channel": "email", "recipient": "soc@partner.example", "state": "delivered",
                 "attempts": 1, "redeliveries": 0, "lastStatusCode": None, "lastError": None,
                 "deliveredDateTime": "2026-05-01T10:00:01Z", "deadLetteredDateTime": None, "digestId": None}
    assert summary(entry("notified", delivered)) == "email to soc@partner.example: delivered"
    dead = {**delivered, "channel": "webhook:jira", "recipient": "https://tickets.example/hook", "state": "dead",
            "attempts": 5, "redeliveries": 1, "lastStatusCode": 500, "lastError": "HTTP 500"}
    assert summary(entry("escalated", dead)) == (
        "webhook:jira to https://tickets.example/hook: dead after 5 attempts, redelivered 1 time (HTTP 500)")
    grouped = {**delivered, "state": "grouped", "digestId": "g-7"}
    assert summary(entry("reminded", grouped)) == "email to soc@partner.example: grouped in digest g-7"


def test_assignments_notes_responses_and_syncs_say_what_happened():
    assert summary(entry("assigned", {"assignee": "bo@p.example", "previousAssignee": None})) == "to bo@p.example"
    assert summary(entry("assigned", {"assignee": "bo@p.example", "previousAssignee": "al@p.example"})) == (
        "to bo@p.example (was al@p.example)")
    assert summary(entry("unassigned", {"assignee": None, "previousAssignee": "bo@p.example"})) == (
        "was bo@p.example")
    assert summary(entry("noted", {"noteId": "n-1", "text": "Called them.\nNot them."})) == "Called them.\nNot them."
    assert summary(entry("responded", {"latencyHours": 2.0004})) == "after 2 h"
    assert summary(entry("synced", {"state": "pending", "lastSyncedDateTime": None, "pendingStatus": "resolved",
                                    "attempts": 3, "lastError": "HTTP 503"})) == (
        "pending resolved, 3 attempts (HTTP 503)")
    assert summary(entry("synced", {"state": "synced", "lastSyncedDateTime": "2026-05-01T10:00:00Z",
                                    "pendingStatus": None, "attempts": 0, "lastError": None})) == "synced"


def test_an_entry_of_a_type_it_does_not_know_shows_its_details_whole():
    assert summary(entry("escalated-twice", {"why": "new"})) == '{"why":"new"}'
    assert summary({"type": "received"}) == ""  # no details: nothing to say, never an error


def test_a_row_is_time_type_actor_summary():
    row = timeline_row(entry("noted", {"noteId": "n-1", "text": "hello"}, actor="ana@p.example"))
    assert row == ["2026-05-01T10:00:00Z", "noted", "ana@p.example", "hello"]
