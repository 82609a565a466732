"""Microsoft Teams as a channel kind (#13): a Teams channel receives an Adaptive Card per alert and
escalation (reminders go to the contact alone, as before), with the four one-click responses signed for
the channel and the dashboard link, through the same retries, dead letters and redeliveries as every
delivery of a channel. The card itself is pure (``services/notifier/teams.py``); the deliveries go to
the real HTTP receiver standing in for Teams."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from services.notifier import domain, teams
from services.notifier.domain import Kind
from shared.action_links import Action, read_action_link
from shared.channels import ChannelKind
from shared.events import (
    Actor,
    ActorType,
    ChannelConfig,
    NotificationChannelChanged,
    RedeliveryRequested,
    Topic,
)
from shared.sealed import seal
from shared.settings import DEV_SEALING_KEY
from shared.wire import utcnow
from tests.services.notifier.helpers import SECRET, alert_created, applied, deliveries, settled
from tests.support.kafka import read_topic
from tests.support.polling import eventually

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
KEYS = ["new-action-link-key-for-the-tests-0001", "old-action-link-key-for-the-tests-0002"]
DASHBOARD = "https://triage.example/dashboard?tenant=t1&alert=a1"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
LABELS = ["Acknowledge", "Resolve: legitimate", "Resolve: fraud", "Resolve: ignore"]


def links(recipient: str = "teams:soc") -> domain.Links:
    plain = domain.Links(DASHBOARD, "https://learn.microsoft.com/help")
    return domain.Links(plain.dashboard, plain.help, domain.action_choices(
        KEYS, "https://triage.example/api", tenant_id="t1", alert_id="a1", recipient=recipient, now=NOW))


def card_of(message: dict) -> dict:
    """The Adaptive Card of a Teams message, checking the envelope Teams expects around it."""
    assert message["type"] == "message"
    [attachment] = message["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["contentUrl"] is None
    card = attachment["content"]
    assert (card["$schema"], card["type"], card["version"]) == (CARD_SCHEMA, "AdaptiveCard", "1.4")
    return card


def runs(card: dict) -> list[str]:
    """The text of each line of the card's RichTextBlocks (their TextRuns joined)."""
    return ["".join(run["text"] for run in block["inlines"])
            for block in card["body"] if block["type"] == "RichTextBlock"]


def text_blocks(card: dict) -> list[str]:
    return [block["text"] for block in card["body"] if block["type"] == "TextBlock"]


# --- the card (pure) -------------------------------------------------------------------------------------


def test_the_card_is_the_message_teams_expects_with_the_alert_its_age_and_its_time_left():
    event = alert_created("t1", "a1", detectedDateTime="2026-11-27T08:00:00Z", description="Sign-ins from far away.")
    card = card_of(teams.card_message(Kind.alert, event, links(), NOW, 24 * 3600))
    assert text_blocks(card)[0] == "New security alert: a response is due within 24 hours"
    lines = runs(card)
    assert lines[0] == "Unusual activity a1"
    assert lines[1:] == [
        "Severity: high",
        "Customer: cust-1",
        "Alert type: unusualActivity",
        "Detected: 2026-11-27 08:00 UTC, 4 h 00 min ago",
        "Time left to the 24-hour limit: 20 h 00 min left (due 2026-11-28 08:00 UTC)",
        "Alert id: a1",
        "Sign-ins from far away.",
    ]
    # The same card, a day later: overdue.
    late = card_of(teams.card_message(Kind.alert, event, links(), NOW + timedelta(days=1), 24 * 3600))
    assert "Time left to the 24-hour limit: overdue by 4 h 00 min (due 2026-11-28 08:00 UTC)" in runs(late)
    # What Teams is sent: UTF-8 JSON of that message.
    chosen = links()
    assert json.loads(teams.card_body(Kind.alert, event, chosen, NOW, 24 * 3600)) == teams.card_message(
        Kind.alert, event, chosen, NOW, 24 * 3600)


