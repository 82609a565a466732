"""Escalation chains per tenant (#13), the notifier's side: the chains arrive on the compacted
``escalation-chains`` topic; a new alert of a tenant with a chain gets one escalation timer per step
(instead of the deployment's single escalation); a step that fires tells the recipient the chain in
force then names for it (an e-mail address, or a channel of either kind); a response cancels every
step; at-risk warnings go to the chain's e-mail steps."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import pytest_asyncio

from services.notifier import domain, store, warning_store
from services.notifier.domain import ChannelRule, Kind, TimerKey
from shared.action_links import read_action_link
from shared.alerts import Alert
from shared.channels import Route
from shared.db import create_pool
from shared.events import AlertCreated, EscalationChainChanged, EscalationStep, RequirementStatusObserved, Topic
from shared.settings import DEV_ACTION_LINK_KEY
from shared.wire import utcnow
from tests.services.notifier.helpers import (
    alert_created,
    applied,
    deliveries,
    partner_response,
    set_channel,
    set_contact,
    settled,
)
from tests.support.kafka import read_topic
from tests.support.polling import eventually

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
LEAD, BOSS = "lead@partner.example", "boss@partner.example"


def step(after_minutes: int, *, email: str | None = None, channel: str | None = None) -> EscalationStep:
    return EscalationStep(after_minutes=after_minutes, email=email, channel=channel)


CHAIN = (step(60, email=LEAD), step(240, channel="pager"))


def created(detected: str, **fields) -> AlertCreated:
    alert = Alert.model_validate({"id": "a1", "severity": "high", "detectedDateTime": detected, **fields})
    return AlertCreated(tenant_id="t1", alert=alert, ingested_date_time=NOW)


def chain_changed(tenant_id: str, steps, *, occurred: datetime | None = None) -> EscalationChainChanged:
    return EscalationChainChanged(tenant_id=tenant_id, steps=None if steps is None else list(steps),
                                  occurred_date_time=occurred or utcnow())


# --- the timers of a new alert (pure) --------------------------------------------------------------------


def test_with_a_chain_a_new_alert_gets_a_timer_per_step_at_detection_plus_its_delay_instead_of_the_default():
    fresh = created("2026-11-27T11:30:00Z")
    assert domain.timers_for_new_alert(fresh, 3600, 72000, NOW, chain=CHAIN) == {
        TimerKey(Kind.reminder): datetime(2026, 11, 27, 12, 30, tzinfo=UTC),
        TimerKey(Kind.escalation, 1): datetime(2026, 11, 27, 12, 30, tzinfo=UTC),
        TimerKey(Kind.escalation, 2): datetime(2026, 11, 27, 15, 30, tzinfo=UTC),
    }
    # Without a chain, the deployment's single escalation (step 0), as before chains.
    assert domain.timers_for_new_alert(fresh, 3600, 72000, NOW) == {
        TimerKey(Kind.reminder): datetime(2026, 11, 27, 12, 30, tzinfo=UTC),
        TimerKey(Kind.escalation): datetime(2026, 11, 28, 7, 30, tzinfo=UTC),
    }
    # An alert that needs no response, or arrives answered or resolved, gets no step either.
    assert domain.timers_for_new_alert(created("2026-11-27T11:30:00Z", isTest=True), 3600, 72000, NOW,
                                       chain=CHAIN) == {}
    assert domain.timers_for_new_alert(created("2026-11-27T11:30:00Z", status="resolved"), 3600, 72000, NOW,
                                       chain=CHAIN) == {}


def test_steps_already_due_on_arrival_fire_at_once_and_the_reminder_is_left_out_only_beside_one():
    # Five hours old: both steps are due now (each recipient would have been told by now).
    old = domain.timers_for_new_alert(created("2026-11-27T07:00:00Z"), 3600, 72000, NOW, chain=CHAIN)
    assert old == {TimerKey(Kind.escalation, 1): datetime(2026, 11, 27, 8, tzinfo=UTC),
                   TimerKey(Kind.escalation, 2): datetime(2026, 11, 27, 11, tzinfo=UTC)}
    # Ninety minutes old: step 1 is due, and so is the reminder: they would say the same thing at
    # once, so only the escalation; step 2 later.
    late = domain.timers_for_new_alert(created("2026-11-27T10:30:00Z"), 3600, 72000, NOW, chain=CHAIN)
    assert set(late) == {TimerKey(Kind.escalation, 1), TimerKey(Kind.escalation, 2)}
    # A step told at once (0 minutes) on a fresh alert: the reminder is not due yet, so it stays.
    at_once = (step(0, channel="pager"), step(120, email=LEAD))
    fresh = domain.timers_for_new_alert(created("2026-11-27T11:59:00Z"), 3600, 72000, NOW, chain=at_once)
    assert set(fresh) == {TimerKey(Kind.reminder), TimerKey(Kind.escalation, 1), TimerKey(Kind.escalation, 2)}


# --- where a fired step goes (pure) ---------------------------------------------------------------------


def test_a_fired_step_goes_to_the_recipient_the_chain_in_force_names_for_it():
    alert = created("2026-11-27T11:30:00Z").alert
    rules = [ChannelRule("jira", ()), ChannelRule("oncall", (Route(severities=["high"]),), escalation=True)]

    def fired(step_number: int, chain) -> list[str]:
        return domain.escalation_step_channels(step_number, chain, rules, alert, escalation_email=True)

    assert fired(1, CHAIN) == [f"email:to:{LEAD}"]
    assert fired(2, CHAIN) == ["webhook:pager"]  # the chain names it: its routes and flag do not matter
    assert fired(2, (step(60, email=LEAD), step(90, email=BOSS))) == [f"email:to:{BOSS}"]  # changed since
    assert fired(2, CHAIN[:1]) == []  # the step was removed since: nothing is sent
    # The chain removed since: the deployment's escalation applies again.
    assert fired(2, None) == ["webhook:oncall", "email:escalation"]
    # Step 0 is the deployment's escalation of an alert that came while the tenant had no chain.
    assert fired(0, CHAIN) == fired(0, None) == ["webhook:oncall", "email:escalation"]


def test_an_email_step_is_a_delivery_channel_that_names_its_address():
    channel = domain.step_channel(step(60, email=LEAD))
    assert channel == "email:to:lead@partner.example"
    assert domain.email_address(channel) == LEAD
    assert domain.email_address(domain.CONTACT_EMAIL) is None
    assert domain.email_address(domain.ESCALATION_EMAIL) is None
    assert domain.email_address("webhook:pager") is None


def test_a_chain_without_steps_or_with_a_step_of_no_or_two_recipients_is_unusable():
    assert domain.usable_chain(None) is None  # removed
    assert domain.usable_chain(list(CHAIN)) == CHAIN
    for steps, problem in (
        ([], "no steps"),
        ([step(60, email=LEAD), step(90)], "steps[1]"),
        ([step(60, email=LEAD, channel="pager")], "steps[0]"),
    ):
        with pytest.raises(domain.UnusableChain, match=re.escape(problem)):
            domain.usable_chain(steps)


def test_warnings_go_to_the_contact_and_every_email_step_of_the_chain_else_the_escalation_address():
    chain = (step(0, channel="pager"), step(60, email=LEAD), step(120, email=BOSS), step(180, email=LEAD))
    assert warning_store.recipients(chain, escalation_email=True) == [
        "email:contact", f"email:to:{LEAD}", f"email:to:{BOSS}"]
    assert warning_store.recipients((step(0, channel="pager"),), escalation_email=True) == ["email:contact"]
    assert warning_store.recipients(None, escalation_email=True) == ["email:contact", "email:escalation"]
    assert warning_store.recipients(None, escalation_email=False) == ["email:contact"]


# --- the chains and the timers in PostgreSQL --------------------------------------------------------------


@pytest_asyncio.fixture
async def pool(own_database: str) -> AsyncIterator[asyncpg.Pool]:
    """A database of this test's own: no notifier process fires these timers."""
    pool = await create_pool(own_database, schema="notifier")
    yield pool
    await pool.close()


