"""When both sides changed an alert: pure rules, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime

from services.ingest.domain import decide
from services.ingest.graph.reconcile import (
    differs,
    keep_local_response,
    local_responder,
    local_response_time,
    own_echo_as_system,
)
from shared.alerts import Alert, AlertStatus, ResolvedReason
from shared.events import ActorType

APP = "9d3f4c1e-0000-4000-8000-00000000aaaa"
T2 = datetime(2026, 11, 30, 9, 30, tzinfo=UTC)


def _alert(**fields) -> Alert:
    return Alert.model_validate({"id": "a-1", "detectedDateTime": "2026-11-30T08:00:00Z", **fields})


def test_our_applications_entries_become_the_systems_and_nothing_else_changes():
    polled = _alert(status="resolved", activityLogs=[
        {"statusFrom": "active", "statusTo": "investigating", "updatedBy": "ann@partner.example",
         "updatedDateTime": "2026-11-30T09:00:00Z"},
        {"statusFrom": "investigating", "statusTo": "resolved", "updatedBy": APP.upper(),
         "updatedDateTime": "2026-11-30T09:30:00Z"},
    ])
    echoed = own_echo_as_system(polled, APP)
    assert [log.updated_by for log in echoed.activity_logs] == ["ann@partner.example", "system"]
    assert echoed.status is AlertStatus.resolved
    assert own_echo_as_system(echoed, APP) == echoed  # stable: the same entry each poll, no new event


def test_an_alert_with_no_entry_of_ours_is_returned_as_it_is():
    polled = _alert(activityLogs=[{"statusFrom": "active", "statusTo": "resolved", "updatedBy": "ann@partner.example",
                                   "updatedDateTime": "2026-11-30T09:00:00Z"}])
    assert own_echo_as_system(polled, APP) is polled


def test_the_echo_of_a_write_back_is_no_persons_response():
    local = _alert(status="resolved", resolvedReason="legitimate")
    polled = _alert(status="resolved", resolvedReason="legitimate", activityLogs=[
        {"statusFrom": "active", "statusTo": "resolved", "updatedBy": APP, "updatedDateTime": "2026-11-30T09:30:00Z"}])
    event = decide("t", own_echo_as_system(polled, APP), local, now=T2, previous_version=2)
    assert event is not None
    assert all(change.actor.type is ActorType.system for change in event.status_changes)


def test_a_pending_response_is_kept_over_partner_centers_older_copy():
    local = _alert(status="resolved", resolvedReason="fraud", resolvedOnDateTime="2026-11-30T09:30:00Z",
                   resolvedBy="bob@partner.example")
    polled = _alert(status="active", displayName="renamed in Partner Center")
    kept = keep_local_response(polled, local)
    assert kept.status is AlertStatus.resolved and kept.resolved_reason is ResolvedReason.fraud
    assert kept.resolved_by == "bob@partner.example" and kept.resolved_on_date_time == T2
    assert kept.display_name == "renamed in Partner Center"  # other fields still come from Partner Center
    event = decide("t", kept, local, now=T2, previous_version=2)
    assert event is not None and [c.field for c in event.changes] == ["displayName"]
    assert event.status_changes == []


def test_when_partner_center_says_our_application_resolved_it_who_and_when_stay_ours():
    local = _alert(status="resolved", resolvedBy="bob@partner.example", resolvedOnDateTime="2026-11-30T09:30:00Z")
    polled = _alert(status="resolved", resolvedBy=APP, resolvedOnDateTime="2026-11-30T09:31:07Z")
    echoed = own_echo_as_system(polled, APP, local)
    assert (echoed.resolved_by, echoed.resolved_on_date_time) == ("bob@partner.example", T2)
    assert decide("t", echoed, local, now=T2, previous_version=2) is None  # nothing changed: no event


def test_a_local_response_is_a_persons_status_change_in_the_activity_log():
    answered = _alert(status="resolved", activityLogs=[
        {"statusFrom": "active", "statusTo": "investigating", "updatedBy": "system",
         "updatedDateTime": "2026-11-30T09:00:00Z"},
        {"statusFrom": "investigating", "statusTo": "resolved", "updatedBy": "bob@partner.example",
         "updatedDateTime": "2026-11-30T09:30:00Z"}])
    assert local_response_time(answered) == T2 and local_responder(answered) == "bob@partner.example"
    by_feed = _alert(status="resolved", activityLogs=[
        {"statusFrom": "active", "statusTo": "resolved", "updatedBy": "", "updatedDateTime": "2026-11-30T09:00:00Z"}])
    assert local_response_time(by_feed) is None and local_responder(by_feed) is None


def test_the_copies_differ_on_status_or_a_reason_given():
    local = _alert(status="resolved", resolvedReason="fraud")
    assert differs(_alert(status="active"), local)
    assert differs(_alert(status="resolved", resolvedReason="ignore"), local)
    assert not differs(_alert(status="resolved", resolvedReason="fraud"), local)
    assert not differs(_alert(displayName="only a rename"), local)  # no status in the copy: nothing to compare
