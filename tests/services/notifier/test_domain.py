"""The notifier's pure rules: routing, delivery identity, retry policy, message content."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from services.notifier import domain
from services.notifier.domain import Attempt, ChannelRule, Kind, RetryPolicy
from shared.alerts import Alert
from shared.channels import Route
from shared.events import AlertCreated, ChannelConfig, DeliveryView, SpendingBudgetThresholdReached
from shared.sealed import seal
from shared.webhooks import sign_headers, verify

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
SECRET = "whsec_c2VjcmV0LWZvci10ZXN0cy0xMjM0NQ=="


def alert(**fields) -> Alert:
    return Alert.model_validate(
        {
            "id": "a1",
            "displayName": "Unusual activity",
            "severity": "high",
            "alertType": "unusualActivity",
            "customerTenantId": "cust-1",
            **fields,
        }
    )


def rule(name: str, *routes: dict, escalation: bool = False) -> ChannelRule:
    return ChannelRule(name, tuple(Route.model_validate(r) for r in routes), escalation)


# --- routing -------------------------------------------------------------------------------------------


def test_a_channel_without_routes_gets_every_non_test_alert():
    assert domain.channel_wants([], alert())
    assert not domain.channel_wants([], alert(isTest="true"))


def test_every_criterion_of_a_route_must_match():
    route = Route.model_validate(
        {"severities": ["high"], "alertTypes": ["unusualActivity"], "customerTenantIds": ["cust-1"]}
    )
    assert domain.route_matches(route, alert())
    assert not domain.route_matches(route, alert(severity="low"))
    assert not domain.route_matches(route, alert(alertType="fraud"))
    assert not domain.route_matches(route, alert(customerTenantId="cust-2"))


def test_any_matching_route_is_enough():
    routes = [Route(severities=["low"]), Route(customer_tenant_ids=["cust-1"])]
    assert domain.channel_wants(routes, alert())
    assert not domain.channel_wants(routes, alert(customerTenantId="cust-9"))


def test_test_alerts_match_only_routes_that_include_them():
    assert not domain.route_matches(Route(severities=["high"]), alert(isTest=True))
    assert domain.route_matches(Route(severities=["high"], include_test=True), alert(isTest=True))


def test_an_alert_without_severity_matches_only_routes_without_a_severity_criterion():
    assert not domain.route_matches(Route(severities=["high"]), alert(severity=None))
    assert domain.route_matches(Route(alert_types=["unusualActivity"]), alert(severity=None))


def test_unknown_severities_in_a_route_are_rejected():
    with pytest.raises(ValidationError, match="unknown severities"):
        Route.model_validate({"severities": ["critical"]})


def test_new_alerts_go_to_the_contact_and_matching_non_escalation_channels():
    channels = [
        rule("jira", {"severities": ["high"]}),
        rule("low-only", {"severities": ["low"]}),
        rule("pager", escalation=True),
    ]
    assert domain.alert_channels(channels, alert()) == ["email:contact", "webhook:jira"]


def test_escalations_go_to_escalation_channels_and_the_escalation_address_else_the_contact():
    channels = [rule("jira"), rule("pager", {"severities": ["high"]}, escalation=True)]
    assert domain.escalation_channels(channels, alert(), escalation_email=True) == [
        "webhook:pager",
        "email:escalation",
    ]
    assert domain.escalation_channels(channels, alert(severity="low"), escalation_email=False) == [
        "email:contact"
    ]


# --- identity and timing -------------------------------------------------------------------------------


def test_delivery_ids_are_stable_and_distinct_per_subject_channel_and_kind():
    first = domain.delivery_id("t1", "a1", "webhook:jira", "alert")
    assert first == domain.delivery_id("t1", "a1", "webhook:jira", "alert")
    others = {
        domain.delivery_id("t1", "a1", "webhook:jira", "reminder"),
        domain.delivery_id("t1", "a1", "email:contact", "alert"),
        domain.delivery_id("t1", "a2", "webhook:jira", "alert"),
        domain.delivery_id("t2", "a1", "webhook:jira", "alert"),
    }
    assert first not in others and len(others) == 4


def test_timers_count_from_detection_else_from_ingestion():
    detected = AlertCreated(
        tenant_id="t1", alert=alert(detectedDateTime="2026-11-27T08:00:00Z"), ingested_date_time=NOW
    )
    due = domain.timer_due_times(detected, 3600, 20 * 3600)
    assert due == {
        Kind.reminder: datetime(2026, 11, 27, 9, tzinfo=UTC),
        Kind.escalation: datetime(2026, 11, 28, 4, tzinfo=UTC),
    }
    undated = AlertCreated(tenant_id="t1", alert=alert(), ingested_date_time=NOW)
    assert domain.timer_due_times(undated, 3600, 72000)[Kind.reminder] == NOW + timedelta(hours=1)


def test_time_left_reads_as_hours_and_minutes_or_overdue():
    assert domain.time_left_text(NOW + timedelta(hours=23, minutes=5), NOW) == "23 h 05 min left"
    assert domain.time_left_text(NOW - timedelta(hours=2), NOW) == "overdue by 2 h 00 min"


# --- retry policy --------------------------------------------------------------------------------------

POLICY = RetryPolicy(max_attempts=5, base_seconds=2, max_seconds=60, max_retry_after_seconds=600)


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 429])
def test_server_errors_timeouts_and_throttling_are_retried(status):
    assert domain.classify_status(status, {}, NOW).outcome == "transient"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422, 301])
def test_other_client_errors_are_permanent(status):
    assert domain.classify_status(status, {}, NOW).outcome == "permanent"
    assert domain.decide(1, domain.classify_status(status, {}, NOW), POLICY).state == "dead"


def test_retry_after_is_honoured_in_seconds_or_as_a_date():
    assert domain.parse_retry_after("7", NOW) == 7
    assert domain.parse_retry_after("Fri, 27 Nov 2026 12:00:30 GMT", NOW) == 30
    assert domain.parse_retry_after("soon", NOW) is None
    attempt = domain.classify_status(429, {"retry-after": "7"}, NOW)
    assert domain.decide(1, attempt, POLICY, rand=lambda: 0.0) == domain.Decision("pending", 7)


def test_a_huge_retry_after_is_capped():
    assert domain.decide(1, Attempt("transient", retry_after=99999), POLICY).delay_seconds == 600


def test_backoff_doubles_with_jitter_and_is_capped():
    low = [domain.backoff_seconds(n, 2, 60, rand=lambda: 0.0) for n in range(1, 8)]
    high = [domain.backoff_seconds(n, 2, 60, rand=lambda: 1.0) for n in range(1, 8)]
    assert low == [1, 2, 4, 8, 16, 30, 30]
    assert high == [2, 4, 8, 16, 32, 60, 60]


def test_after_the_last_attempt_a_transient_failure_is_dead():
    assert domain.decide(4, Attempt("transient", "HTTP 500"), POLICY).state == "pending"
    assert domain.decide(5, Attempt("transient", "HTTP 500"), POLICY).state == "dead"


def test_delivered_and_skipped_are_final():
    assert domain.decide(1, Attempt("delivered"), POLICY).state == "delivered"
    assert domain.decide(1, Attempt("skipped", "no security contact"), POLICY).state == "skipped"


# --- content -------------------------------------------------------------------------------------------

LINKS = domain.Links("https://triage.example/?tenant=t1&alert=a1", "https://learn.microsoft.com/help")


def test_alert_email_names_severity_title_customer_type_detection_time_left_and_links():
    event = AlertCreated(tenant_id="t1", alert=alert(detectedDateTime="2026-11-27T08:00:00Z"))
    email = domain.alert_email(Kind.alert, event, LINKS, NOW, 24 * 3600)
    assert email.subject == "[high] Unusual activity"
    for part in (
        "cust-1",
        "unusualActivity",
        "2026-11-27 08:00 UTC",
        "20 h 00 min left",
        LINKS.dashboard,
        LINKS.help,
    ):
        assert part in email.text
    assert "cust-1" in email.html and "https://triage.example/?tenant=t1&amp;alert=a1" in email.html
    assert (
        domain.alert_email(Kind.reminder, event, LINKS, NOW, 86400).subject
        == "[high] Reminder: Unusual activity"
    )


def test_header_text_makes_one_line_of_any_control_characters():
    assert domain.header_text("a\r\nBcc: x@evil.example") == "a Bcc: x@evil.example"
    assert domain.header_text(" tab\there\x0bvt\x1b\x7f\x85nel\u2028ls\u2029ps\n ") == (
        "tab here vt nel ls ps"
    )
    assert domain.header_text("Café — ok") == "Café — ok"


def test_the_subject_is_one_line_and_the_body_keeps_the_text():
    event = AlertCreated(tenant_id="t1", alert=alert(displayName="Line one\nBcc: x@evil.example"))
    email = domain.alert_email(Kind.alert, event, LINKS, NOW, 86400)
    assert email.subject == "[high] Line one Bcc: x@evil.example"
    assert "Line one\nBcc: x@evil.example" in email.text


def test_html_is_escaped():
    event = AlertCreated(tenant_id="t1", alert=alert(customerTenantId="<script>"))
    assert "<script>" not in domain.alert_email(Kind.alert, event, LINKS, NOW, 86400).html


def test_spending_email_names_customer_month_and_share():
    event = SpendingBudgetThresholdReached(
        tenant_id="t1",
        customer_tenant_id="c1",
        customer_name="Contoso",
        month="2026-11",
        budget=1000,
        spend=812.5,
    )
    email = domain.spending_email(event, "https://triage.example")
    assert email.subject == "[budget] Contoso reached 80% of its 2026-11 budget"
    assert "81% of the budget" in email.text


def test_webhook_body_is_the_same_bytes_every_time_and_carries_alert_and_event():
    event = AlertCreated(tenant_id="t1", alert=alert(detectedDateTime="2026-11-27T08:00:00Z"))
    delivery = domain.delivery_id("t1", "a1", "webhook:jira", "alert")
    body = domain.webhook_body(delivery, Kind.alert, event, LINKS, 86400)
    assert body == domain.webhook_body(delivery, Kind.alert, event, LINKS, 86400)
    document = json.loads(body)
    assert document["type"] == "alert.created" and document["deliveryId"] == str(delivery)
    assert document["alert"]["id"] == "a1" and document["event"]["eventId"] == str(event.event_id)
    assert document["responseDeadlineDateTime"] == "2026-11-28T08:00:00Z"
    headers = sign_headers(SECRET, body, msg_id=f"msg_{delivery.hex}")
    verify([SECRET], headers, body)  # raises if the signature does not hold


def test_an_alert_arriving_resolved_or_answered_gets_no_timers_and_an_old_one_only_the_escalation():
    from shared.events import Actor, ActorType, StatusChange

    def created(**fields) -> AlertCreated:
        return AlertCreated(tenant_id="t1", alert=alert(**fields), ingested_date_time=NOW)

    fresh = created(detectedDateTime="2026-11-27T11:30:00Z")
    assert set(domain.timers_for_new_alert(fresh, 3600, 72000, NOW)) == {
        domain.TimerKey(Kind.reminder), domain.TimerKey(Kind.escalation)}

    # An import of old alerts: 40 days old and resolved → the alert e-mail only, no timer.
    resolved = created(detectedDateTime="2026-10-18T12:00:00Z", status="resolved")
    assert domain.timers_for_new_alert(resolved, 3600, 72000, NOW) == {}

    answered = created(detectedDateTime="2026-11-27T11:00:00Z")
    answered.status_changes.append(
        StatusChange.model_validate(
            {
                "field": "status",
                "from": "active",
                "to": "investigating",
                "actor": Actor(type=ActorType.user, id="alice@partner.example"),
                "changedDateTime": "2026-11-27T11:10:00Z",
            }
        )
    )
    assert domain.timers_for_new_alert(answered, 3600, 72000, NOW) == {}

    # Older than 20 h on arrival: the escalation (due at once), not also the reminder.
    old = created(detectedDateTime="2026-11-26T14:00:00Z", status="active")
    assert domain.timers_for_new_alert(old, 3600, 72000, NOW) == {
        domain.TimerKey(Kind.escalation): datetime(2026, 11, 27, 10, tzinfo=UTC)
    }
    # Between 1 h and 20 h old: the reminder (due at once) and the escalation later.
    late = created(detectedDateTime="2026-11-27T08:00:00Z")
    assert set(domain.timers_for_new_alert(late, 3600, 72000, NOW)) == {
        domain.TimerKey(Kind.reminder), domain.TimerKey(Kind.escalation)}


def test_a_test_alert_gets_no_timers():
    event = AlertCreated(tenant_id="t1", alert=alert(isTest=True, detectedDateTime="2026-11-27T11:30:00Z"))
    assert domain.timers_for_new_alert(event, 3600, 72000, NOW) == {}


def test_timers_end_with_a_partner_response_or_when_the_alert_is_resolved_by_anyone():
    from shared.events import Actor, ActorType, AlertUpdated, StatusChange

    def updated(to: str, actor: Actor) -> AlertUpdated:
        change = {"field": "status", "from": "active", "to": to}
        return AlertUpdated(
            tenant_id="t1", alert_id="a1", actor=actor, changed_date_time=NOW, alert=alert(status=to),
            changes=[change],
            status_changes=[StatusChange.model_validate({**change, "actor": actor, "changedDateTime": NOW})],
        )

    system, user = Actor(type=ActorType.system), Actor(type=ActorType.user, id="alice@partner.example")
    assert domain.why_timers_end(updated("resolved", system)) == "the alert was resolved"
    assert domain.why_timers_end(updated("investigating", user)) == "a partner response"
    assert domain.why_timers_end(updated("investigating", system)) is None  # still open, unanswered


def test_an_email_skipped_for_want_of_a_contact_is_worth_sending_late_only_about_an_alert_still_open():
    def payload(**fields) -> str:
        return AlertCreated(tenant_id="t1", alert=alert(**fields)).model_dump_json()

    assert domain.worth_sending_late(Kind.alert, payload(), closed_since=False)
    assert domain.worth_sending_late(Kind.reminder, payload(isTest=True), closed_since=False)
    assert not domain.worth_sending_late(Kind.alert, payload(), closed_since=True)  # answered or resolved since
    assert not domain.worth_sending_late(Kind.alert, payload(status="resolved"), closed_since=False)
    assert not domain.worth_sending_late(Kind.alert, "{}", closed_since=False)  # unreadable: no send could use it
    assert domain.worth_sending_late(Kind.spending, "{}", closed_since=False)  # not about an alert


# --- channels as the write API publishes them, dead letters ------------------------------------------


def sealed_channel(keys: list[str], **fields) -> ChannelConfig:
    return ChannelConfig(url="https://tickets.example/hook", secret=seal("whsec_new", keys), **fields)


def test_a_channel_event_opens_with_the_deployments_keys_and_its_routes_are_read():
    old_key, key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    until = datetime(2026, 11, 28, tzinfo=UTC)
    config = sealed_channel([old_key], previous_secret=seal("whsec_old", [key]), previous_secret_until=until,
                            routes=[{"severities": ["high"], "includeTest": True}], escalation=True)
    channel = domain.open_channel(config, [key, old_key])  # a rotated key list opens what either sealed
    assert (channel.secret, channel.previous_secret, channel.previous_secret_until) == ("whsec_new", "whsec_old", until)
    assert channel.routes == (Route(severities=["high"], include_test=True),) and channel.escalation


def test_a_channel_event_no_key_opens_or_with_an_unreadable_route_is_unusable():
    key = Fernet.generate_key().decode()
    with pytest.raises(domain.UnusableChannel, match="SEALING_KEYS"):
        domain.open_channel(sealed_channel([Fernet.generate_key().decode()]), [key])
    with pytest.raises(domain.UnusableChannel, match="SEALING_KEYS"):
        domain.open_channel(sealed_channel([key], previous_secret="not-a-sealed-value"), [key])
    with pytest.raises(domain.UnusableChannel, match="route"):
        domain.open_channel(sealed_channel([key], routes=[{"severities": ["urgent"]}]), [key])


def test_a_dead_letter_is_named_by_the_death_it_tells_of():
    delivery = DeliveryView(id=uuid.uuid4(), alert_id="a1", subject="a1", channel="webhook:jira", kind="alert",
                            state="dead", attempts=3, last_error="HTTP 503", created_date_time=NOW)
    letter = domain.dead_letter("t1", delivery)
    assert (letter.kind, letter.tenant_id, letter.reason, letter.delivery.delivery_id) == (
        "dead-delivery", "t1", "HTTP 503", str(delivery.id))
    assert domain.dead_letter("t1", delivery).event_id == letter.event_id  # published twice: one to consumers
    again = delivery.model_copy(update={"redeliveries": 1})
    assert domain.dead_letter("t1", again).event_id != letter.event_id  # died again after a redelivery
