"""Deliveries against a real SMTP server and a real HTTP receiver: exactly one effective delivery
per alert, channel and kind, retries, Retry-After, dead letters, a kill mid-delivery."""

from __future__ import annotations

import uuid

import pytest

from services.notifier import domain
from shared.dead_letters import DeadLetter
from shared.events import (
    Actor,
    ActorType,
    SecurityContact,
    SecurityContactChanged,
    SpendingBudgetThresholdReached,
    Topic,
)
from shared.webhooks import verify
from tests.services.notifier.helpers import (
    SECRET,
    alert_created,
    applied,
    channel_changed,
    deliveries,
    partner_response,
    set_channel,
    set_contact,
    settled,
)
from tests.support.kafka import read_topic
from tests.support.polling import eventually


async def test_one_email_and_one_webhook_per_alert_when_events_are_redelivered(
    tenant_id, start_notifier, publish, notifier_pool, smtp_server, receiver
):
    path = f"/{tenant_id}/jira"
    await set_channel(notifier_pool, tenant_id, "jira", receiver.url(path))
    start_notifier()
    await set_contact(publish, notifier_pool, tenant_id, "soc@partner.example")

    created = alert_created(tenant_id, "a1")
    again = alert_created(tenant_id, "a1")  # another event about the same alert (a re-publish)
    for event in (created, created, again):
        await publish(Topic.alerts, event)
    await eventually(
        lambda: settled(notifier_pool, tenant_id, created.event_id, again.event_id),
        what="both events applied and every delivery done",
    )

    mails = smtp_server.mail.for_tenant(tenant_id, "alert")
    calls = receiver.calls(path)
    assert len(mails) == 1 and len(calls) == 1

    mail = mails[0]
    assert mail["Subject"] == "[high] Unusual activity a1"
    assert mail["To"] == "soc@partner.example"
    email_id = domain.delivery_id(tenant_id, "a1", domain.CONTACT_EMAIL, "alert")
    assert mail["Message-ID"] == f"<{email_id}@localhost>"
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    for part in (
        "cust-1",
        "unusualActivity",
        "left",
        "https://triage.example/dashboard?tenant=",
        "learn.microsoft.com",
    ):
        assert part in text and part in html

    call = calls[0]
    webhook_id = domain.delivery_id(tenant_id, "a1", "webhook:jira", "alert")
    assert call.headers["idempotency-key"] == str(webhook_id)
    verify([SECRET], call.headers, call.body)
    assert call.json["alert"]["id"] == "a1" and call.json["event"]["eventType"] == "alert-created"
    assert call.json["type"] == "alert.created"

    states = {
        (r["channel"], r["kind"]): (r["state"], r["attempts"])
        for r in await deliveries(notifier_pool, tenant_id)
    }
    assert states == {
        ("email:contact", "alert"): ("delivered", 1),
        ("webhook:jira", "alert"): ("delivered", 1),
    }


async def test_line_breaks_in_alert_fields_stay_out_of_the_headers_and_in_the_body(
    tenant_id, start_notifier, publish, notifier_pool, smtp_server
):
    start_notifier()
    await set_contact(publish, notifier_pool, tenant_id, "soc@partner.example")
    created = alert_created(
        tenant_id,
        "a1\r\nX-Injected: by the id",
        displayName="Impossible travel\r\nBcc: attacker@evil.example\n\nbody?",
        alertType="unusual\x0bActivity\u2028Subject: forged",
    )
    await publish(Topic.alerts, created)
    await eventually(lambda: settled(notifier_pool, tenant_id, created.event_id), what="the delivery")

    [row] = await deliveries(notifier_pool, tenant_id, channel="email:contact")
    assert (row["state"], row["attempts"]) == ("delivered", 1), row["last_error"]
    [mail] = smtp_server.mail.for_tenant(tenant_id, "alert")
    # One line each: control characters become spaces, nothing starts a header of its own.
    assert mail["Subject"] == "[high] Impossible travel Bcc: attacker@evil.example body?"
    assert mail["X-CSP-Alert-Id"] == "a1 X-Injected: by the id"
    for forged in ("Bcc", "X-Injected", "Cc"):
        assert mail[forged] is None
    assert mail.get_all("Subject") == [mail["Subject"]]
    assert mail["To"] == "soc@partner.example"
    # The body keeps the text as it came (its line breaks travel as CRLF, as SMTP has them).
    text = mail.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert "Alert: Impossible travel\nBcc: attacker@evil.example\n\nbody?\n" in text
    assert "Alert id: a1\nX-Injected: by the id\n" in text
    assert "Alert type: unusual\x0bActivity\u2028Subject: forged\n" in text


