"""The accepted request shapes and their refusals (no I/O)."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.ingest.parsing import alerts_from_document, parse_json, require_json_media_type
from services.ingest.routes_alerts import AlertPatch
from shared.http import Problem


def refusal(call, *args) -> Problem:
    with pytest.raises(Problem) as caught:
        call(*args)
    return caught.value


def test_one_alert_a_graph_list_and_a_bare_list():
    assert [a.id for a in alerts_from_document({"id": "a"}, 10)] == ["a"]
    assert [a.id for a in alerts_from_document({"value": [{"id": "a"}, {"id": "b"}]}, 10)] == ["a", "b"]
    assert [a.id for a in alerts_from_document([{"id": "a"}], 10)] == ["a"]
    assert alerts_from_document({"value": []}, 10) == []


def test_fraud_events_in_every_shape():
    event = {"eventId": "f1", "eventStatus": "Active", "eventTime": "2026-01-01T00:00:00"}
    assert [a.id for a in alerts_from_document(event, 10)] == ["f1"]
    assert [a.id for a in alerts_from_document([event, {**event, "eventId": "f2"}], 10)] == ["f1", "f2"]
    assert [a.id for a in alerts_from_document({"value": [event]}, 10)] == ["f1"]


def test_schema_violation_names_the_field_path():
    problem = refusal(
        alerts_from_document,
        {"value": [{"id": "a"}, {"id": "b"}, {"id": "c"}, {"id": "d", "detectedDateTime": "yesterday"}]},
        10,
    )
    assert problem.status == 422
    assert problem.extra["errors"][0]["field"] == "value[3].detectedDateTime"
    single = refusal(alerts_from_document, {"displayName": "no id"}, 10)
    assert single.status == 422 and single.extra["errors"][0]["field"] == "id"
    bare = refusal(alerts_from_document, [{"id": "a", "isTest": "maybe"}], 10)
    assert bare.extra["errors"][0]["field"] == "[0].isTest"
    nested = refusal(
        alerts_from_document, {"value": [{"id": "a", "affectedResources": [{"resourceId": 5}]}]}, 10
    )
    assert nested.extra["errors"][0]["field"] == "value[0].affectedResources[0].resourceId"


def test_fraud_event_errors_name_the_posted_field():
    problem = refusal(alerts_from_document, {"value": [{"eventId": "f", "eventTime": "not a time"}]}, 10)
    assert problem.extra["errors"][0]["field"] == "value[0].eventTime"


def test_other_shapes_and_duplicate_ids_are_refused():
    assert refusal(alerts_from_document, "text", 10).status == 422
    assert refusal(alerts_from_document, {"value": {"id": "a"}}, 10).extra["errors"][0]["field"] == "value"
    assert refusal(alerts_from_document, {"value": [1]}, 10).extra["errors"][0]["field"] == "value[0]"
    duplicate = refusal(alerts_from_document, {"value": [{"id": "a"}, {"id": "a"}]}, 10)
    assert duplicate.status == 422 and duplicate.extra["errors"][0]["field"] == "value[1].id"


def test_too_many_alerts_is_413():
    assert refusal(alerts_from_document, {"value": [{"id": str(i)} for i in range(11)]}, 10).status == 413


def test_malformed_json_is_400_and_media_types():
    assert refusal(parse_json, b"{not json").status == 400
    assert refusal(parse_json, b"\xff\xfe").status == 400
    require_json_media_type("application/json; charset=utf-8")
    require_json_media_type("application/merge-patch+json")
    assert refusal(require_json_media_type, "text/plain").status == 415
    assert refusal(require_json_media_type, None).status == 415


def test_patch_body_accepts_known_values_and_refuses_the_rest():
    change = AlertPatch.model_validate({"status": "resolved", "resolved_reason": None, "updatedBy": "ann"})
    assert change.model_fields_set == {"status", "resolved_reason", "updated_by"}
    for bad in ({"status": "closed"}, {"resolvedReason": "unknownFutureValue"}, {"severity": "high"}):
        with pytest.raises(ValidationError):
            AlertPatch.model_validate(bad)


@pytest.mark.parametrize(
    "body",
    [
        b'{"id": "a", "n": ' + b"1" * 5000 + b"}",  # past Python's integer digit limit
        b"[" * 100_000,  # deeper than the decoder's recursion
        b'{"id": "a", "score": NaN}',
        b'{"id": "a", "score": Infinity}',
        b'{"id": "a", "score": -Infinity}',
    ],
)
def test_bodies_the_decoder_cannot_take_are_400(body):
    assert refusal(parse_json, body).status == 400


def test_nesting_deeper_than_the_limit_is_422_naming_the_path():
    deep: object = 1
    for _ in range(600):
        deep = {"k": deep}
    body = json.dumps({"id": "a", "additionalDetails": {"x": [deep]}}).encode()
    problem = refusal(parse_json, body)
    assert problem.status == 422
    field = problem.extra["errors"][0]["field"]
    assert field.startswith("additionalDetails.x[0].k.k") and "nested deeper than 32" in problem.detail
    # Up to the limit is fine (a Graph list adds two levels).
    shallow: object = 1
    for _ in range(20):
        shallow = {"k": shallow}
    alerts = alerts_from_document(parse_json(json.dumps({"value": [{"id": "a", "additionalDetails": shallow}]})), 10)
    assert alerts[0].model_dump_json()


@pytest.mark.parametrize("bad", ["\\u0000", "\\ud800"])
def test_nul_and_lone_surrogates_in_any_text_are_422(bad):
    for body in (
        '{"id": "a", "description": "x' + bad + 'y"}',
        '{"value": [{"id": "a"}, {"id": "b", "additionalDetails": {"k": ["' + bad + '"]}}]}',
    ):
        problem = refusal(alerts_from_document, parse_json(body.encode()), 10)
        assert problem.status == 422 and "unpaired surrogate" in problem.detail


def test_activity_log_times_more_than_five_minutes_ahead_are_422():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    ahead = (now + timedelta(minutes=6)).isoformat()
    skewed = (now + timedelta(minutes=4)).isoformat()
    logs = [
        {"statusFrom": "active", "statusTo": "investigating", "updatedBy": "u", "updatedDateTime": skewed},
        {"statusFrom": "investigating", "statusTo": "resolved", "updatedBy": "u", "updatedDateTime": ahead},
    ]
    with pytest.raises(Problem) as caught:
        alerts_from_document({"value": [{"id": "a", "activityLogs": logs}]}, 10, now=now)
    assert caught.value.status == 422
    assert [e["field"] for e in caught.value.extra["errors"]] == ["value[0].activityLogs[1].updatedDateTime"]
    assert alerts_from_document({"id": "a", "activityLogs": logs[:1]}, 10, now=now)[0].activity_logs



def test_detection_times_more_than_five_minutes_ahead_are_422():
    # A detection in the future would start the response clock late: after a response the 30-day
    # average would read 0.0 h. Only clock skew is tolerated, as for activity-log times.
    now = datetime(2026, 1, 1, tzinfo=UTC)
    in_ten_days = (now + timedelta(days=10)).isoformat()
    with pytest.raises(Problem) as caught:
        alerts_from_document({"value": [{"id": "a"}, {"id": "b", "detectedDateTime": in_ten_days}]}, 10, now=now)
    assert caught.value.status == 422
    assert caught.value.extra["errors"] == [
        {"field": "value[1].detectedDateTime", "message": f"{in_ten_days} is in the future"}
    ]
    skewed = (now + timedelta(minutes=4)).isoformat()
    assert alerts_from_document({"id": "a", "detectedDateTime": skewed}, 10, now=now)[0].detected_date_time
    fraud = {"eventId": "f1", "eventStatus": "Active", "eventTime": in_ten_days}
    with pytest.raises(Problem) as caught:
        alerts_from_document(fraud, 10, now=now)
    assert caught.value.extra["errors"][0]["field"] == "eventTime"