def test_reminder_escalation_and_test_alert_cards_say_what_they_are():
    event = alert_created("t1", "a1", detectedDateTime="2026-11-27T08:00:00Z")
    reminder = card_of(teams.card_message(Kind.reminder, event, links(), NOW, 24 * 3600))
    escalation = card_of(teams.card_message(Kind.escalation, event, links(), NOW, 24 * 3600))
    assert text_blocks(reminder)[0] == "Reminder: this alert has had no response yet"
    assert text_blocks(escalation)[0] == "Escalation: this alert is still unanswered"
    assert escalation["body"][0]["color"] == "Attention"
    bare = alert_created("t1", "a1", isTest=True, severity=None, alertType=None, customerTenantId=None,
                         displayName=None, detectedDateTime="2026-11-27T08:00:00Z")
    card = card_of(teams.card_message(Kind.alert, bare, links(), NOW, 24 * 3600))
    assert text_blocks(card)[0].endswith("(test alert)")
    assert runs(card)[:4] == ["a1", "Severity: unknown severity", "Customer: unknown", "Alert type: unknown"]


def test_its_buttons_are_the_four_responses_signed_for_the_channel_and_the_dashboard():
    event = alert_created("t1", "a1", detectedDateTime="2026-11-27T08:00:00Z")
    card = card_of(teams.card_message(Kind.alert, event, links("teams:soc"), NOW, 24 * 3600))
    actions = card["actions"]
    assert {a["type"] for a in actions} == {"Action.OpenUrl"}
    assert [a["title"] for a in actions] == [*LABELS, "Open in the dashboard"]
    assert actions[-1]["url"] == DASHBOARD
    read = [read_action_link(KEYS[:1], a["url"].removeprefix("https://triage.example/api/v1/actions/"),
                             max_age_seconds=60, now=NOW) for a in actions[:4]]
    assert [(r.tenant_id, r.alert_id, r.recipient) for r in read] == [("t1", "a1", "teams:soc")] * 4
    assert [r.action for r in read] == list(Action)
    assert len({r.link_id for r in read}) == 4
    assert teams.link_recipient("soc") == "teams:soc"
    # Without response links (none given), only the dashboard.
    plain = card_of(teams.card_message(Kind.alert, event, domain.Links(DASHBOARD, "h"), NOW, 24 * 3600))
    assert [a["title"] for a in plain["actions"]] == ["Open in the dashboard"]


def test_text_from_the_alert_is_never_read_as_markdown_and_the_card_stays_under_teams_limit():
    # Alert fields come from outside: as TextRuns, Teams shows them as they are (no link, no bold).
    lure = "[Verify your account](https://evil.example) **now**"
    event = alert_created("t1", "a1", displayName=lure, customerTenantId=lure, alertType="_x_",
                          description=lure, detectedDateTime="2026-11-27T08:00:00Z")
    card = card_of(teams.card_message(Kind.alert, event, links(), NOW, 24 * 3600))
    assert lure in runs(card) and f"Customer: {lure}" in runs(card)
    assert not any("evil.example" in text for text in text_blocks(card))  # none in Markdown text
    assert not any(fact.get("type") == "FactSet" for fact in card["body"])  # FactSet values are Markdown
    # Teams refuses a message over 28 KB: every field from outside is cut to a bound.
    huge = alert_created("t1", "\x03" * 256, displayName="\x01" * 100_000, customerTenantId="é" * 100_000,
                         alertType="\u2028" * 100_000, description="😀\x02" * 100_000,
                         detectedDateTime="2026-11-27T08:00:00Z")
    body = teams.card_body(Kind.escalation, huge, links(), NOW, 24 * 3600)
    assert len(body) < 28 * 1024, len(body)
    assert any(line.endswith("…") for line in runs(card_of(json.loads(body))))


@pytest.mark.parametrize(
    ("status", "headers", "text", "outcome", "retry_after"),
    [
        (200, {}, "1", "delivered", None),  # an incoming webhook
        (202, {}, "", "delivered", None),  # a Workflows trigger
        (429, {"retry-after": "7"}, "", "transient", 7.0),
        (503, {}, "", "transient", None),
        (400, {}, "Summary or Text is required.", "permanent", None),
        (413, {}, "", "permanent", None),
        # A connector says it was throttled (or refused) in the body of a 200: that is what it means.
        (200, {}, "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 429 "
                  "with ContextId tcid=0,server=msgapi", "transient", None),
        (200, {}, "Microsoft Teams endpoint returned HTTP error 413 with ContextId x", "permanent", None),
    ],
)
def test_teams_answers_read_as_attempts(status, headers, text, outcome, retry_after):
    attempt = teams.answer_attempt(status, headers, text, NOW)
    assert (attempt.outcome, attempt.retry_after, attempt.status_code) == (outcome, retry_after, status)
    if outcome != "delivered":
        assert attempt.error


