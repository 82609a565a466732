"""Storm grouping (#13): past STORM_THRESHOLD new alerts of a tenant within STORM_WINDOW_SECONDS on a
channel people read (the contact's e-mail, a Teams channel), each further alert joins a digest (one
message listing them, with one bulk acknowledge link) instead of a message of its own; a ticketing
webhook still gets every alert; each alert keeps its own timers and its own row in the log."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import pytest_asyncio

from services.notifier import domain, store, teams
from services.notifier.domain import DigestLinks, DigestPayload, StormPolicy
from shared.action_links import BULK_LINK_MAX_ALERTS, read_bulk_link
from shared.alerts import Alert
from shared.channels import ChannelKind
from shared.db import create_pool
from shared.events import AlertCreated, DeliveriesGrouped, Topic
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
from tests.support.polling import eventually

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
POLICY = StormPolicy(threshold=5, window_seconds=120, digest_wait_seconds=60)


# --- the rules (pure) ----------------------------------------------------------------------------------


def test_a_channel_is_in_a_storm_once_it_had_the_threshold_of_alerts_within_the_window():
    assert [domain.in_storm(recent, POLICY) for recent in (0, 4, 5, 30)] == [False, False, True, True]
    assert not domain.in_storm(100, StormPolicy(threshold=0, window_seconds=120, digest_wait_seconds=60))


def test_the_contacts_email_and_teams_channels_group_and_ticketing_webhooks_never_do():
    kinds = {"soc": ChannelKind.teams, "tickets": ChannelKind.webhook}
    assert domain.groups_in_storms(domain.CONTACT_EMAIL, kinds)
    assert domain.groups_in_storms("webhook:soc", kinds)
    assert not domain.groups_in_storms("webhook:tickets", kinds)
    assert not domain.groups_in_storms("webhook:gone", kinds)
    assert not domain.groups_in_storms(domain.ESCALATION_EMAIL, kinds)


def created(alert_id: str, **fields) -> AlertCreated:
    alert = Alert.model_validate({"id": alert_id, "displayName": f"Alert {alert_id}", "severity": "low",
                                  "customerTenantId": "c1", "detectedDateTime": NOW.isoformat(), **fields})
    return AlertCreated(tenant_id="t1", alert=alert, ingested_date_time=NOW)


def digest_links(digest: DigestPayload, bulk: str | None = "https://triage.example/v1/actions/bulk/T") -> DigestLinks:
    return DigestLinks({e.alert.id: f"https://triage.example/a/{e.alert.id}" for e in digest.alerts},
                       "https://help.example", bulk)


def test_a_digest_lists_each_alert_with_its_time_left_and_one_bulk_acknowledge():
    digest = DigestPayload(alerts=[created("a6"), created("a7", severity="high", displayName="<b>Bold</b>")],
                           earlier=5)
    context = domain.digest_context("t1", digest, digest_links(digest), NOW + timedelta(hours=1), 86400, 120)
    email = domain.digest_email(context)
    assert email.subject == "[high] 2 more new alerts for t1 (2-minute storm)"
    assert "2 more new security alerts arrived for t1 within 2 minutes of 5 others." in email.text
    assert "1. [low] Alert a6" in email.text and "2. [high] <b>Bold</b>" in email.text
    assert email.text.count("23 h 00 min left") == 2
    assert "Acknowledge all 2 alerts (the link opens a page" in email.text
    assert "https://triage.example/v1/actions/bulk/T" in email.text and "https://triage.example/a/a7" in email.text
    assert "&lt;b&gt;Bold&lt;/b&gt;" in email.html and "<b>Bold</b>" not in email.html  # autoescaped
    bare = domain.digest_email(domain.digest_context("t1", digest, digest_links(digest, None), NOW, 86400, 120))
    assert "Acknowledge" not in bare.text


def test_the_bulk_link_acknowledges_the_digests_alerts_as_its_recipient():
    url = domain.bulk_acknowledge_url([DEV_ACTION_LINK_KEY], "https://api.example/", tenant_id="t1",
                                      alert_ids=["a6", "a7"], recipient="soc@partner.example", now=NOW)
    assert url.startswith("https://api.example/v1/actions/bulk/")
    link = read_bulk_link([DEV_ACTION_LINK_KEY], url.rpartition("/")[2], max_age_seconds=60, now=NOW)
    assert (link.tenant_id, link.alert_ids, link.recipient) == ("t1", ("a6", "a7"), "soc@partner.example")


def test_a_bulk_link_covers_the_first_alerts_whose_ids_fit_and_says_so():
    assert domain.bulk_link_alerts(["a1", "a2", "a3"]) == ["a1", "a2", "a3"]
    assert domain.bulk_link_alerts(["x" * 5000, "a2"]) == ["x" * 5000]  # at least one
    long_ids = [f"{n:03d}" + "y" * 253 for n in range(50)]
    covered = domain.bulk_link_alerts(long_ids)
    assert covered == long_ids[:11]
    digest = DigestPayload(alerts=[created(alert_id) for alert_id in long_ids])
    links = DigestLinks({i: "https://d.example" for i in long_ids}, "https://help.example", "https://bulk",
                        len(covered))
    context = domain.digest_context("t1", digest, links, NOW, 86400, 120)
    assert context["bulk_acknowledge"]["label"] == "Acknowledge the first 11 alerts listed"


def test_a_full_digests_teams_card_stays_under_teams_limit_at_worst():
    # As many alerts as a digest holds, every text as long as it gets and as costly in JSON as it gets
    # (4-byte characters; control characters become spaces), ids as long as they get.
    worst = "\U0001F600"
    digest = DigestPayload(alerts=[created(f"{n:02d}" + worst * 254, displayName=worst * 2000,
                                           customerTenantId=worst * 500)
                                   for n in range(BULK_LINK_MAX_ALERTS)], earlier=5)
    ids = [e.alert.id for e in digest.alerts]
    covered = domain.bulk_link_alerts(ids)
    url = domain.bulk_acknowledge_url([DEV_ACTION_LINK_KEY], "https://api.example", tenant_id="t1",
                                      alert_ids=covered, recipient="teams:soc", now=NOW)
    assert len(url) < 8 * 1024
    links = DigestLinks({i: domain.dashboard_link("{publicBaseUrl}/d?t={tenantId}&a={alertId}", "https://x.example",
                                                  "t1", i) for i in ids}, "https://help.example", url, len(covered))
    body = teams.digest_card_body(domain.digest_context("t1", digest, links, NOW, 86400, 120))
    assert len(body) < 28 * 1024
    card = json.loads(body)["attachments"][0]["content"]
    listed = [block for block in card["body"] if block["type"] == "RichTextBlock"]
    assert 0 < len(listed) <= 20
    assert card["body"][-2]["text"] == f"…and {BULK_LINK_MAX_ALERTS - len(listed)} more: see the dashboard."
    assert card["actions"][0]["url"] == url

    # Alerts as they come (GUIDs, ordinary titles): twenty lines, each opening its alert.
    usual = DigestPayload(alerts=[created(f"{n:08d}-1111-2222-3333-444455556666") for n in range(50)])
    ids = [e.alert.id for e in usual.alerts]
    assert domain.bulk_link_alerts(ids) == ids
    card = teams.digest_card_message(domain.digest_context("t1", usual, DigestLinks(
        {i: f"https://d.example/{i}" for i in ids}, "https://help.example", "https://bulk"), NOW, 86400, 120))
    card = card["attachments"][0]["content"]
    lines = [block for block in card["body"] if block["type"] == "RichTextBlock"]
    assert len(lines) == 20 and lines[0]["inlines"][1]["selectAction"]["url"] == f"https://d.example/{ids[0]}"
    assert card["actions"][0]["title"] == "Acknowledge all 50 alerts"


# --- grouping in PostgreSQL --------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def pool(own_database: str) -> AsyncIterator[asyncpg.Pool]:
    """A database of this test's own: no notifier process sends these deliveries. Its tenants have a
    contact: the contact's e-mail of a tenant without one is logged skipped at once, and a storm is
    about messages someone reads."""
    pool = await create_pool(own_database, schema="notifier")
    await pool.executemany(
        "INSERT INTO notifier_contacts (tenant_id, name, email, occurred_at) VALUES ($1, 'SOC', $2, now())",
        [("t1", "soc@t1.example"), ("t2", "soc@t2.example")])
    yield pool
    await pool.close()


async def record(pool: asyncpg.Pool, event: AlertCreated, policy: StormPolicy = POLICY) -> bool:
    return await store.record_alert_created(pool, event, 3600, 72000, policy)


async def make_teams(pool: asyncpg.Pool, tenant_id: str, name: str, url: str | None = None) -> None:
    await set_channel(pool, tenant_id, name, url or f"https://teams.example/{name}")
    await pool.execute(
        "UPDATE notification_channels SET kind = 'teams', secret = NULL WHERE tenant_id = $1 AND name = $2",
        tenant_id, name)


async def test_past_the_threshold_the_alerts_join_one_digest_per_channel_people_read(pool):
    await set_channel(pool, "t1", "tickets", "https://tickets.example/hook")
    await make_teams(pool, "t1", "soc")
    events = [alert_created("t1", f"a{n}") for n in range(1, 9)]
    for event in events:
        assert await record(pool, event)

    rows = await deliveries(pool, "t1")
    by_channel = {}
    for row in rows:
        by_channel.setdefault((row["channel"], row["kind"]), []).append(row)
    # The ticketing webhook gets each of the 8 on its own.
    assert [r["state"] for r in by_channel["webhook:tickets", "alert"]] == ["pending"] * 8
    for channel in ("email:contact", "webhook:soc"):
        alerts = by_channel[channel, "alert"]
        assert [(r["subject_id"], r["state"]) for r in alerts] == [
            *((f"a{n}", "pending") for n in range(1, 6)), *((f"a{n}", "grouped") for n in range(6, 9))]
        [digest] = by_channel[channel, "digest"]
        assert digest["subject_id"] == "digest:a6" and digest["state"] == "pending" and digest["alert_id"] is None
        assert {r["digest_id"] for r in alerts[5:]} == {digest["delivery_id"]}
        held = DigestPayload.model_validate_json(digest["payload"])
        assert [e.alert.id for e in held.alerts] == ["a6", "a7", "a8"] and held.earlier == 5
        # Due a wait after it opened: later alerts of the storm join it meanwhile.
        assert timedelta(seconds=55) < digest["next_attempt_at"] - digest["created_at"] <= timedelta(seconds=60)
    # Each alert keeps its own timers.
    timers = await pool.fetch("SELECT alert_id, kind FROM notification_timers WHERE tenant_id = 't1'")
    assert sorted((r["alert_id"], r["kind"]) for r in timers) == sorted(
        (f"a{n}", kind) for n in range(1, 9) for kind in ("reminder", "escalation"))


async def test_a_batchs_grouped_alerts_are_one_deliveries_grouped_event_per_digest_on_the_topic(pool):
    """#15: not a delivery-changed per grouped row; the event stands for each row's as the log shows it."""
    await make_teams(pool, "t1", "soc")
    for n in range(1, 6):
        assert await record(pool, alert_created("t1", f"a{n}"))
    await pool.execute("DELETE FROM outbox")
    events = [alert_created("t1", f"a{n}") for n in range(6, 10)]
    assert await store.apply_alert_events(pool, events, store.AlertsBatch(3600, 72000, POLICY)) == (4, 0)

    records = await pool.fetch("SELECT key, value FROM outbox WHERE topic = 'deliveries' ORDER BY id")
    published = [json.loads(r["value"]) for r in records]
    assert sorted(e["eventType"] for e in published) == ["deliveries-grouped"] * 2 + ["delivery-changed"] * 2
    opened = {e["delivery"]["channel"]: e["delivery"] for e in published if e["eventType"] == "delivery-changed"}
    assert {(d["kind"], d["subject"]) for d in opened.values()} == {("digest", "digest:a6")}
    grouped = [(DeliveriesGrouped.model_validate(e), bytes(r["key"]).decode())
               for e, r in zip(published, records, strict=True) if e["eventType"] == "deliveries-grouped"]
    assert {g.channel for g, _ in grouped} == set(opened) == {"email:contact", "webhook:soc"}
    for g, key in grouped:
        assert str(g.digest_id) == opened[g.channel]["id"]
        assert [d.alert_id for d in g.deliveries] == ["a6", "a7", "a8", "a9"]
        assert key == f"t1:{g.deliveries[0].id}"
        # Each change it stands for is the one its row would have published.
        rows = {row["delivery_id"]: row for row in await pool.fetch(
            f"SELECT {store.DELIVERY_CHANGE} FROM notification_deliveries WHERE digest_id = $1", g.digest_id)}
        assert [c.delivery for c in g.changes()] == [store.delivery_view(rows[d.id]) for d in g.deliveries]