async def test_a_channel_resolving_to_a_private_address_is_dead_at_once_when_not_allowed(
    tenant_id, start_notifier, publish, notifier_pool, receiver
):
    # Stored directly (the write API refuses such a literal URL; a name may still resolve to one).
    path = f"/{tenant_id}/internal"
    await set_channel(notifier_pool, tenant_id, "internal", receiver.url(path).replace("127.0.0.1", "localhost"))
    start_notifier(WEBHOOK_ALLOW_PRIVATE_ADDRESSES="false")
    created = alert_created(tenant_id, "ssrf")
    await publish(Topic.alerts, created)
    await eventually(lambda: settled(notifier_pool, tenant_id, created.event_id), what="the delivery")
    [row] = await deliveries(notifier_pool, tenant_id, channel="webhook:internal")
    assert (row["state"], row["attempts"]) == ("dead", 1)
    assert "loopback address; not a permitted webhook target" in row["last_error"]
    assert receiver.calls(path) == []


async def test_routing_rules_choose_the_channels(tenant_id, start_notifier, publish, notifier_pool, receiver):
    high, low, tests = f"/{tenant_id}/high", f"/{tenant_id}/low", f"/{tenant_id}/tests"
    await set_channel(notifier_pool, tenant_id, "high", receiver.url(high), [{"severities": ["high"]}])
    await set_channel(notifier_pool, tenant_id, "low", receiver.url(low), [{"severities": ["low"]}])
    await set_channel(notifier_pool, tenant_id, "tests", receiver.url(tests), [{"includeTest": True}])
    start_notifier()
    events = [alert_created(tenant_id, "h1", severity="high"), alert_created(tenant_id, "t1", isTest=True)]
    for event in events:
        await publish(Topic.alerts, event)
    await eventually(
        lambda: settled(notifier_pool, tenant_id, *(e.event_id for e in events)), what="deliveries"
    )
    assert [c.json["alert"]["id"] for c in receiver.calls(high)] == ["h1"]
    assert receiver.calls(low) == []
    assert sorted(c.json["alert"]["id"] for c in receiver.calls(tests)) == ["h1", "t1"]