def test_a_channel_event_without_a_kind_is_a_webhook_and_each_kind_has_its_secrets_or_none():
    # As the write API published them before #13: no kind.
    before = json.dumps({"eventType": "notification-channel-changed", "tenantId": "t1", "name": "jira",
                         "channel": {"url": "https://tickets.example/hook", "secret": "sealed"}})
    assert NotificationChannelChanged.model_validate_json(before).channel.kind is ChannelKind.webhook
    assert ChannelConfig(kind="teams", url="https://teams.example/hook").secret is None
    with pytest.raises(ValueError, match="needs its signing secret"):
        ChannelConfig(url="https://tickets.example/hook")
    with pytest.raises(ValueError, match="no signing secret"):
        ChannelConfig(kind="teams", url="https://teams.example/hook", secret="sealed")


# --- deliveries to a Teams channel (real notifier, Kafka, PostgreSQL and HTTP receiver) ---------------------


def teams_channel(tenant_id: str, name: str, url: str, *, escalation: bool = False) -> NotificationChannelChanged:
    """The write API's event about Teams channel ``name`` (no secret)."""
    return NotificationChannelChanged(tenant_id=tenant_id, name=name, occurred_date_time=utcnow(),
                                      channel=ChannelConfig(kind=ChannelKind.teams, url=url, escalation=escalation))


LINK_SETTINGS = {"ACTION_LINK_KEYS": ",".join(KEYS), "WRITE_API_PUBLIC_URL": "https://triage.example/api"}


async def test_a_teams_channel_gets_one_card_per_alert_after_being_throttled(
    tenant_id, start_notifier, publish, notifier_pool, receiver
):
    path = f"/{tenant_id}/teams"
    receiver.script(path, (429, {"Retry-After": "2"}))
    start_notifier(**LINK_SETTINGS)
    channel = teams_channel(tenant_id, "soc", receiver.url(path))
    await publish(Topic.notification_channels, channel)
    await eventually(lambda: applied(notifier_pool, channel.event_id), what="the Teams channel")
    stored = await notifier_pool.fetchrow(
        "SELECT kind, secret FROM notification_channels WHERE tenant_id = $1 AND name = 'soc'", tenant_id)
    assert (stored["kind"], stored["secret"]) == ("teams", None)

    created = alert_created(tenant_id, "a1")
    await publish(Topic.alerts, created)
    await eventually(lambda: settled(notifier_pool, tenant_id, created.event_id), what="the card")

    first, second = receiver.calls(path)
    assert (first.status, second.status) == (429, 200)
    assert second.time - first.time >= 1.9  # the Retry-After Teams asked for
    assert "webhook-signature" not in second.headers  # nothing to sign with: Teams verifies none
    assert second.headers["content-type"] == "application/json"
    card = card_of(second.json)
    assert runs(card)[0] == "Unusual activity a1"
    assert [a["title"] for a in card["actions"]] == [*LABELS, "Open in the dashboard"]
    now = utcnow()
    read = [read_action_link(KEYS, a["url"].removeprefix("https://triage.example/api/v1/actions/"),
                             max_age_seconds=600, now=now) for a in card["actions"][:4]]
    assert {(r.tenant_id, r.alert_id, r.recipient) for r in read} == {(tenant_id, "a1", "teams:soc")}
    assert card["actions"][4]["url"].startswith(f"https://triage.example/dashboard?tenant={tenant_id}")
    [row] = await deliveries(notifier_pool, tenant_id, channel="webhook:soc")
    assert (row["state"], row["attempts"], row["recipient"]) == ("delivered", 2, receiver.url(path))


