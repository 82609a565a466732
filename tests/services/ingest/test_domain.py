"""Created / updated / duplicate decisions, partial posts, actor and time of changes (no I/O)."""

import json
from datetime import UTC, datetime

from services.ingest.domain import acted_on, actor_from, decide, event_id_for, patched
from shared.action_links import Action
from shared.alerts import Alert, AlertStatus, ResolvedReason
from shared.events import Actor, ActorType, AlertCreated, AlertUpdated
from shared.responses import first_partner_response

T = "tenant-a"
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
BASE = {
    "id": "a1",
    "displayName": "Unusual sign-in",
    "severity": "high",
    "status": "active",
    "detectedDateTime": "2026-05-01T08:00:00Z",
}


def alert(**fields) -> Alert:
    return Alert.model_validate({**BASE, **fields})


def user(name: str) -> Actor:
    return Actor(type=ActorType.user, id=name)


def test_first_sight_is_created_with_deterministic_id():
    event = decide(T, alert(), None, now=NOW)
    assert isinstance(event, AlertCreated)
    assert event.alert.id == "a1" and event.ingested_date_time == NOW
    assert event.event_id == event_id_for(T, "a1", 1, event.alert)
    assert decide(T, alert(), None, now=NOW).event_id == event.event_id  # a retry: the same id
    assert decide(T, alert(severity="low"), None, now=NOW).event_id != event.event_id
    assert event.kafka_key() == b"tenant-a:a1"


def test_an_events_record_holds_the_alert_text_its_id_was_made_of(monkeypatch):
    # The alert is serialised once per decision (#15): the event's id hashes that text and its record
    # carries it, and the record reads back as the event's own JSON would.
    calls = []
    dump = Alert.model_dump_json
    monkeypatch.setattr(Alert, "model_dump_json", lambda self, **kw: calls.append(self.id) or dump(self, **kw))
    created = decide(T, alert(), None, now=NOW)
    updated = decide(T, alert(severity="low"), created.alert, now=NOW, previous_version=1)
    records = [created.record_value(), updated.record_value(), created.alert_json(), updated.alert_json()]
    assert calls == ["a1", "a1"]
    monkeypatch.undo()
    for event, record in zip((created, updated), records, strict=False):
        assert json.loads(record) == json.loads(event.model_dump_json())
        assert json.loads(record)["alert"] == json.loads(event.alert.model_dump_json())
    assert created.event_id == event_id_for(T, "a1", 1, created.alert)
    assert updated.event_id == event_id_for(T, "a1", 2, updated.alert)


def test_an_event_given_another_alert_writes_that_one_not_the_text_kept():
    created = decide(T, alert(), None, now=NOW)
    copied = created.model_copy(update={"alert": alert(severity="low")})
    assert json.loads(copied.record_value())["alert"]["severity"] == "low"
    assert json.loads(created.record_value())["alert"]["severity"] == "high"


def test_a_created_state_already_serialised_is_not_serialised_again():
    text = alert().model_dump_json()
    given = decide(T, alert(), None, now=NOW, created_json=text)
    assert given.alert_json() is text
    assert given.event_id == decide(T, alert(), None, now=NOW).event_id


def test_created_without_status_is_active_and_logs_become_status_changes():
    posted = Alert.model_validate(
        {
            "id": "a1",
            "activityLogs": [
                {
                    "statusFrom": "active",
                    "statusTo": "investigating",
                    "updatedBy": "ann",
                    "updatedDateTime": "2026-05-01T09:00:00",
                }
            ],
        }
    )
    event = decide(T, posted, None, now=NOW)
    assert event.alert.status is AlertStatus.active
    assert [(c.field, c.to, c.actor.id) for c in event.status_changes] == [("status", "investigating", "ann")]


def test_same_post_again_is_a_duplicate():
    previous = decide(T, alert(), None, now=NOW).alert
    assert decide(T, alert(), previous, now=NOW, previous_version=1) is None


def test_partial_post_keeps_absent_fields_and_null_clears():
    previous = alert(description="d")
    assert decide(T, Alert.model_validate({"id": "a1"}), previous, now=NOW, previous_version=1) is None
    event = decide(
        T, Alert.model_validate({"id": "a1", "description": None}), previous, now=NOW, previous_version=1
    )
    assert isinstance(event, AlertUpdated)
    assert [(c.field, c.from_, c.to) for c in event.changes] == [("description", "d", None)]
    assert event.alert.severity.value == "high" and event.alert.description is None


