"""Routing a batch's records by their eventType header (no I/O)."""

from __future__ import annotations

import pytest
from aiokafka import ConsumerRecord
from pydantic import ValidationError

from services.response_time.handlers import EVENT_TYPES
from shared.alerts import Alert
from shared.events import AlertCreated, RequirementStatusObserved
from shared.kafka import event_headers, record_event


def parse_record(record):
    return record_event(record, EVENT_TYPES, others_are_poison=False)


def record(value: bytes, headers: dict[str, str]) -> ConsumerRecord:
    return ConsumerRecord(
        topic="alerts",
        partition=0,
        offset=1,
        timestamp=0,
        timestamp_type=0,
        key=b"k",
        value=value,
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=len(value),
        headers=[(k, v.encode()) for k, v in headers.items()],
    )


def test_an_alert_created_record_becomes_its_event():
    event = AlertCreated(tenant_id="t1", alert=Alert(id="a1"))
    parsed = parse_record(record(event.model_dump_json().encode(), event_headers(event)))
    assert isinstance(parsed, AlertCreated) and parsed.event_id == event.event_id


def test_a_type_this_service_does_not_use_is_ignored():
    other = RequirementStatusObserved(
        tenant_id="t1",
        requirement_type="x",
        compliance_status="compliant",
        observed_date_time="2026-11-27T00:00:00Z",
        source="test",
    )
    assert parse_record(record(other.model_dump_json().encode(), event_headers(other))) is None
    assert parse_record(record(b"{}", {})) is None


def test_a_malformed_record_raises_a_poison_error():
    with pytest.raises(ValidationError):
        parse_record(record(b'{"eventType": "alert-created"}', {"eventType": "alert-created"}))
    with pytest.raises(ValidationError):
        parse_record(record(b"not json", {"eventType": "alert-updated"}))