@pytest.mark.timeout(180)
async def test_a_card_teams_refuses_is_dead_lettered_and_a_redelivery_sends_it_again(
    tenant_id, start_notifier, publish, notifier_pool, receiver, kafka_bootstrap, topic_prefix
):
    path = f"/{tenant_id}/teams"
    receiver.script(path, (400, {}))
    start_notifier(**LINK_SETTINGS)
    channel = teams_channel(tenant_id, "soc", receiver.url(path))
    await publish(Topic.notification_channels, channel)
    await eventually(lambda: applied(notifier_pool, channel.event_id), what="the Teams channel")
    created = alert_created(tenant_id, "a1")
    await publish(Topic.alerts, created)
    await eventually(lambda: settled(notifier_pool, tenant_id, created.event_id), what="the refused card")

    [dead] = await deliveries(notifier_pool, tenant_id, channel="webhook:soc")
    assert (dead["state"], dead["attempts"], dead["last_status_code"]) == ("dead", 1, 400)
    [letter] = await read_topic(
        kafka_bootstrap, f"{topic_prefix}dead-letter", count=1, timeout=30,
        predicate=lambda r: r["headers"].get("dlq.source") == f"delivery {dead['delivery_id']} to webhook:soc")
    assert letter["headers"]["eventType"] == "dead-delivery"

    again = RedeliveryRequested(tenant_id=tenant_id, delivery_id=dead["delivery_id"],
                                actor=Actor(type=ActorType.user, id="admin@partner.example"))
    await publish(Topic.delivery_commands, again)
    await eventually(lambda: settled(notifier_pool, tenant_id, again.event_id), what="the redelivery")
    [row] = await deliveries(notifier_pool, tenant_id, channel="webhook:soc")
    assert (row["state"], row["attempts"], row["redeliveries"]) == ("delivered", 1, 1)
    refused, sent = receiver.calls(path)
    assert (refused.status, sent.status) == (400, 200)
    assert runs(card_of(sent.json))[0] == "Unusual activity a1"


async def test_an_escalation_reaches_a_teams_escalation_channel_as_its_card_and_a_kind_change_applies_at_once(
    tenant_id, start_notifier, publish, notifier_pool, receiver
):
    cards, tickets = f"/{tenant_id}/duty", f"/{tenant_id}/tickets"
    start_notifier(ESCALATION_AFTER_SECONDS="1", **LINK_SETTINGS)
    duty = teams_channel(tenant_id, "duty", receiver.url(cards), escalation=True)
    # A webhook channel (its event as before #13: no kind), then the same channel made a Teams one.
    legacy = NotificationChannelChanged.model_validate({
        "eventType": "notification-channel-changed", "tenantId": tenant_id, "name": "tickets",
        "occurredDateTime": (utcnow() - timedelta(seconds=1)).isoformat(),
        "channel": {"url": receiver.url(tickets), "secret": seal(SECRET, [DEV_SEALING_KEY])}})
    for event in (duty, legacy):
        await publish(Topic.notification_channels, event)
    await eventually(lambda: applied(notifier_pool, duty.event_id, legacy.event_id), what="the channels")
    assert await notifier_pool.fetchval(
        "SELECT kind FROM notification_channels WHERE tenant_id = $1 AND name = 'tickets'", tenant_id) == "webhook"

    first = alert_created(tenant_id, "a1")
    await publish(Topic.alerts, first)
    await eventually(lambda: receiver.calls(cards), what="the escalation card")
    await eventually(lambda: settled(notifier_pool, tenant_id, first.event_id), what="the deliveries")
    [escalation] = receiver.calls(cards)
    assert text_blocks(card_of(escalation.json))[0] == "Escalation: this alert is still unanswered"
    [ticket] = receiver.calls(tickets)
    assert ticket.json["type"] == "alert.created" and "webhook-signature" in ticket.headers

    switched = teams_channel(tenant_id, "tickets", receiver.url(tickets))
    await publish(Topic.notification_channels, switched)
    await eventually(lambda: applied(notifier_pool, switched.event_id), what="the switch to Teams")
    second = alert_created(tenant_id, "a2")
    await publish(Topic.alerts, second)
    await eventually(lambda: len(receiver.calls(tickets)) == 2, what="the second alert")
    card = receiver.calls(tickets)[-1]
    assert runs(card_of(card.json))[0] == "Unusual activity a2" and "webhook-signature" not in card.headers