def test_null_status_keeps_the_previous_status():
    previous = alert(status="investigating")
    assert decide(T, Alert.model_validate({"id": "a1", "status": None}), previous, now=NOW) is None


def test_update_lists_changed_fields_and_a_version_based_id():
    event = decide(T, alert(severity="low", displayName="Renamed"), alert(), now=NOW, previous_version=3)
    assert isinstance(event, AlertUpdated)
    assert {(c.field, c.from_, c.to) for c in event.changes} == {
        ("severity", "high", "low"),
        ("displayName", "Unusual sign-in", "Renamed"),
    }
    assert event.status_changes == []
    assert event.actor.type is ActorType.system and event.changed_date_time == NOW
    assert event.event_id == event_id_for(T, "a1", 4, event.alert)
    assert event.kafka_key() == b"tenant-a:a1"


def test_status_change_told_by_a_new_log_entry_is_by_that_user_at_that_time():
    log = {
        "statusFrom": "active",
        "statusTo": "resolved",
        "updatedBy": "ann@partner.example",
        "updatedDateTime": "2026-05-01T10:30:00+02:00",
    }
    event = decide(T, alert(status="resolved", resolvedReason="fraud", activityLogs=[log]), alert(), now=NOW)
    when = datetime(2026, 5, 1, 8, 30, tzinfo=UTC)
    assert event.actor == user("ann@partner.example") and event.changed_date_time == when
    assert [(c.field, c.from_, c.to, c.actor.id, c.changed_date_time) for c in event.status_changes] == [
        ("status", "active", "resolved", "ann@partner.example", when),
        ("resolvedReason", None, "fraud", "ann@partner.example", when),
    ]
    assert "activityLogs" not in {c.field for c in event.changes}
    assert first_partner_response(event.status_changes).changed_date_time == when


def test_status_change_without_a_log_entry_is_by_the_system_now():
    event = decide(T, alert(status="resolved", resolvedReason="ignore"), alert(), now=NOW)
    assert event.actor.type is ActorType.system and event.changed_date_time == NOW
    assert {(c.field, c.actor.type) for c in event.status_changes} == {
        ("status", ActorType.system),
        ("resolvedReason", ActorType.system),
    }
    assert first_partner_response(event.status_changes) is None


def test_empty_or_system_updated_by_is_the_system():
    assert actor_from("") == actor_from(None) == actor_from(" System ") == Actor(type=ActorType.system)
    log = {
        "statusFrom": "active",
        "statusTo": "investigating",
        "updatedBy": "system",
        "updatedDateTime": "2026-05-01T09:00:00Z",
    }
    event = decide(T, alert(status="investigating", activityLogs=[log]), alert(), now=NOW)
    assert [c.actor.type for c in event.status_changes] == [ActorType.system]
    assert first_partner_response(event.status_changes) is None


def test_new_log_entries_alone_are_an_update_and_known_ones_are_not():
    log = {
        "statusFrom": "active",
        "statusTo": "investigating",
        "updatedBy": "bob",
        "updatedDateTime": "2026-05-01T09:00:00Z",
    }
    back = {
        "statusFrom": "investigating",
        "statusTo": "active",
        "updatedBy": "bob",
        "updatedDateTime": "2026-05-01T09:05:00Z",
    }
    event = decide(T, alert(activityLogs=[log, back]), alert(), now=NOW)
    assert isinstance(event, AlertUpdated) and event.changes == []
    assert [c.to for c in event.status_changes] == ["investigating", "active"]
    assert first_partner_response(event.status_changes).to == "investigating"
    # The same entries (snake_case, naive time) posted again are known: a duplicate.
    again = Alert.model_validate(
        {
            **BASE,
            "activity_logs": [
                {
                    "status_from": "active",
                    "status_to": "investigating",
                    "updated_by": "bob",
                    "updated_date_time": "2026-05-01T09:00:00",
                }
            ],
        }
    )
    assert decide(T, again, event.alert, now=NOW) is None


def test_logs_of_a_partial_post_are_merged_not_replaced():
    first = {
        "statusFrom": "active",
        "statusTo": "investigating",
        "updatedBy": "bob",
        "updatedDateTime": "2026-05-01T09:00:00Z",
    }
    second = {
        "statusFrom": "investigating",
        "statusTo": "resolved",
        "updatedBy": "eve",
        "updatedDateTime": "2026-05-01T10:00:00Z",
    }
    previous = alert(status="investigating", activityLogs=[first])
    event = decide(
        T,
        Alert.model_validate({"id": "a1", "status": "resolved", "activityLogs": [second]}),
        previous,
        now=NOW,
    )
    assert [log.updated_by for log in event.alert.activity_logs] == ["bob", "eve"]
    assert [(c.field, c.actor.id) for c in event.status_changes] == [("status", "eve")]


