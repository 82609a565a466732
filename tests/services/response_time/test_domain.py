"""Pure response-time rules (SPEC §3), no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.response_time import domain
from services.response_time.domain import AlertClock, Response
from shared.alerts import Alert
from shared.events import Actor, ActorType, AlertCreated, AlertUpdated, StatusChange
from shared.response_time import MICROSECONDS_PER_HOUR, WINDOW, WindowAggregates, aggregate, figures
from shared.responses import NEAR_LIMIT_HOURS

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
PARTNER = Actor(type=ActorType.user, id="ana@partner.example")
SYSTEM = Actor(type=ActorType.system)


def change(
    at: datetime,
    actor: Actor = PARTNER,
    field: str = "status",
    from_: str = "active",
    to: str = "investigating",
) -> StatusChange:
    return StatusChange(field=field, from_=from_, to=to, actor=actor, changed_date_time=at)


def created(
    alert_id: str = "a1",
    *,
    detected: datetime | None = NOW - 10 * H,
    ingested: datetime = NOW - 9 * H,
    changes: list[StatusChange] = (),
    is_test: bool = False,
    tenant: str = "t1",
    occurred: datetime | None = None,
) -> AlertCreated:
    alert = Alert(id=alert_id, detected_date_time=detected, is_test=is_test)
    return AlertCreated(
        tenant_id=tenant, alert=alert, ingested_date_time=ingested, status_changes=list(changes),
        occurred_date_time=occurred or ingested,
    )


def updated(
    alert_id: str = "a1",
    *,
    at: datetime,
    changes: list[StatusChange],
    status: str = "investigating",
    detected: datetime | None = NOW - 10 * H,
    tenant: str = "t1",
    actor: Actor = PARTNER,
    occurred: datetime | None = None,
    is_test: bool = False,
) -> AlertUpdated:
    alert = Alert(id=alert_id, detected_date_time=detected, status=status, is_test=is_test)
    return AlertUpdated(
        occurred_date_time=occurred or at,
        tenant_id=tenant,
        alert_id=alert_id,
        changes=[],
        status_changes=changes,
        actor=actor,
        changed_date_time=at,
        alert=alert,
    )


def responded(
    alert_id: str, latency: timedelta, responded_at: datetime, *, is_test: bool = False
) -> AlertClock:
    start = responded_at - latency
    return AlertClock(
        "t1",
        alert_id,
        Alert(id=alert_id, is_test=is_test),
        start,
        start,
        True,
        start,
        Response(responded_at, "ana"),
    )


def open_alert(
    alert_id: str, started: datetime, *, is_test: bool = False, status: str = "active"
) -> AlertClock:
    return AlertClock(
        "t1", alert_id, Alert(id=alert_id, is_test=is_test, status=status), started, started, True, started,
        None,
    )


# --- the clock ------------------------------------------------------------------------------------


def test_clock_starts_at_detection_else_at_ingestion():
    assert domain.clock_start(created(detected=NOW - 10 * H)) == NOW - 10 * H
    assert domain.clock_start(created(detected=None, ingested=NOW - 9 * H)) == NOW - 9 * H


def test_first_partner_change_stops_the_clock_and_later_changes_leave_it_alone():
    clock = domain.on_created(None, created())
    assert clock.response is None
    clock = domain.on_updated(clock, updated(at=NOW - 7 * H, changes=[change(NOW - 7 * H)]))
    assert clock.response == Response(NOW - 7 * H, "ana@partner.example")
    assert clock.latency_us == 3 * MICROSECONDS_PER_HOUR
    # a reopen by another user, later, moves nothing
    reopen = change(NOW - 2 * H, Actor(type=ActorType.user, id="bob"), from_="resolved", to="active")
    after = domain.on_updated(clock, updated(at=NOW - 2 * H, changes=[reopen], status="active"))
    assert after.response == clock.response and after.status == "active"


def test_system_actors_do_not_stop_the_clock():
    clock = domain.on_created(None, created(changes=[change(NOW - 9 * H, SYSTEM)]))
    assert clock.response is None
    clock = domain.on_updated(
        clock,
        updated(
            at=NOW - 8 * H,
            changes=[change(NOW - 8 * H, SYSTEM, to="resolved")],
            actor=SYSTEM,
            status="resolved",
        ),
    )
    assert clock.response is None and clock.status == "resolved"
    # a system resolve is no response; it closes the alert unanswered (neither open nor averaged)
    agg = aggregate([clock], NOW)
    assert (agg.open_count, agg.responded_count) == (0, 0)


def test_a_change_that_changes_nothing_is_no_response():
    clock = domain.on_created(None, created(changes=[change(NOW - 9 * H, from_="active", to="active")]))
    assert clock.response is None


def test_resolved_reason_change_by_a_partner_is_a_response():
    clock = domain.on_created(
        None, created(changes=[change(NOW - 8 * H, field="resolvedReason", from_=None, to="legitimate")])
    )
    assert clock.response == Response(NOW - 8 * H, "ana@partner.example")


def test_a_response_already_in_the_logs_at_creation_counts_from_creation():
    clock = domain.on_created(None, created(changes=[change(NOW - 9 * H), change(NOW - 8 * H)]))
    assert clock.response.at == NOW - 9 * H
    assert clock.latency_us == 1 * MICROSECONDS_PER_HOUR


def test_a_response_stamped_before_detection_has_zero_latency():
    clock = domain.on_created(None, created(detected=NOW - 10 * H, changes=[change(NOW - 11 * H)]))
    assert clock.response.at == NOW - 11 * H
    assert clock.latency_us == 0


def test_redelivered_create_changes_nothing():
    clock = domain.on_updated(
        domain.on_created(None, created()), updated(at=NOW - 7 * H, changes=[change(NOW - 7 * H)])
    )
    again = domain.on_created(clock, created(changes=[change(NOW - 9 * H)]))
    assert again == clock


def test_update_before_create_is_kept_and_reconciled():
    early = domain.on_updated(None, updated(at=NOW - 5 * H, changes=[change(NOW - 5 * H)], detected=None))
    assert not early.created_seen and early.response.at == NOW - 5 * H
    assert early.clock_started_at == NOW - 5 * H  # provisional, until the create says when it was ingested
    reconciled = domain.on_created(early, created(detected=None, ingested=NOW - 9 * H))
    assert reconciled.created_seen and reconciled.ingested_at == NOW - 9 * H
    assert reconciled.clock_started_at == NOW - 9 * H
    assert reconciled.latency_us == 4 * MICROSECONDS_PER_HOUR
    assert reconciled.status == "investigating"  # the newer state (the update's) is kept
    assert reconciled.state_as_of == early.state_as_of


def test_late_create_with_an_earlier_logged_response_wins():
    early = domain.on_updated(None, updated(at=NOW - 5 * H, changes=[change(NOW - 5 * H)]))
    reconciled = domain.on_created(early, created(changes=[change(NOW - 9 * H)]))
    assert reconciled.response.at == NOW - 9 * H


def test_state_follows_the_event_order_not_the_partners_log_times():
    # Ingested at 12:00; Bob's change, logged by the partner at 11:55, reaches the feed at 13:00.
    noon = NOW
    clock = domain.on_created(None, created(detected=noon - H, ingested=noon))
    clock = domain.on_updated(clock, updated(at=noon - 5 * timedelta(minutes=1),
                                             changes=[change(noon - 5 * timedelta(minutes=1))],
                                             occurred=noon + H))
    assert clock.status == "investigating"
    # A later isTest change, also logged before the create's ingestion, is applied too.
    clock = domain.on_updated(clock, updated(at=noon - 2 * timedelta(minutes=1), changes=[],
                                             occurred=noon + 2 * H, is_test=True))
    assert clock.is_test and clock.status == "investigating"
    assert clock.response.at == noon - 5 * timedelta(minutes=1)  # the response keeps the partner's time
    # An event that occurred earlier (in ingest's order) than the stored state does not overwrite it.
    stale = domain.on_updated(clock, updated(at=noon + 3 * H, changes=[], status="active", occurred=noon))
    assert stale.status == "investigating" and stale.is_test


def test_an_update_applied_before_its_create_wins_over_it_whatever_the_times():
    early = domain.on_updated(None, updated(at=NOW - 5 * H, changes=[], status="investigating",
                                            occurred=NOW - 5 * H))
    # the create occurred later by ingest's clock, yet the alert's newer state is the update's
    late_create = domain.on_created(early, created(detected=None, ingested=NOW - 9 * H, occurred=NOW))
    assert late_create.status == "investigating" and late_create.created_seen


# --- the figures ------------------------------------------------------------------------------------


def test_an_alert_resolved_with_no_partner_response_is_closed_unanswered():
    clock = domain.on_created(None, created(detected=NOW - 10 * H))
    resolved = domain.on_updated(clock, updated(at=NOW - 8 * H, changes=[change(NOW - 8 * H, SYSTEM,
                                                to="resolved")], status="resolved", actor=SYSTEM))
    assert resolved.response is None and not resolved.is_open
    f = figures(aggregate([resolved, responded("b", 2 * H, NOW - H)], NOW), NOW)
    assert (f.open_count, f.responded_count, f.oldest_open_age_hours, f.at_risk) == (0, 1, None, False)
    assert f.average_response_time_in_hours == 2.0
    # a reopen makes it open again (from its clock start)
    reopened = domain.on_updated(resolved, updated(at=NOW - 6 * H, changes=[change(NOW - 6 * H, SYSTEM,
                                                   from_="resolved", to="active")], status="active",
                                                   actor=SYSTEM))
    assert reopened.is_open
    assert figures(aggregate([reopened], NOW), NOW).oldest_open_age_hours == 10.0
    # a later partner change still records the response (write-once), and it counts in the average
    answered = domain.on_updated(resolved, updated(at=NOW - 4 * H, changes=[change(NOW - 4 * H,
                                                   from_="resolved", to="active")], status="active"))
    assert answered.response.at == NOW - 4 * H
    f = figures(aggregate([answered], NOW), NOW)
    assert (f.open_count, f.responded_count, f.average_response_time_in_hours) == (0, 1, 6.0)


def test_closed_unanswered_alerts_do_not_accumulate_as_open():
    old_resolved = [open_alert(f"r{i}", NOW - timedelta(days=365), status="resolved") for i in range(3)]
    f = figures(aggregate([*old_resolved, open_alert("live", NOW - 2 * H)], NOW), NOW)
    assert (f.open_count, f.oldest_open_age_hours, f.at_risk) == (1, 2.0, False)



def test_a_response_exactly_30_days_ago_has_left_the_window():
    edge = responded("edge", 2 * H, NOW - timedelta(days=30))
    inside = responded("inside", 4 * H, NOW - timedelta(days=30) + timedelta(microseconds=1))
    agg = aggregate([edge, inside], NOW)
    assert agg.responded_count == 1 and agg.responded_latency_us == 4 * MICROSECONDS_PER_HOUR


def test_an_average_of_exactly_24_hours_is_compliant_and_a_microsecond_more_is_not():
    exact = figures(aggregate([responded("a", 23 * H, NOW - H), responded("b", 25 * H, NOW - H)], NOW), NOW)
    assert exact.average_response_time_in_hours == 24.0 and exact.compliant
    over = figures(aggregate([responded("a", 24 * H + timedelta(microseconds=1), NOW - H)], NOW), NOW)
    assert not over.compliant


def test_no_response_in_the_window_is_compliant_with_a_null_average():
    f = figures(aggregate([], NOW), NOW)
    assert f.average_response_time_in_hours is None and f.compliant and not f.at_risk
    assert f.projected_average_response_time_in_hours is None and f.oldest_open_age_hours is None
    assert f.model_dump() == {
        "averageResponseTimeInHours": None,
        "windowDays": 30,
        "respondedCount": 0,
        "openCount": 0,
        "oldestOpenAgeHours": None,
        "projectedAverageResponseTimeInHours": None,
        "compliant": True,
        "atRisk": False,
        "openAlertNearLimit": False,
    }


def test_test_alerts_are_excluded_everywhere():
    clocks = [
        responded("real", 2 * H, NOW - H),
        responded("test", 100 * H, NOW - H, is_test=True),
        open_alert("open-test", NOW - 500 * H, is_test=True),
    ]
    f = figures(aggregate(clocks, NOW), NOW)
    assert (f.responded_count, f.open_count, f.average_response_time_in_hours) == (1, 0, 2.0)
    assert not f.at_risk


def test_open_alerts_give_the_projection_and_the_risk():
    clocks = [responded("a", 10 * H, NOW - H), open_alert("b", NOW - 50 * H), open_alert("c", NOW - 30 * H)]
    f = figures(aggregate(clocks, NOW), NOW)
    assert f.average_response_time_in_hours == 10.0 and f.compliant
    assert f.open_count == 2 and f.oldest_open_age_hours == 50.0
    assert f.projected_average_response_time_in_hours == 30.0 and f.at_risk


def test_projection_of_exactly_24_hours_is_not_at_risk():
    f = figures(aggregate([responded("a", 20 * H, NOW - H), open_alert("b", NOW - 28 * H)], NOW), NOW)
    assert f.projected_average_response_time_in_hours == 24.0 and not f.at_risk


def test_an_open_alert_detected_in_the_future_has_age_zero():
    agg = aggregate([open_alert("future", NOW + H)], NOW)
    assert agg.open_age_us == 0 and figures(agg, NOW).oldest_open_age_hours == 0.0


def test_an_open_alert_is_near_the_limit_from_20_hours_old():
    """Exact in microseconds, like the other figures: 20 h is near, one microsecond less is not."""
    edge = timedelta(hours=NEAR_LIMIT_HOURS)
    assert not figures(aggregate([open_alert("a", NOW - edge + timedelta(microseconds=1))], NOW), NOW
                       ).open_alert_near_limit
    assert figures(aggregate([open_alert("a", NOW - edge)], NOW), NOW).open_alert_near_limit
    # only the oldest open alert counts; one past 24 h is near too (it has passed it)
    assert figures(aggregate([open_alert("young", NOW - H), open_alert("old", NOW - 30 * H)], NOW), NOW
                   ).open_alert_near_limit
    # not open: answered (however late), a test alert, closed unanswered, none at all
    not_open = [responded("late", 30 * H, NOW - H), open_alert("test", NOW - 30 * H, is_test=True),
                open_alert("closed", NOW - 30 * H, status="resolved")]
    assert not figures(aggregate(not_open, NOW), NOW).open_alert_near_limit
    assert not figures(aggregate([], NOW), NOW).open_alert_near_limit
    assert not figures(aggregate([open_alert("future", NOW + H)], NOW), NOW).open_alert_near_limit


def test_an_open_alert_reaching_20_hours_publishes_a_status():
    clocks = [open_alert("a", NOW - 19 * H)]
    young = figures(aggregate(clocks, NOW), NOW)
    near = figures(aggregate(clocks, NOW + H), NOW + H)
    assert (young.open_alert_near_limit, near.open_alert_near_limit, near.at_risk) == (False, True, False)
    assert domain.emission_key(near)["openAlertNearLimit"] is True
    assert domain.should_publish(domain.emission_key(young), near)
    # staying near (the alert keeps ageing) publishes nothing more
    later = figures(aggregate(clocks, NOW + 2 * H), NOW + 2 * H)
    assert not domain.should_publish(domain.emission_key(near), later)


def test_the_next_edge_includes_the_oldest_open_alert_reaching_20_hours():
    # one alert open 19 h, nothing answered: near the limit in 1 h, at risk only after 5 h
    clocks = [open_alert("a", NOW - 19 * H)]
    edge = domain.next_edge(aggregate(clocks, NOW), NOW)
    assert edge == NOW + H
    just_before = edge - timedelta(microseconds=1)
    assert not figures(aggregate(clocks, just_before), just_before).open_alert_near_limit
    assert figures(aggregate(clocks, edge), edge).open_alert_near_limit
    # the oldest one decides, whatever the younger ones
    assert domain.next_edge(aggregate([open_alert("b", NOW - 2 * H), *clocks], NOW), NOW) == NOW + H
    # already near: only the risk flip remains (3 h of headroom, then one microsecond)
    near = aggregate([open_alert("c", NOW - 21 * H)], NOW)
    assert domain.next_edge(near, NOW) == NOW + 3 * H + timedelta(microseconds=1)
    # detected in the future: near 20 h after its detection
    assert domain.next_edge(aggregate([open_alert("d", NOW + H)], NOW), NOW) == NOW + 21 * H


def test_tenants_are_kept_apart_by_event_tenant():
    a = domain.on_created(None, created(tenant="t1", changes=[change(NOW - 9 * H)]))
    b = domain.on_created(None, created(tenant="t2"))
    assert (a.tenant_id, b.tenant_id) == ("t1", "t2")
    assert a.response is not None and b.response is None


def test_publishing_follows_the_stable_figures_not_the_drifting_ages():
    first = figures(
        WindowAggregates(
            1, 2 * MICROSECONDS_PER_HOUR, 1, 3 * MICROSECONDS_PER_HOUR, NOW - 3 * H
        ),
        NOW,
    )
    later = figures(
        WindowAggregates(
            1, 2 * MICROSECONDS_PER_HOUR, 1, 4 * MICROSECONDS_PER_HOUR, NOW - 3 * H
        ),
        NOW + H,
    )
    assert domain.should_publish(None, first)
    assert not domain.should_publish(domain.emission_key(first), later)
    answered = figures(WindowAggregates(2, 5 * MICROSECONDS_PER_HOUR), NOW)
    assert domain.should_publish(domain.emission_key(first), answered)


def test_the_next_edge_is_when_a_response_leaves_the_window_or_the_risk_flips():
    # nothing can change with no event: no response in the window, nothing open
    assert domain.next_edge(aggregate([], NOW), NOW) is None
    leaving = responded("a", 2 * H, NOW - timedelta(days=29))
    assert domain.next_edge(aggregate([leaving, responded("b", 2 * H, NOW - H)], NOW), NOW) == (
        NOW + timedelta(days=1))
    # 10 h answered + one alert open 30 h: projected 20 h; 24 h is reached after 8 h more, so the
    # risk flips one microsecond later
    clocks = [responded("c", 10 * H, NOW - 20 * H), open_alert("d", NOW - 30 * H)]
    edge = domain.next_edge(aggregate(clocks, NOW), NOW)
    assert edge == NOW + 8 * H + timedelta(microseconds=1)
    just_before = edge - timedelta(microseconds=1)
    assert not figures(aggregate(clocks, just_before), just_before).at_risk
    assert figures(aggregate(clocks, edge), edge).at_risk
    # already at risk: only the window edge remains (ageing only deepens the risk)
    risky = aggregate([responded("e", 2 * H, NOW - H), open_alert("f", NOW - 100 * H)], NOW)
    assert domain.next_edge(risky, NOW) == NOW - H + WINDOW


# --- alert-response-times: one event per change of what it says -----------------------------------


def test_each_change_of_an_alert_publishes_its_view_and_an_event_that_moves_nothing_publishes_none():
    key = ("t1", "a1")
    opened = domain.on_created(None, created())
    [first] = domain.response_time_changes({}, {key: opened})
    assert (first.tenant_id, first.alert_id, first.kafka_key()) == ("t1", "a1", b"t1:a1")
    assert (first.status, first.is_test, first.clock_started_date_time) == ("active", False, NOW - 10 * H)
    assert (first.responded_date_time, first.responded_by, first.latency_us) == (None, None, None)
    assert first.alert == opened.alert.model_dump(mode="json") and first.alert["id"] == "a1"

    response = updated(at=NOW - 7 * H, changes=[change(NOW - 7 * H)])
    answered = domain.on_updated(opened, response)
    [second] = domain.response_time_changes({key: opened}, {key: answered})
    assert (second.status, second.responded_date_time, second.responded_by) == (
        "investigating", NOW - 7 * H, "ana@partner.example")
    assert second.latency_us == 3 * MICROSECONDS_PER_HOUR

    # An update older than the stored state, with no new response: the view stays as it was.
    stale = updated(at=NOW - 8 * H, changes=[], status="active", occurred=NOW - 8 * H)
    assert domain.response_time_changes({key: answered}, {key: domain.on_updated(answered, stale)}) == []
    # Several alerts: only the changed one publishes.
    other = domain.on_created(None, created("a2"))
    assert [e.alert_id for e in domain.response_time_changes(
        {key: answered}, {key: answered, ("t1", "a2"): other})] == ["a2"]