async def test_500_then_200_gives_exactly_one_success_and_no_contact_or_a_deleted_channel_skips(
    tenant_id, start_notifier, publish, notifier_pool, receiver
):
    path, gone = f"/{tenant_id}/flaky", f"/{tenant_id}/gone"
    receiver.script(path, (500, {}))
    receiver.script(gone, (429, {"Retry-After": "5"}))
    await set_channel(notifier_pool, tenant_id, "flaky", receiver.url(path))
    await set_channel(notifier_pool, tenant_id, "gone", receiver.url(gone))
    start_notifier()
    created = alert_created(tenant_id, "a1")
    await publish(Topic.alerts, created)
    # The channel is deleted while its delivery waits for the retry the receiver asked for.
    await eventually(lambda: receiver.calls(gone), what="the first attempt to the channel")
    deleted = channel_changed(tenant_id, "gone", None)
    await publish(Topic.notification_channels, deleted)
    await eventually(lambda: applied(notifier_pool, deleted.event_id), what="the channel deleted")
    await eventually(lambda: settled(notifier_pool, tenant_id, created.event_id), what="deliveries")

    calls = receiver.calls(path)
    assert [c.status for c in calls] == [500, 200]
    assert len({c.headers["idempotency-key"] for c in calls}) == 1
    assert len(receiver.effective(path)) == 1
    [webhook] = await deliveries(notifier_pool, tenant_id, channel="webhook:flaky")
    assert (webhook["state"], webhook["attempts"]) == ("delivered", 2)
    [mail] = await deliveries(notifier_pool, tenant_id, channel="email:contact")
    assert (mail["state"], mail["last_error"]) == ("skipped", "no security contact")
    # The retry found the channel deleted: skipped, and the receiver heard nothing more.
    [deleted] = await deliveries(notifier_pool, tenant_id, channel="webhook:gone")
    assert (deleted["state"], deleted["attempts"], deleted["last_error"]) == (
        "skipped", 2, "channel gone no longer exists")
    assert [c.status for c in receiver.calls(gone)] == [429]


async def test_429_retry_after_is_honoured(tenant_id, start_notifier, publish, notifier_pool, receiver):
    path = f"/{tenant_id}/throttled"
    receiver.script(path, (429, {"Retry-After": "3"}))
    await set_channel(notifier_pool, tenant_id, "throttled", receiver.url(path))
    start_notifier()
    created = alert_created(tenant_id, "a1")
    await publish(Topic.alerts, created)
    await eventually(lambda: settled(notifier_pool, tenant_id, created.event_id), what="deliveries")

    first, second = receiver.calls(path)
    assert (first.status, second.status) == (429, 200)
    # The backoff alone would have retried after 0.1-0.2 s; the receiver asked for 3 s.
    assert second.time - first.time >= 2.9


async def test_400_is_dead_at_once_and_published_to_the_dead_letter_topic(
    tenant_id, start_notifier, publish, notifier_pool, receiver, kafka_bootstrap, topic_prefix
):
    path = f"/{tenant_id}/broken"
    receiver.script(path, (400, {}))
    await set_channel(notifier_pool, tenant_id, "broken", receiver.url(path))
    start_notifier()
    created = alert_created(tenant_id, "a1")
    await publish(Topic.alerts, created)
    await eventually(lambda: settled(notifier_pool, tenant_id, created.event_id), what="deliveries")

    assert [c.status for c in receiver.calls(path)] == [400]
    [dead] = await deliveries(notifier_pool, tenant_id, channel="webhook:broken")
    assert (dead["state"], dead["attempts"], dead["last_status_code"]) == ("dead", 1, 400)
    records = await read_topic(
        kafka_bootstrap,
        f"{topic_prefix}dead-letter",
        count=1,
        timeout=30,
        predicate=lambda r: r["headers"].get("dlq.source") == f"delivery {dead['delivery_id']} to webhook:broken",
    )
    assert len(records) == 1
    assert records[0]["headers"]["eventType"] == "dead-delivery"
    assert records[0]["headers"]["dlq.reason"].startswith("HTTP 400")
    letter = DeadLetter.model_validate(records[0]["value"])  # the one envelope of every dead letter
    assert (letter.kind, letter.tenant_id, letter.error_type, letter.record) == (
        "dead-delivery", tenant_id, "DeliveryFailed", None)
    delivery = letter.delivery
    assert (delivery.delivery_id, delivery.alert_id, delivery.channel, delivery.kind, delivery.attempts) == (
        str(dead["delivery_id"]),
        "a1",
        "webhook:broken",
        "alert",
        1,
    )
    assert delivery.last_error.startswith("HTTP 400") and letter.reason == delivery.last_error