async def record_chain(pool: asyncpg.Pool, event: EscalationChainChanged) -> bool | None:
    return await store.record_escalation_chain(pool, event, domain.usable_chain(event.steps))


async def test_the_newest_chain_wins_and_a_removal_is_kept_so_an_older_event_cannot_bring_it_back(pool):
    now = utcnow()
    first = chain_changed("t1", CHAIN, occurred=now - timedelta(minutes=2))
    removed = chain_changed("t1", None, occurred=now)
    older = chain_changed("t1", CHAIN[:1], occurred=now - timedelta(minutes=1))
    assert await record_chain(pool, first) is True
    assert await store.escalation_chain(pool, "t1") == CHAIN
    assert await record_chain(pool, first) is None  # redelivered: applied before
    assert await record_chain(pool, removed) is True
    assert await record_chain(pool, older) is False  # older than the removal in force
    assert await store.escalation_chain(pool, "t1") is None
    row = await pool.fetchrow("SELECT steps, occurred_at FROM escalation_chains WHERE tenant_id = 't1'")
    assert (row["steps"], row["occurred_at"]) == (None, now)
    assert await store.escalation_chain(pool, "t2") is None  # never had one


async def fire_all(pool: asyncpg.Pool, *, escalation_email: bool = True) -> None:
    while await store.fire_due_timers(pool, escalation_email=escalation_email, limit=100):
        pass