def test_api_change_is_by_the_caller_at_request_time():
    previous = alert(
        activityLogs=[
            {
                "statusFrom": "active",
                "statusTo": "active",
                "updatedBy": "x",
                "updatedDateTime": "2026-05-01T09:00:00Z",
            }
        ]
    )
    caller = user("key-user")
    incoming = patched(
        previous,
        status=AlertStatus.resolved,
        resolved_reason=ResolvedReason.legitimate,
        fields={"status", "resolved_reason"},
        actor=caller,
        now=NOW,
    )
    event = decide(T, incoming, previous, now=NOW, previous_version=2, api_actor=caller)
    assert event.actor == caller and event.changed_date_time == NOW
    assert [(c.field, c.to, c.actor, c.changed_date_time) for c in event.status_changes] == [
        ("status", "resolved", caller, NOW),
        ("resolvedReason", "legitimate", caller, NOW),
    ]
    assert event.alert.resolved_on_date_time == NOW and event.alert.resolved_by == "key-user"
    assert event.alert.activity_logs[-1].updated_by == "key-user"
    assert event.event_id == event_id_for(T, "a1", 3, event.alert)


def test_patch_of_only_resolved_reason_leaves_status_and_same_patch_is_duplicate():
    previous = alert(status="resolved")
    caller = user("u")
    incoming = patched(
        previous,
        status=None,
        resolved_reason=ResolvedReason.fraud,
        fields={"resolved_reason"},
        actor=caller,
        now=NOW,
    )
    event = decide(T, incoming, previous, now=NOW, api_actor=caller)
    assert [(c.field, c.to) for c in event.status_changes] == [("resolvedReason", "fraud")]
    assert event.alert.status is AlertStatus.resolved
    again = patched(
        event.alert,
        status=None,
        resolved_reason=ResolvedReason.fraud,
        fields={"resolved_reason"},
        actor=caller,
        now=NOW,
    )
    assert decide(T, again, event.alert, now=NOW, api_actor=caller) is None


def test_reopening_clears_resolution():
    previous = alert(status="resolved", resolvedOnDateTime="2026-05-01T09:00:00Z", resolvedBy="ann")
    incoming = patched(
        previous, status=AlertStatus.active, resolved_reason=None, fields={"status"}, actor=user("u"), now=NOW
    )
    assert incoming.resolved_on_date_time is None and incoming.resolved_by is None


def test_a_state_read_back_from_storage_equals_the_same_post():
    posted = {
        **BASE,
        "detectedDateTime": "2026-05-01T08:00:00.1234567+05:30",
        "isTest": "TRUE",
        "resolvedOn": "9999-12-31T23:59:59.997",
        "resolvedReason": "None",
        "severity": "critical",
        "additionalDetails": {"hitCount": 3, "ratio": 0.1, "nested": {"a": [1, "b"]}},
        "affectedResources": [{"resourceId": "vm", "resourceType": "virtualMachine"}],
        "activityLogs": [
            {
                "statusFrom": "active",
                "statusTo": "active",
                "updatedBy": "",
                "updatedDateTime": "2026-05-01T08:00:00",
            }
        ],
    }
    stored = decide(T, Alert.model_validate(posted), None, now=NOW).alert
    read_back = Alert.model_validate_json(stored.model_dump_json())
    assert decide(T, Alert.model_validate(posted), read_back, now=NOW, previous_version=1) is None


def test_a_one_click_or_bulk_action_changes_the_alert_as_change_for_says_and_never_reopens():
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    bob = Actor(type=ActorType.user, id="bob@partner.example")
    new = Alert(id="a1")
    taken = acted_on(new, Action.acknowledge, bob, now)
    assert taken.status.value == "investigating" and taken.activity_logs[-1].updated_by == "bob@partner.example"
    assert acted_on(taken, Action.acknowledge, bob, now) is taken  # already taken up: nothing to change
    resolved = acted_on(taken, Action.resolve_fraud, bob, now)
    assert (resolved.status.value, resolved.resolved_reason.value, resolved.resolved_by) == (
        "resolved", "fraud", "bob@partner.example")
    assert acted_on(resolved, Action.acknowledge, bob, now) is resolved  # never reopens
    unknown = new.model_copy(update={"status": None})
    assert acted_on(unknown, Action.acknowledge, bob, now).status.value == "investigating"