async def test_transient_failures_go_dead_after_the_last_attempt(
    tenant_id, start_notifier, publish, notifier_pool, receiver
):
    path = f"/{tenant_id}/down"
    receiver.script(path, (503, {}), (503, {}), (503, {}), (503, {}))
    await set_channel(notifier_pool, tenant_id, "down", receiver.url(path))
    start_notifier(MAX_ATTEMPTS="3")
    created = alert_created(tenant_id, "a1")
    await publish(Topic.alerts, created)
    await eventually(lambda: settled(notifier_pool, tenant_id, created.event_id), what="deliveries")
    assert [c.status for c in receiver.calls(path)] == [503, 503, 503]
    [dead] = await deliveries(notifier_pool, tenant_id, channel="webhook:down")
    assert (dead["state"], dead["attempts"]) == ("dead", 3)


@pytest.mark.timeout(240)
async def test_killed_mid_delivery_still_delivers_exactly_once(
    tenant_id, start_notifier, publish, notifier_pool, smtp_server, receiver
):
    path = f"/{tenant_id}/jira"
    await set_channel(notifier_pool, tenant_id, "jira", receiver.url(path))
    notifier = start_notifier()
    await set_contact(publish, notifier_pool, tenant_id, "soc@partner.example")
    webhook_release = receiver.hold_next(path)
    mail_release = smtp_server.mail.hold_next()

    created = alert_created(tenant_id, "a1")
    await publish(Topic.alerts, created)
    # Both sends are in flight: the receiver and the SMTP server have the request, not yet answered.
    await eventually(
        lambda: receiver.calls(path) and smtp_server.mail.holding.is_set(), what="both sends in flight"
    )
    notifier.kill()
    webhook_release.set()
    mail_release.set()

    restarted = start_notifier()
    await eventually(
        lambda: settled(notifier_pool, tenant_id, created.event_id),
        within=90,
        what="deliveries after the restart",
    )
    restarted.stop()

    calls = receiver.calls(path)
    assert len(calls) == 2  # the one cut short, then the retry after the lease expired
    assert {c.headers["idempotency-key"] for c in calls} == {
        str(domain.delivery_id(tenant_id, "a1", "webhook:jira", "alert"))
    }
    assert len(receiver.effective(path)) == 1
    # SMTP has no idempotency key: the message the server took before the kill is sent again, with
    # the same Message-ID, so a mail client shows it once (the documented at-least-once window).
    mails = smtp_server.mail.for_tenant(tenant_id, "alert")
    assert len(mails) == 2 and len({m["Message-ID"] for m in mails}) == 1
    states = {r["channel"]: r["state"] for r in await deliveries(notifier_pool, tenant_id, kind="alert")}
    assert states == {"email:contact": "delivered", "webhook:jira": "delivered"}


async def test_spending_threshold_emails_the_contact_once_per_customer_and_month(
    tenant_id, start_notifier, publish, notifier_pool, smtp_server
):
    start_notifier()
    await set_contact(publish, notifier_pool, tenant_id, "finance@partner.example")
    events = [
        SpendingBudgetThresholdReached(
            tenant_id=tenant_id,
            customer_tenant_id="cust-1",
            customer_name="Contoso",
            month="2026-11",
            budget=1000,
            spend=spend,
        )
        for spend in (800, 850)
    ]
    for event in events:
        await publish(Topic.notifications, event)
    await eventually(
        lambda: settled(notifier_pool, tenant_id, *(e.event_id for e in events)), what="deliveries"
    )
    [mail] = smtp_server.mail.for_tenant(tenant_id, "spending")
    assert mail["Subject"] == "[budget] Contoso reached 80% of its 2026-11 budget"
    assert mail["To"] == "finance@partner.example"


def test_uuid_namespace_is_fixed():
    # Changing it would change every Idempotency-Key and make receivers act twice after an upgrade.
    assert domain.delivery_id("t", "a", "email:contact", "alert") == uuid.uuid5(
        uuid.UUID("3f0c4b8e-9a51-4a53-9d5e-6b1c2f7a8d10"), "t\x1fa\x1femail:contact\x1falert"
    )


