"""The tolerant parsing of SPEC §2, with no I/O."""

from datetime import UTC, datetime

from shared.alerts import Alert, AlertStatus, ResolvedReason, Severity


def test_naive_timestamp_is_utc_and_offset_is_converted():
    alert = Alert.model_validate({"id": "a", "detectedDateTime": "2026-01-01T10:00:00",
                                  "lastObservedDateTime": "2026-01-01T10:00:00+05:30"})
    assert alert.detected_date_time == datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    assert alert.last_observed_date_time == datetime(2026, 1, 1, 4, 30, tzinfo=UTC)


def test_older_feed_placeholders_mean_null():
    alert = Alert.model_validate({"id": "a", "resolvedReason": "None", "resolvedOn": "9999-12-31T23:59:59.997"})
    assert alert.resolved_reason is None
    assert alert.resolved_on_date_time is None


def test_string_is_test_and_snake_case_and_unknown_enums():
    alert = Alert.model_validate({"id": "a", "is_test": "TRUE", "severity": "critical", "status": "Resolved",
                                  "resolved_reason": "fraud", "display_name": "x"})
    assert alert.is_test is True
    assert alert.severity is Severity.unknownFutureValue
    assert alert.status is AlertStatus.resolved
    assert alert.resolved_reason is ResolvedReason.fraud
    assert alert.display_name == "x"