async def test_a_full_digest_is_due_at_once_and_the_next_alert_opens_another(pool):
    small = StormPolicy(threshold=1, window_seconds=120, digest_wait_seconds=60, digest_max_alerts=2)
    for n in range(1, 7):
        await record(pool, alert_created("t1", f"a{n}"), small)
    digests = await deliveries(pool, "t1", kind="digest")
    assert [(d["subject_id"], [e.alert.id for e in DigestPayload.model_validate_json(d["payload"]).alerts])
            for d in digests] == [("digest:a2", ["a2", "a3"]), ("digest:a4", ["a4", "a5"]), ("digest:a6", ["a6"])]
    now = utcnow()
    assert digests[0]["next_attempt_at"] <= now and digests[1]["next_attempt_at"] <= now
    assert digests[2]["next_attempt_at"] > now + timedelta(seconds=50)


async def test_a_digest_already_taken_by_the_worker_takes_no_more_alerts(pool):
    for n in range(1, 7):
        await record(pool, alert_created("t1", f"a{n}"))
    await pool.execute("UPDATE notification_deliveries SET next_attempt_at = now() WHERE kind = 'digest'")
    claimed_rows = await store.claim_due_deliveries(pool, limit=100, lease_seconds=60)
    [claimed] = [row for row in claimed_rows if row["kind"] == "digest"]
    await record(pool, alert_created("t1", "a7"))
    digests = await deliveries(pool, "t1", kind="digest")
    assert [d["subject_id"] for d in digests] == ["digest:a6", "digest:a7"]
    assert [e.alert.id for e in DigestPayload.model_validate_json(claimed["payload"]).alerts] == ["a6"]