async def test_a_cleared_contact_skips_the_email_and_a_deleted_channel_gets_nothing(
    tenant_id, start_notifier, publish, notifier_pool, smtp_server
):
    await set_channel(notifier_pool, tenant_id, "gone", "http://127.0.0.1:9/never")
    start_notifier()
    await set_contact(publish, notifier_pool, tenant_id, "soc@partner.example")
    cleared = SecurityContactChanged(
        tenant_id=tenant_id, contact=None, actor=Actor(type=ActorType.user, id="admin")
    )
    await publish(Topic.security_contacts, cleared)
    deleted = channel_changed(tenant_id, "gone", None)
    await publish(Topic.notification_channels, deleted)
    await eventually(lambda: settled(notifier_pool, tenant_id, cleared.event_id, deleted.event_id),
                     what="the contact cleared and the channel deleted")

    created = alert_created(tenant_id, "a1")
    await publish(Topic.alerts, created)
    await eventually(lambda: settled(notifier_pool, tenant_id, created.event_id), what="deliveries")
    assert smtp_server.mail.for_tenant(tenant_id) == []
    [mail] = await deliveries(notifier_pool, tenant_id, channel="email:contact")
    assert (mail["state"], mail["last_error"]) == ("skipped", "no security contact")
    assert await deliveries(notifier_pool, tenant_id, channel="webhook:gone") == []


@pytest.mark.timeout(180)
async def test_an_email_skipped_for_want_of_a_contact_is_sent_when_the_contact_arrives(
    tenant_id, start_notifier, publish, notifier_pool, smtp_server
):
    # Two topics, no order between them: the alert is consumed before the contact set just before it.
    start_notifier()
    fresh, answered, stale = (alert_created(tenant_id, a) for a in ("fresh", "answered", "stale"))
    for event in (fresh, answered, stale):
        await publish(Topic.alerts, event)
    await eventually(
        lambda: settled(notifier_pool, tenant_id, fresh.event_id, answered.event_id, stale.event_id),
        what="the e-mails skipped for want of a contact",
    )
    assert {(r["state"], r["last_error"]) for r in await deliveries(notifier_pool, tenant_id)} == {
        ("skipped", "no security contact")
    }
    # No longer worth sending when the contact comes: one answered since, one skipped long ago.
    response = partner_response(answered)
    await publish(Topic.alerts, response)
    await eventually(lambda: settled(notifier_pool, tenant_id, response.event_id), what="the response")
    await notifier_pool.execute(
        """UPDATE notification_deliveries SET last_attempt_at = now() - interval '2 hours'
           WHERE tenant_id = $1 AND subject_id = 'stale'""",
        tenant_id,
    )

    await set_contact(publish, notifier_pool, tenant_id, "soc@partner.example")
    await eventually(lambda: smtp_server.mail.for_tenant(tenant_id, "alert"), what="the e-mail sent late")
    await eventually(lambda: settled(notifier_pool, tenant_id), what="deliveries")
    # Another contact event later sends nothing more: one effective e-mail per alert.
    changed = SecurityContactChanged(
        tenant_id=tenant_id,
        contact=SecurityContact(name="SOC", email="soc2@partner.example"),
        actor=Actor(type=ActorType.user, id="admin"),
    )
    await publish(Topic.security_contacts, changed)
    await eventually(lambda: settled(notifier_pool, tenant_id, changed.event_id), what="the second contact")

    [mail] = smtp_server.mail.for_tenant(tenant_id)
    assert (mail["X-CSP-Alert-Id"], mail["To"]) == ("fresh", "soc@partner.example")
    states = {r["subject_id"]: r["state"] for r in await deliveries(notifier_pool, tenant_id)}
    assert states == {"fresh": "delivered", "answered": "skipped", "stale": "skipped"}
