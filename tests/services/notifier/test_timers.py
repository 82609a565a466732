"""Reminders (1 h after detection) and escalations (20 h), in seconds here through the settings."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from shared.events import Topic
from shared.wire import utcnow
from tests.services.notifier.helpers import (
    alert_created,
    deliveries,
    partner_response,
    set_channel,
    set_contact,
    settled,
    system_resolution,
)
from tests.support.polling import eventually


async def timers(pool, tenant_id: str, alert_id: str) -> dict[str, str]:
    rows = await pool.fetch(
        "SELECT kind, state FROM notification_timers WHERE tenant_id = $1 AND alert_id = $2",
        tenant_id,
        alert_id,
    )
    return {r["kind"]: r["state"] for r in rows}


async def test_an_alert_already_older_than_an_hour_reminds_at_once(
    tenant_id, start_notifier, publish, notifier_pool, smtp_server
):
    start_notifier(REMINDER_AFTER_SECONDS="3600", ESCALATION_AFTER_SECONDS="72000")
    await set_contact(publish, notifier_pool, tenant_id, "soc@partner.example")
    ninety_minutes_ago = (utcnow() - timedelta(minutes=90)).isoformat()
    created = alert_created(tenant_id, "old", detectedDateTime=ninety_minutes_ago)
    # Already answered when first seen (its activity logs say so): no timer at all.
    answered = alert_created(tenant_id, "answered", detectedDateTime=ninety_minutes_ago)
    answered.status_changes = partner_response(answered).status_changes
    for event in (created, answered):
        await publish(Topic.alerts, event)

    await eventually(lambda: smtp_server.mail.for_tenant(tenant_id, "reminder"), what="the reminder")
    await eventually(
        lambda: settled(notifier_pool, tenant_id, created.event_id, answered.event_id), what="deliveries"
    )
    [reminder] = smtp_server.mail.for_tenant(tenant_id, "reminder")
    [first] = [m for m in smtp_server.mail.for_tenant(tenant_id, "alert") if m["X-CSP-Alert-Id"] == "old"]
    assert reminder["Subject"] == "[high] Reminder: Unusual activity old"
    assert reminder["In-Reply-To"] == first["Message-ID"]
    assert re.search(
        r"Time left before the 24-hour limit: 22 h [0-5]\d min left",
        reminder.get_body(("plain",)).get_content(),
    )
    assert await timers(notifier_pool, tenant_id, "old") == {"reminder": "fired", "escalation": "scheduled"}
    assert await timers(notifier_pool, tenant_id, "answered") == {}
    assert len(smtp_server.mail.for_tenant(tenant_id, "alert")) == 2


@pytest.mark.timeout(180)
async def test_reminder_and_escalation_come_on_time_and_a_response_cancels_them(
    tenant_id, start_notifier, publish, notifier_pool, smtp_server, receiver
):
    jira, pager = f"/{tenant_id}/jira", f"/{tenant_id}/pager"
    await set_channel(notifier_pool, tenant_id, "jira", receiver.url(jira))
    await set_channel(notifier_pool, tenant_id, "pager", receiver.url(pager), escalation=True)
    start_notifier(
        REMINDER_AFTER_SECONDS="5", ESCALATION_AFTER_SECONDS="10", ESCALATION_EMAIL="oncall@partner.example"
    )
    await set_contact(publish, notifier_pool, tenant_id, "soc@partner.example")

    # Once an alert went through, the consumers are assigned: the response below comes in time.
    warm_up = alert_created(tenant_id, "warm-up", isTest=True)
    await publish(Topic.alerts, warm_up)
    await eventually(lambda: settled(notifier_pool, tenant_id, warm_up.event_id), what="the first alert")

    ignored, answered = alert_created(tenant_id, "ignored"), alert_created(tenant_id, "answered")
    detected = ignored.alert.detected_date_time.timestamp()
    for event in (ignored, answered, partner_response(answered)):
        await publish(Topic.alerts, event)

    await eventually(
        lambda: [c for c in receiver.calls(pager) if c.json["alert"]["id"] == "ignored"],
        within=60,
        what="the escalation",
    )
    await eventually(
        lambda: settled(notifier_pool, tenant_id, ignored.event_id, answered.event_id), what="deliveries"
    )

    [reminded_at] = smtp_server.mail.times(tenant_id, "ignored", "reminder")
    assert reminded_at >= detected + 5 - 0.5  # clocks of one machine; the database keeps microseconds
    [escalation] = receiver.calls(pager)
    assert escalation.json["type"] == "alert.escalation" and escalation.time >= detected + 10 - 0.5
    # The escalation channel gets escalations only; the ticketing channel the new alerts only.
    assert sorted(c.json["alert"]["id"] for c in receiver.calls(jira)) == ["answered", "ignored"]
    assert {c.json["type"] for c in receiver.calls(jira)} == {"alert.created"}

    # The answered alert had the same due times: by now its timers would have fired.
    assert smtp_server.mail.times(tenant_id, "answered", "reminder") == []
    assert smtp_server.mail.times(tenant_id, "answered", "escalation") == []
    [escalated] = [
        m for m in smtp_server.mail.for_tenant(tenant_id, "escalation") if m["X-CSP-Alert-Id"] == "ignored"
    ]
    assert escalated["To"] == "oncall@partner.example"
    assert escalated["Subject"] == "[high] Escalation: Unusual activity ignored"
    assert await timers(notifier_pool, tenant_id, "answered") == {
        "reminder": "cancelled",
        "escalation": "cancelled",
    }
    assert await timers(notifier_pool, tenant_id, "ignored") == {"reminder": "fired", "escalation": "fired"}


@pytest.mark.timeout(180)
async def test_timers_survive_a_restart(tenant_id, start_notifier, publish, notifier_pool, smtp_server):
    settings = {"REMINDER_AFTER_SECONDS": "8", "ESCALATION_AFTER_SECONDS": "72000"}
    notifier = start_notifier(**settings)
    await set_contact(publish, notifier_pool, tenant_id, "soc@partner.example")
    created = alert_created(tenant_id, "a1")
    await publish(Topic.alerts, created)
    await eventually(
        lambda: deliveries(notifier_pool, tenant_id, kind="alert", state="delivered"), what="the first e-mail"
    )
    notifier.kill()
    due = await notifier_pool.fetchval(
        "SELECT due_at FROM notification_timers "
        "WHERE tenant_id = $1 AND alert_id = 'a1' AND kind = 'reminder'",
        tenant_id,
    )
    await eventually(
        lambda: notifier_pool.fetchval("SELECT now() > $1", due), what="the reminder to fall due"
    )

    start_notifier(**settings)
    await eventually(
        lambda: smtp_server.mail.for_tenant(tenant_id, "reminder"), what="the reminder after restart"
    )
    await eventually(lambda: settled(notifier_pool, tenant_id, created.event_id), what="deliveries")
    assert len(smtp_server.mail.for_tenant(tenant_id, "reminder")) == 1


@pytest.mark.timeout(180)
async def test_test_alerts_and_alerts_resolved_by_the_system_get_no_reminder_nor_escalation(
    tenant_id, start_notifier, publish, notifier_pool, smtp_server
):
    start_notifier(
        REMINDER_AFTER_SECONDS="4", ESCALATION_AFTER_SECONDS="8", ESCALATION_EMAIL="oncall@partner.example"
    )
    await set_contact(publish, notifier_pool, tenant_id, "soc@partner.example")
    warm_up = alert_created(tenant_id, "warm-up", status="resolved")  # no timers of its own
    await publish(Topic.alerts, warm_up)
    await eventually(lambda: settled(notifier_pool, tenant_id, warm_up.event_id), what="the first alert")

    # Same detection time for all three; "open" shows when the others' timers would have fired.
    detected = utcnow().isoformat()
    test_alert = alert_created(tenant_id, "test", isTest=True, detectedDateTime=detected)
    closed = alert_created(tenant_id, "closed-by-system", detectedDateTime=detected)
    still_open = alert_created(tenant_id, "open", detectedDateTime=detected)
    for event in (test_alert, closed, system_resolution(closed), still_open):
        await publish(Topic.alerts, event)

    await eventually(
        lambda: smtp_server.mail.times(tenant_id, "open", "escalation"), within=60, what="the control's escalation"
    )
    await eventually(
        lambda: settled(notifier_pool, tenant_id, test_alert.event_id, closed.event_id), what="deliveries"
    )
    assert len(smtp_server.mail.times(tenant_id, "open", "reminder")) == 1
    for alert_id in ("test", "closed-by-system"):
        assert len(smtp_server.mail.times(tenant_id, alert_id, "alert")) == 1  # the new alert itself, yes
        assert smtp_server.mail.times(tenant_id, alert_id, "reminder") == []
        assert smtp_server.mail.times(tenant_id, alert_id, "escalation") == []
    assert await timers(notifier_pool, tenant_id, "test") == {}
    assert await timers(notifier_pool, tenant_id, "closed-by-system") == {
        "reminder": "cancelled",
        "escalation": "cancelled",
    }