async def timer_states(pool: asyncpg.Pool, alert_id: str) -> dict[tuple[str, int], str]:
    rows = await pool.fetch("SELECT kind, step, state FROM notification_timers WHERE alert_id = $1", alert_id)
    return {(r["kind"], r["step"]): r["state"] for r in rows}


async def escalations(pool: asyncpg.Pool, alert_id: str) -> list[str]:
    rows = await pool.fetch("SELECT channel FROM notification_deliveries WHERE subject_id = $1 AND kind = 'escalation'"
                            " ORDER BY channel", alert_id)
    return [r["channel"] for r in rows]


async def test_each_step_fires_to_the_recipient_the_chain_in_force_names_and_a_response_cancels_the_rest(pool):
    await set_channel(pool, "t1", "oncall", "https://pager.example/hook", escalation=True)
    await record_chain(pool, chain_changed("t1", (step(60, email=LEAD), step(120, channel="pager"),
                                                  step(150, email=BOSS), step(10080, email=BOSS))))
    three_hours_ago = (utcnow() - timedelta(hours=3)).isoformat()
    changed = alert_created("t1", "changed", detectedDateTime=three_hours_ago)
    removed = alert_created("t1", "removed", detectedDateTime=three_hours_ago)
    answered = alert_created("t1", "answered", detectedDateTime=three_hours_ago)
    assert await store.record_alert_created(pool, changed, 3600, 72000)
    assert await timer_states(pool, "changed") == {
        ("escalation", 1): "scheduled", ("escalation", 2): "scheduled", ("escalation", 3): "scheduled",
        ("escalation", 4): "scheduled"}  # no reminder: the first step is due on arrival beside it

    # Before the steps fire, step 2 now names another channel and step 3 is gone.
    await record_chain(pool, chain_changed("t1", (step(60, email=LEAD), step(120, channel="jira"))))
    await fire_all(pool)
    assert await escalations(pool, "changed") == [f"email:to:{LEAD}", "webhook:jira"]
    assert await timer_states(pool, "changed") == {
        ("escalation", 1): "fired", ("escalation", 2): "fired", ("escalation", 3): "cancelled",
        ("escalation", 4): "scheduled"}

    # An alert answered before its steps fire: every one of them is cancelled.
    assert await store.record_alert_created(pool, answered, 3600, 72000)
    assert await store.record_alert_updated(pool, partner_response(answered)) == 2
    await fire_all(pool)
    assert await escalations(pool, "answered") == []
    assert set((await timer_states(pool, "answered")).values()) == {"cancelled"}

    # The chain removed before the steps fire: the deployment's escalation, once (one delivery per
    # alert, channel and kind, however many steps fall back to it).
    assert await store.record_alert_created(pool, removed, 3600, 72000)
    await record_chain(pool, chain_changed("t1", None))
    await fire_all(pool)
    assert await escalations(pool, "removed") == ["email:escalation", "webhook:oncall"]


