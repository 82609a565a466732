"""A new alert on the read API from its ``alert-created`` (#15, write -> visible over one Kafka hop, not
two): the row holds what response time's first event of it will say (``shared.response_time.first_state``),
that event takes it over, and a row response time already gave is never taken back. Pure equivalence,
then real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.response_time import domain as response_time
from services.scoring import read_model
from shared.alerts import Alert
from shared.events import Actor, ActorType, AlertCreated, AlertUpdated, FieldChange, StatusChange
from shared.response_time import first_state

T0 = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
H = timedelta(hours=1)
ANA = Actor(type=ActorType.user, id="ana@partner.example")

# Detected an hour before it came; detected nowhere (the clock starts at ingestion); already acknowledged
# by a person in its activity logs when first seen (a response); a test alert; resolved on arrival.
CASES = {
    "detected": dict(alert={"id": "a1", "severity": "high", "detectedDateTime": "2026-11-27T05:00:00Z"}),
    "undetected": dict(alert={"id": "a2", "severity": "low"}),
    "answered": dict(alert={"id": "a3", "status": "investigating", "detectedDateTime": "2026-11-27T04:00:00Z"},
                     status_changes=[StatusChange(field="status", from_="active", to="investigating", actor=ANA,
                                                  changed_date_time=T0 - H)]),
    "test": dict(alert={"id": "a4", "isTest": True}),
    "resolved": dict(alert={"id": "a5", "status": "resolved"}),
}


def created(tenant_id: str, case: str) -> AlertCreated:
    fields = CASES[case]
    return AlertCreated(tenant_id=tenant_id, occurred_date_time=T0, ingested_date_time=T0,
                        alert=Alert.model_validate(fields["alert"]), status_changes=fields.get("status_changes", []))


def first_event(event: AlertCreated):
    """Response time's first ``alert-response-time-changed`` of the alert."""
    [changed] = response_time.response_time_changes({}, {("t", event.alert.id): response_time.on_created(None, event)})
    return changed


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_first_state_is_what_response_times_first_event_says(case):
    event = created("t", case)
    first, changed = first_state(event), first_event(event)
    assert (first.status, first.is_test, first.clock_started_at, first.responded_at, first.responded_by,
            first.latency_us) == (changed.status, changed.is_test, changed.clock_started_date_time,
                                  changed.responded_date_time, changed.responded_by, changed.latency_us)
    assert changed.alert == event.alert.model_dump(mode="json")


@pytest.mark.parametrize("case", sorted(CASES))
async def test_a_new_alert_is_shown_from_its_create_as_response_times_event_then_shows_it(db_pool, tenant_id, case):
    event = created(tenant_id, case)
    assert await read_model.get_alert(db_pool, tenant_id, event.alert.id) is None

    assert await read_model.apply_alert_events(db_pool, [event]) == [event]
    from_create = await read_model.get_alert(db_pool, tenant_id, event.alert.id)
    assert from_create is not None
    version = await _row_version(db_pool, tenant_id, event.alert.id)

    changed = first_event(event).model_copy(update={"tenant_id": tenant_id})
    assert await read_model.apply_alert_response_times(db_pool, [changed]) == [changed]
    from_response_time = await read_model.get_alert(db_pool, tenant_id, event.alert.id)
    assert dict(from_response_time) == dict(from_create)
    # The same state: the row is not written again (an update makes a new row version whatever it changes).
    assert await _row_version(db_pool, tenant_id, event.alert.id) == version


async def _row_version(db_pool, tenant_id: str, alert_id: str) -> str:
    """The alert's row version: the transaction that wrote it (``xmin``)."""
    return await db_pool.fetchval("SELECT xmin::text FROM alert_response_times WHERE tenant_id = $1 AND alert_id = $2",
                                  tenant_id, alert_id)


async def test_response_times_event_takes_the_row_over_whatever_its_clock_says(db_pool, tenant_id):
    # Response time's clock lagging the write API's: its event of the acknowledged alert is stamped an hour
    # before the create was; it still replaces the row the create made.
    event = created(tenant_id, "detected")
    await read_model.apply_alert_events(db_pool, [event])
    [changed] = response_time.response_time_changes({}, {(tenant_id, "a1"): _acknowledged_clock(event)})
    changed = changed.model_copy(update={"occurred_date_time": event.occurred_date_time - H})
    assert await read_model.apply_alert_response_times(db_pool, [changed]) == [changed]
    row = await read_model.get_alert(db_pool, tenant_id, "a1")
    assert (row["status"], row["responded_at"], row["responded_by"]) == ("investigating", T0 + H, ANA.id)


def _acknowledged_clock(event: AlertCreated):
    """Response time's state of the alert once Ana acknowledged it an hour after it came."""
    acknowledged = AlertUpdated(tenant_id=event.tenant_id, occurred_date_time=T0 + H, alert_id="a1", actor=ANA,
                                changed_date_time=T0 + H, alert=Alert(id="a1", status="investigating"),
                                changes=[FieldChange(field="status", from_="active", to="investigating")],
                                status_changes=[StatusChange(field="status", from_="active", to="investigating",
                                                             actor=ANA, changed_date_time=T0 + H)])
    return response_time.on_updated(response_time.on_created(None, event), acknowledged)


async def test_a_create_never_takes_back_what_response_time_said_since(db_pool, tenant_id):
    # Response time's event of the acknowledged alert is applied first (the read API's consumer of the
    # alerts topic lagging); the create arriving then changes nothing.
    event = created(tenant_id, "detected")
    [changed] = response_time.response_time_changes({}, {(tenant_id, "a1"): _acknowledged_clock(event)})
    await read_model.apply_alert_response_times(db_pool, [changed])
    answered = await read_model.get_alert(db_pool, tenant_id, "a1")
    assert answered["responded_at"] == T0 + H

    await read_model.apply_alert_events(db_pool, [event])
    assert await read_model.get_alert(db_pool, tenant_id, "a1") == answered

