"""Pure rules of the Partner Center connection: ids, the poll's filter, backoffs, newest activity, the
sync state an event tells (no I/O)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from services.ingest.graph.domain import (
    DIRECTORY_ID_PATTERN,
    GUID_PATTERN,
    newest_activity,
    next_poll_after_failure,
    poll_filter,
    sync_changed,
    sync_state,
    writeback_backoff,
)
from shared.events import PartnerCenterSyncState

APP = "11111111-2222-3333-4444-555555555555"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.parametrize("value", ["72f988bf-86f1-41af-91ab-2d7cd011db47", "72F988BF-86F1-41AF-91AB-2D7CD011DB47"])
def test_a_guid_names_an_app_and_a_directory(value):
    assert re.fullmatch(GUID_PATTERN, value)
    assert re.fullmatch(DIRECTORY_ID_PATTERN, value)


@pytest.mark.parametrize("value", ["contoso.onmicrosoft.com", "partner.example", "sub.contoso-eu.co.uk"])
def test_a_domain_names_a_directory_not_an_app(value):
    assert re.fullmatch(DIRECTORY_ID_PATTERN, value)
    assert not re.fullmatch(GUID_PATTERN, value)


@pytest.mark.parametrize("value", ["", "contoso", "72f988bf-86f1-41af-91ab", "contoso.onmicrosoft.com/x",
                                   "-contoso.com", "a b.com", "72f988bf86f141af91ab2d7cd011db47x",
                                   "http://contoso.com"])
def test_anything_else_names_no_directory(value):
    assert not re.fullmatch(DIRECTORY_ID_PATTERN, value)


def test_newest_activity_is_the_latest_log_entry_or_resolution_with_documented_odd_values():
    alert = {
        "status": "resolved",
        "resolvedOnDateTime": "2023-08-10T09:00:00.1234567Z",  # seven-digit fraction, as Graph writes it
        "activityLogs": [
            {"statusFrom": "active", "statusTo": "investigating", "updatedBy": "ana@partner.example",
             "updatedDateTime": "2023-08-10T08:47:10.8454142Z"},
            {"statusFrom": "investigating", "statusTo": "resolved", "updatedBy": "ana@partner.example",
             "updatedDateTime": "2023-08-10T08:59:00Z"},
        ],
    }
    assert newest_activity(alert) == at("2023-08-10T09:00:00.123456Z")
    later_log = {**alert, "activityLogs": [*alert["activityLogs"],
                                           {"updatedDateTime": "2023-08-10T10:00:00"}]}  # no offset: UTC
    assert newest_activity(later_log) == at("2023-08-10T10:00:00Z")


def test_an_alert_nobody_acted_on_has_no_activity_and_unreadable_parts_are_passed_over():
    assert newest_activity({"status": "active", "resolvedOnDateTime": None, "activityLogs": []}) is None
    assert newest_activity({"status": "active"}) is None
    assert newest_activity({"resolvedOnDateTime": "9999-12-31T23:59:59Z"}) is None  # the "never" placeholder
    odd = {"resolvedOnDateTime": "yesterday", "activityLogs": [
        "not an entry", {"updatedDateTime": 42}, {"updatedDateTime": "2024-01-01T00:00:00Z"}, {}]}
    assert newest_activity(odd) == at("2024-01-01T00:00:00Z")
    assert newest_activity({"activityLogs": "not a list"}) is None


def test_our_own_write_backs_are_not_partner_centers_activity():
    alert = {
        "status": "resolved", "resolvedBy": APP.upper(), "resolvedOnDateTime": "2024-01-02T00:00:00Z",
        "activityLogs": [
            {"updatedBy": "ana@partner.example", "updatedDateTime": "2024-01-01T00:00:00Z"},
            {"updatedBy": APP, "updatedDateTime": "2024-01-02T00:00:00Z"},
        ],
    }
    assert newest_activity(alert) == at("2024-01-02T00:00:00Z")
    assert newest_activity(alert, ignoring_client_id=APP) == at("2024-01-01T00:00:00Z")
    only_ours = {**alert, "activityLogs": alert["activityLogs"][1:]}
    assert newest_activity(only_ours, ignoring_client_id=f" {APP} ") is None


def test_the_first_poll_reads_everything_later_ones_open_and_lately_resolved_alerts():
    assert poll_filter(None) is None
    since = datetime(2026, 3, 1, 12, 5, 30, 987654, tzinfo=UTC)
    assert poll_filter(since) == "status ne 'resolved' or resolvedOnDateTime ge 2026-03-01T11:55:30Z"
    # An offset other than UTC is converted, never sent as local time.
    local = since.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Paris"))
    assert poll_filter(local) == poll_filter(since)


def test_write_back_backoff_doubles_from_five_seconds_within_its_jitter_bounds_and_cap():
    assert [writeback_backoff(n, max_seconds=900, jitter=1) for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert [writeback_backoff(n, max_seconds=900, jitter=0) for n in (1, 2, 3)] == [2.5, 5, 10]
    assert writeback_backoff(0, max_seconds=900, jitter=1) == 5  # no attempt counted yet: as the first
    assert writeback_backoff(9, max_seconds=900, jitter=1) == 900  # 5 × 2^8 = 1280: capped
    assert writeback_backoff(10_000, max_seconds=900, jitter=1) == 900  # no overflow
    assert writeback_backoff(1, max_seconds=3, jitter=1) == 3
    for _ in range(200):  # the random draw stays within its bounds
        assert 20 <= writeback_backoff(4, max_seconds=900) <= 40


def test_a_failed_poll_is_retried_soon_then_less_often_never_later_than_the_interval():
    interval = timedelta(minutes=5)
    waits = [next_poll_after_failure(n, interval) for n in range(1, 7)]
    assert waits == [timedelta(seconds=s) for s in (15, 30, 60, 120, 240, 300)]
    assert next_poll_after_failure(1_000, interval) == interval
    assert next_poll_after_failure(1, timedelta(seconds=2)) == timedelta(seconds=2)
    assert next_poll_after_failure(0, interval) == interval


def row(**columns) -> dict:
    return {"alert_id": "a1", "state": "synced", "last_synced_at": None, "pending_status": None,
            "attempts": 0, "last_error": None, **columns}


def test_the_sync_state_told_of_each_row_state():
    synced_at = at("2026-01-01T00:00:00Z")
    synced = sync_state(row(last_synced_at=synced_at, pending_status="resolved", attempts=3, last_error="old"))
    assert synced.model_dump(mode="json") == {"state": "synced", "lastSyncedDateTime": "2026-01-01T00:00:00Z",
                                              "pendingStatus": None, "attempts": 0, "lastError": None}
    pending = sync_state(row(state="pending", last_synced_at=synced_at, pending_status="resolved", attempts=2,
                             last_error="GET securityAlerts: 503 ServiceUnavailable"))
    assert (pending.state, pending.pending_status, pending.attempts, pending.last_error) == (
        PartnerCenterSyncState.pending, "resolved", 2, "GET securityAlerts: 503 ServiceUnavailable")
    failed = sync_state(row(state="failed", pending_status="investigating", attempts=1, last_error="403 Forbidden"))
    assert (failed.state, failed.last_synced_date_time, failed.last_error) == (
        PartnerCenterSyncState.failed, None, "403 Forbidden")

    event = sync_changed("tenant-a", row(state="pending", pending_status="resolved", attempts=0), synced_at)
    assert (event.event_type, event.kafka_key(), event.occurred_date_time) == (
        "alert-sync-changed", b"tenant-a:a1", synced_at)
    assert event.model_dump(mode="json")["sync"]["pendingStatus"] == "resolved"