async def test_a_new_alert_of_a_tenant_whose_chain_was_removed_gets_the_deployments_escalation(pool):
    await record_chain(pool, chain_changed("t1", CHAIN, occurred=utcnow() - timedelta(minutes=1)))
    await record_chain(pool, chain_changed("t1", None))
    assert await store.record_alert_created(pool, alert_created("t1", "a1"), 3600, 72000)
    assert await timer_states(pool, "a1") == {("reminder", 0): "scheduled", ("escalation", 0): "scheduled"}


async def test_a_warning_goes_to_the_contact_and_the_chains_email_steps(pool):
    await record_chain(pool, chain_changed("t1", (step(0, channel="pager"), step(60, email=LEAD))))
    noncompliant = RequirementStatusObserved(
        tenant_id="t1", requirement_type="mfaEnforcedForAdmins", compliance_status="noncompliant", source="test",
        observed_date_time=utcnow())
    assert await warning_store.record_requirement_status(pool, noncompliant, now=utcnow(), escalation_email=True) == 2
    rows = await pool.fetch("SELECT channel FROM notification_deliveries WHERE kind = 'warning' ORDER BY channel")
    assert [r["channel"] for r in rows] == ["email:contact", f"email:to:{LEAD}"]


# --- a notifier process on the real broker, SMTP server and HTTP receiver ---------------------------------


@pytest.mark.timeout(180)
async def test_a_chain_escalates_step_by_step_to_an_address_then_a_channel_and_a_response_stops_it(
    tenant_id, start_notifier, publish, notifier_pool, smtp_server, receiver
):
    pager, oncall = f"/{tenant_id}/pager", f"/{tenant_id}/oncall"
    await set_channel(notifier_pool, tenant_id, "pager", receiver.url(pager), routes=[{"severities": ["low"]}])
    await set_channel(notifier_pool, tenant_id, "oncall", receiver.url(oncall), escalation=True)
    start_notifier(REMINDER_AFTER_SECONDS="72000", ESCALATION_AFTER_SECONDS="3600",
                   ESCALATION_EMAIL="oncall@partner.example")
    await set_contact(publish, notifier_pool, tenant_id, "soc@partner.example")
    chain = chain_changed(tenant_id, (step(60, email=LEAD), step(120, channel="pager")))
    await publish(Topic.escalation_chains, chain)
    # Once an alert went through, the alerts consumer is assigned: the response below comes in time.
    warm_up = alert_created(tenant_id, "warm-up", isTest=True)
    await publish(Topic.alerts, warm_up)
    await eventually(lambda: settled(notifier_pool, tenant_id, chain.event_id, warm_up.event_id),
                     what="the chain and the first alert")

    # Detected so long ago that step 1 (60 min) is due on arrival and step 2 (120 min) in 20 s.
    detected = utcnow() - timedelta(minutes=120) + timedelta(seconds=20)
    ignored = alert_created(tenant_id, "ignored", detectedDateTime=detected.isoformat())
    answered = alert_created(tenant_id, "answered", detectedDateTime=detected.isoformat())
    for event in (ignored, answered):
        await publish(Topic.alerts, event)
    lead_mails = await eventually(
        lambda: [m for m in smtp_server.mail.for_tenant(tenant_id, "escalation") if m["To"] == LEAD], until=
        lambda found: len(found) == 2, what="step 1: the lead's escalation e-mails")
    await publish(Topic.alerts, partner_response(answered))

    await eventually(lambda: [c for c in receiver.calls(pager) if c.json["type"] == "alert.escalation"],
                     within=60, what="step 2 of the unanswered alert")
    await eventually(lambda: settled(notifier_pool, tenant_id, ignored.event_id, answered.event_id),
                     what="the deliveries")
    [call] = [c for c in receiver.calls(pager) if c.json["type"] == "alert.escalation"]
    assert call.json["alert"]["id"] == "ignored" and call.time >= detected.timestamp() + 120 * 60 - 0.5
    assert receiver.calls(pager) == [call]  # its routes take low alerts only: nothing else came

    # Step 1: the escalation e-mail to the lead, with its one-click responses signed for the lead.
    mail = next(m for m in lead_mails if m["X-CSP-Alert-Id"] == "ignored")
    assert mail["Subject"] == "[high] Escalation: Unusual activity ignored"
    text = mail.get_body(("plain",)).get_content().replace("\r\n", "\n")  # SMTP line ends
    [url] = re.findall(r"^- Acknowledge: (\S+)$", text, re.MULTILINE)
    link = read_action_link([DEV_ACTION_LINK_KEY], url.rpartition("/")[2], max_age_seconds=60, now=utcnow())
    assert (link.tenant_id, link.alert_id, link.recipient) == (tenant_id, "ignored", LEAD)

    # The chain replaces the deployment's escalation: neither the escalation address nor the
    # escalation channel heard of either alert; and the answered alert's step 2 never fired.
    assert [m["To"] for m in smtp_server.mail.for_tenant(tenant_id, "escalation")] == [LEAD, LEAD]
    assert receiver.calls(oncall) == []
    assert [d["channel"] for d in await deliveries(notifier_pool, tenant_id, subject_id="answered",
                                                   kind="escalation")] == [f"email:to:{LEAD}"]
    states = await notifier_pool.fetch(
        "SELECT alert_id, kind, step, state FROM notification_timers WHERE tenant_id = $1 AND alert_id <> 'warm-up'",
        tenant_id)
    assert {(r["alert_id"], r["kind"], r["step"]): r["state"] for r in states} == {
        ("ignored", "reminder", 0): "scheduled", ("ignored", "escalation", 1): "fired",
        ("ignored", "escalation", 2): "fired", ("answered", "reminder", 0): "cancelled",
        ("answered", "escalation", 1): "fired", ("answered", "escalation", 2): "cancelled"}