async def test_alerts_outside_the_window_do_not_make_a_storm_and_a_zero_threshold_never_groups(pool):
    for n in range(1, 6):
        await record(pool, alert_created("t1", f"a{n}"))
    await pool.execute("UPDATE notification_deliveries SET created_at = created_at - interval '121 seconds'")
    await record(pool, alert_created("t1", "a6"))
    for n in range(1, 12):
        await record(pool, alert_created("t2", f"b{n}"), StormPolicy(0, 120, 60))
    assert {r["state"] for r in await deliveries(pool, "t1")} == {"pending"}
    assert {(r["kind"], r["state"]) for r in await deliveries(pool, "t2")} == {("alert", "pending")}


# --- a notifier process on the real broker, SMTP server and HTTP receiver ---------------------------------


@pytest.mark.timeout(180)
async def test_twenty_alerts_in_a_minute_give_five_messages_then_one_digest_per_channel(
    tenant_id, start_notifier, publish, notifier_pool, smtp_server, receiver
):
    soc = f"/{tenant_id}/teams-soc"
    await make_teams(notifier_pool, tenant_id, "soc", receiver.url(soc))
    # The digest goes out 10 s after its first alert: time enough for all twenty to arrive.
    start_notifier(STORM_DIGEST_WAIT_SECONDS="10", REMINDER_AFTER_SECONDS="72000")
    await set_contact(publish, notifier_pool, tenant_id, "soc@partner.example")
    events = {f"s{n:02d}": alert_created(tenant_id, f"s{n:02d}") for n in range(1, 21)}
    first, second = list(events.values())[:10], list(events.values())[10:]
    for event in first:
        await publish(Topic.alerts, event)
    await eventually(lambda: applied(notifier_pool, *(e.event_id for e in first)), what="the first ten alerts")
    # (Alerts are keyed by tenant and alert: partitions make the order they are applied in their own.)
    grouped = await deliveries(notifier_pool, tenant_id, channel="email:contact", kind="alert", state="grouped")
    assert len(grouped) == 5
    # One alert of the digest is answered before it goes: the digest leaves it out.
    answered = grouped[0]["subject_id"]
    await publish(Topic.alerts, partner_response(events[answered]))
    for event in second:
        await publish(Topic.alerts, event)
    await eventually(lambda: settled(notifier_pool, tenant_id, *(e.event_id for e in second)), within=60,
                     what="every alert delivered or grouped, and the digests sent")

    mails = smtp_server.mail.for_tenant(tenant_id)
    one_by_one = [m["X-CSP-Alert-Id"] for m in mails if m["X-CSP-Delivery-Kind"] == "alert"]
    [digest] = [m for m in mails if m["X-CSP-Delivery-Kind"] == "digest"]
    assert len(one_by_one) == 5 and len(mails) == 6
    assert digest["To"] == "soc@partner.example" and digest["X-CSP-Alert-Count"] == "14"
    text = digest.get_body(("plain",)).get_content().replace("\r\n", "\n")
    listed = re.findall(r"^   Alert id: (\S+)$", text, re.MULTILINE)
    assert sorted(listed + one_by_one + [answered]) == sorted(events)
    [url] = re.findall(r"^(https?://\S+/v1/actions/bulk/\S+)$", text, re.MULTILINE)
    link = read_bulk_link([DEV_ACTION_LINK_KEY], url.rpartition("/")[2], max_age_seconds=600, now=utcnow())
    assert (link.tenant_id, list(link.alert_ids), link.recipient) == (tenant_id, listed, "soc@partner.example")

    cards = [call.json["attachments"][0]["content"] for call in receiver.calls(soc)]
    assert len(cards) == 6
    assert cards[-1]["body"][0]["text"] == "14 more new security alerts within 2 minutes"

    # Each alert keeps its own row in the log and its own timers (the answered one's cancelled).
    grouped = await deliveries(notifier_pool, tenant_id, kind="alert", state="grouped")
    assert len(grouped) == 30  # 15 alerts, on the e-mail and the Teams channel
    timers = await notifier_pool.fetch("SELECT alert_id, state FROM notification_timers WHERE tenant_id = $1 "
                                       "AND kind = 'reminder'", tenant_id)
    assert {(r["alert_id"], r["state"]) for r in timers} == {
        (alert_id, "cancelled" if alert_id == answered else "scheduled") for alert_id in events}
