"""The tolerant parsing of SPEC §2, with no I/O."""

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from shared.alerts import (
    Alert,
    AlertStatus,
    ResolvedReason,
    Severity,
    alert_document_from_fraud_event,
    is_fraud_event,
)


def test_naive_timestamp_is_utc_and_offset_is_converted():
    alert = Alert.model_validate(
        {
            "id": "a",
            "detectedDateTime": "2026-01-01T10:00:00",
            "lastObservedDateTime": "2026-01-01T10:00:00+05:30",
        }
    )
    assert alert.detected_date_time == datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    assert alert.last_observed_date_time == datetime(2026, 1, 1, 4, 30, tzinfo=UTC)


def test_older_feed_placeholders_mean_null():
    alert = Alert.model_validate(
        {"id": "a", "resolvedReason": "None", "resolvedOn": "9999-12-31T23:59:59.997"}
    )
    assert alert.resolved_reason is None
    assert alert.resolved_on_date_time is None


def test_string_is_test_and_snake_case_and_unknown_enums():
    alert = Alert.model_validate(
        {
            "id": "a",
            "is_test": "TRUE",
            "severity": "critical",
            "status": "Resolved",
            "resolved_reason": "fraud",
            "display_name": "x",
        }
    )
    assert alert.is_test is True
    assert alert.severity is Severity.unknownFutureValue
    assert alert.status is AlertStatus.resolved
    assert alert.resolved_reason is ResolvedReason.fraud
    assert alert.display_name == "x"


def test_plus_0530_offset_is_converted_and_seven_fraction_digits_are_accepted():
    alert = Alert.model_validate({"id": "a", "detectedDateTime": "2026-03-01T05:30:00.1234567+05:30"})
    assert alert.detected_date_time == datetime(2026, 3, 1, 0, 0, 0, 123456, tzinfo=UTC)


def test_is_test_spellings():
    assert Alert.model_validate({"id": "a", "isTest": "false"}).is_test is False
    assert Alert.model_validate({"id": "a", "isTest": "1"}).is_test is True
    assert Alert.model_validate({"id": "a", "isTest": None}).is_test is False
    assert Alert.model_validate({"id": "a"}).is_test is False


def test_unknown_enum_values_are_kept_as_unknown_future_value():
    alert = Alert.model_validate(
        {
            "id": "a",
            "status": "escalated",
            "resolvedReason": "other",
            "confidenceLevel": "certain",
            "activityLogs": [{"statusFrom": "active", "statusTo": "paused"}],
        }
    )
    assert alert.status is AlertStatus.unknownFutureValue
    assert alert.resolved_reason is ResolvedReason.unknownFutureValue
    assert alert.confidence_level.value == "unknownFutureValue"
    assert alert.activity_logs[0].status_to is AlertStatus.unknownFutureValue


def test_numeric_id_is_text_and_empty_id_is_refused():
    assert Alert.model_validate({"id": 42}).id == "42"
    with pytest.raises(ValidationError):
        Alert.model_validate({"id": ""})


def test_snake_case_of_every_kind_of_field():
    alert = Alert.model_validate(
        {
            "id": "a",
            "customer_tenant_id": "c",
            "detected_date_time": "2026-01-01T00:00:00Z",
            "affected_resources": [{"resource_id": "r", "resource_type": "vm"}],
            "activity_logs": [
                {
                    "status_from": "active",
                    "status_to": "resolved",
                    "updated_by": "ann",
                    "updated_date_time": "2026-01-01T01:00:00",
                }
            ],
        }
    )
    assert alert.customer_tenant_id == "c"
    assert alert.affected_resources[0].resource_id == "r"
    assert alert.activity_logs[0].updated_by == "ann"
    assert alert.activity_logs[0].updated_date_time == datetime(2026, 1, 1, 1, tzinfo=UTC)


FRAUD_EVENT = {
    "eventId": "fe-1",
    "eventTime": "2026-02-01T10:00:00",
    "eventStatus": "InProgress",
    "eventName": "Crypto mining",
    "fraudEventType": "cryptoMining",
    "customerTenantId": "cust-1",
    "customerName": "Contoso",
    "subscriptionId": "sub-1",
    "subscriptionType": "Azure",
    "entityId": "vm-1",
    "entityName": "VirtualMachine",
    "entityUrl": "https://portal/vm-1",
    "hitCount": 7,
    "catalogOfferId": "MS-AZR-1",
    "firstOccurrence": "2026-02-01T09:00:00+05:30",
    "lastOccurrence": "2026-02-01T11:00:00Z",
    "resolvedOn": "9999-12-31T23:59:59.997",
    "resolvedReason": "None",
    "resolvedBy": "None",
    "serviceName": "Compute",
    "resourceName": "vm-1",
    "resourceGroupName": "rg-1",
    "somethingNew": "kept",
}


def test_fraud_event_is_recognised_by_event_id_or_event_status():
    assert is_fraud_event({"eventId": "x"})
    assert is_fraud_event({"id": "x", "eventStatus": "Active"})
    assert is_fraud_event({"event_id": "x"})
    assert not is_fraud_event({"id": "x", "status": "active"})
    assert not is_fraud_event([{"eventId": "x"}])


def test_fraud_event_maps_to_an_alert():
    alert = Alert.model_validate(alert_document_from_fraud_event(FRAUD_EVENT))
    assert alert.id == "fe-1"
    assert alert.detected_date_time == datetime(2026, 2, 1, 10, tzinfo=UTC)
    assert alert.status is AlertStatus.investigating
    assert alert.alert_type == "cryptoMining" and alert.display_name == "Crypto mining"
    assert alert.customer_tenant_id == "cust-1" and alert.subscription_id == "sub-1"
    assert alert.catalog_offer_id == "MS-AZR-1"
    assert alert.first_observed_date_time == datetime(2026, 2, 1, 3, 30, tzinfo=UTC)
    assert alert.last_observed_date_time == datetime(2026, 2, 1, 11, tzinfo=UTC)
    assert alert.resolved_on_date_time is None and alert.resolved_reason is None and alert.resolved_by is None
    assert [(r.resource_id, r.resource_type) for r in alert.affected_resources] == [
        ("vm-1", "VirtualMachine"),
        ("rg-1/vm-1", "Compute"),
    ]
    assert alert.additional_details["customerName"] == "Contoso"
    assert alert.additional_details["hitCount"] == 7
    assert alert.additional_details["subscriptionType"] == "Azure"
    assert alert.additional_details["somethingNew"] == "kept"


def test_fraud_event_resolved_and_snake_case():
    document = alert_document_from_fraud_event(
        {
            "event_id": "fe-2",
            "event_status": "Resolved",
            "resolved_on": "2026-02-02T00:00:00",
            "resolved_reason": "Fraud",
        }
    )
    alert = Alert.model_validate(document)
    assert alert.status is AlertStatus.resolved
    assert alert.resolved_reason is ResolvedReason.fraud
    assert alert.resolved_on_date_time == datetime(2026, 2, 2, tzinfo=UTC)


def test_fraud_event_keeps_absent_fields_absent():
    document = alert_document_from_fraud_event({"eventId": "fe-3", "eventStatus": "Active"})
    assert set(document) == {"id", "status"}
    assert Alert.model_validate(document).model_fields_set == {"id", "status"}