@pytest.mark.timeout(180)
async def test_a_tenant_whose_chain_was_removed_gets_the_deployments_escalation_again(
    tenant_id, start_notifier, publish, notifier_pool, smtp_server
):
    start_notifier(ESCALATION_AFTER_SECONDS="3600", ESCALATION_EMAIL="oncall@partner.example")
    await set_contact(publish, notifier_pool, tenant_id, "soc@partner.example")
    now = utcnow()
    chain = chain_changed(tenant_id, (step(0, email=LEAD),), occurred=now - timedelta(seconds=1))
    removal = chain_changed(tenant_id, None, occurred=now)
    for event in (chain, removal):
        await publish(Topic.escalation_chains, event)
    await eventually(lambda: applied(notifier_pool, chain.event_id, removal.event_id), what="the chain, then none")

    old = alert_created(tenant_id, "old", detectedDateTime=(utcnow() - timedelta(hours=2)).isoformat())
    await publish(Topic.alerts, old)
    [mail] = await eventually(lambda: smtp_server.mail.for_tenant(tenant_id, "escalation"),
                              what="the deployment's escalation")
    await eventually(lambda: settled(notifier_pool, tenant_id, old.event_id), what="the deliveries")
    assert mail["To"] == "oncall@partner.example"
    assert [m["To"] for m in smtp_server.mail.for_tenant(tenant_id, "escalation")] == ["oncall@partner.example"]
    assert json.loads((await deliveries(notifier_pool, tenant_id, kind="escalation"))[0]["payload"])[
        "alert"]["id"] == "old"


async def test_a_chain_with_a_step_naming_nobody_is_dead_lettered_and_the_consumer_moves_on(
    tenant_id, start_notifier, publish, notifier_pool, kafka_bootstrap, topic_prefix
):
    # Then a good chain of the same tenant (one key, one partition: the consumer must get past the first).
    bad = chain_changed(tenant_id, (step(60, email=LEAD), step(120)))
    good = chain_changed(tenant_id, CHAIN)
    start_notifier()
    for event in (bad, good):
        await publish(Topic.escalation_chains, event)
    await eventually(lambda: applied(notifier_pool, good.event_id), what="the good chain")

    [letter] = await read_topic(
        kafka_bootstrap, f"{topic_prefix}dead-letter", count=1, timeout=30,
        predicate=lambda r: r["headers"].get("eventId") == str(bad.event_id),
    )
    assert letter["headers"]["eventType"] == "poison-record" and letter["value"]["consumer"] == "notifier"
    assert "steps[1] names nobody" in letter["value"]["reason"]
    assert not await applied(notifier_pool, bad.event_id)
    assert await store.escalation_chain(notifier_pool, tenant_id) == CHAIN
