"""The notifier and the state that crosses services as events (#11): channels arrive on the
notification-channels topic (secrets sealed), every change of a delivery leaves on the deliveries
topic (a death's dead letter on the dead-letter topic besides), redeliveries come as commands, and a
notifier on an empty schema rebuilds its channels, contacts and escalation chains from the topics."""

from __future__ import annotations

import uuid
from datetime import timedelta

import asyncpg
import pytest
from cryptography.fernet import Fernet

from services.notifier import store
from shared.db import create_pool
from shared.events import (
    Actor,
    ActorType,
    DeliveryChanged,
    EscalationChainChanged,
    EscalationStep,
    RedeliveryRequested,
    Topic,
)
from shared.kafka import ensure_topics
from shared.webhooks import WebhookSignatureError, verify
from shared.wire import utcnow
from tests.services.notifier.conftest import publish_event
from tests.services.notifier.helpers import (
    OTHER_SECRET,
    SECRET,
    alert_created,
    applied,
    channel_changed,
    contact_changed,
    deliveries,
    set_channel,
    settled,
)
from tests.support.kafka import produce, read_topic
from tests.support.polling import eventually


async def live_channel(pool: asyncpg.Pool, tenant_id: str, name: str) -> asyncpg.Record | None:
    return await pool.fetchrow(
        "SELECT * FROM notification_channels WHERE tenant_id = $1 AND name = $2 AND NOT deleted", tenant_id, name
    )


# --- channels from the topic ------------------------------------------------------------------------------


async def test_a_channel_from_the_topic_gets_alerts_signed_with_its_opened_secrets_until_it_is_deleted(
    tenant_id, start_notifier, publish, notifier_pool, receiver
):
    path = f"/{tenant_id}/jira"
    start_notifier()
    created = channel_changed(tenant_id, "jira", receiver.url(path))
    # The write API rotated the secret: the event carries both, sealed, and the end of the overlap.
    rotated = channel_changed(tenant_id, "jira", receiver.url(path), secret=OTHER_SECRET, previous_secret=SECRET,
                              previous_secret_until=utcnow() + timedelta(hours=1))
    for event in (created, rotated):
        await publish(Topic.notification_channels, event)
    await eventually(lambda: applied(notifier_pool, created.event_id, rotated.event_id), what="the channel")

    during = alert_created(tenant_id, "during-overlap")
    await publish(Topic.alerts, during)
    await eventually(lambda: settled(notifier_pool, tenant_id, during.event_id), what="the delivery")
    [call] = receiver.calls(path)
    assert len(call.headers["webhook-signature"].split(" ")) == 2
    verify([SECRET], call.headers, call.body)  # a receiver still on the old secret accepts it
    verify([OTHER_SECRET], call.headers, call.body)  # and one already switched

    # The overlap over (the write API says so), only the new secret signs.
    over = channel_changed(tenant_id, "jira", receiver.url(path), secret=OTHER_SECRET, previous_secret=SECRET,
                           previous_secret_until=utcnow())
    await publish(Topic.notification_channels, over)
    await eventually(lambda: applied(notifier_pool, over.event_id), what="the end of the overlap")
    after = alert_created(tenant_id, "after-overlap")
    await publish(Topic.alerts, after)
    await eventually(lambda: settled(notifier_pool, tenant_id, after.event_id), what="the delivery")
    call = receiver.calls(path)[-1]
    verify([OTHER_SECRET], call.headers, call.body)
    with pytest.raises(WebhookSignatureError):
        verify([SECRET], call.headers, call.body)

    # Deleted: the next alert goes to no channel.
    deleted = channel_changed(tenant_id, "jira", None)
    await publish(Topic.notification_channels, deleted)
    await eventually(lambda: applied(notifier_pool, deleted.event_id), what="the deletion")
    assert await live_channel(notifier_pool, tenant_id, "jira") is None
    later = alert_created(tenant_id, "after-deletion")
    await publish(Topic.alerts, later)
    await eventually(lambda: settled(notifier_pool, tenant_id, later.event_id), what="the alert")
    assert [c.json["alert"]["id"] for c in receiver.calls(path)] == ["during-overlap", "after-overlap"]
    assert await deliveries(notifier_pool, tenant_id, subject_id="after-deletion", channel="webhook:jira") == []


async def test_an_older_channel_event_never_overrides_a_newer_one(tenant_id, start_notifier, publish, notifier_pool):
    now = utcnow()
    newer = channel_changed(tenant_id, "jira", "https://tickets.example/new", occurred=now)
    older = channel_changed(tenant_id, "jira", "https://tickets.example/old", occurred=now - timedelta(hours=1))
    deleted = channel_changed(tenant_id, "gone", None, occurred=now)
    before_deletion = channel_changed(tenant_id, "gone", "https://tickets.example/back",
                                      occurred=now - timedelta(minutes=1))
    start_notifier()
    for event in (newer, older, deleted, before_deletion):
        await publish(Topic.notification_channels, event)
    await eventually(lambda: applied(notifier_pool, newer.event_id, older.event_id, deleted.event_id,
                                     before_deletion.event_id), what="the channel events")

    jira = await live_channel(notifier_pool, tenant_id, "jira")
    assert (jira["url"], jira["occurred_at"]) == ("https://tickets.example/new", now)
    assert await live_channel(notifier_pool, tenant_id, "gone") is None  # not brought back


async def test_a_channel_whose_secret_no_key_opens_is_dead_lettered_and_the_consumer_moves_on(
    tenant_id, start_notifier, publish, notifier_pool, kafka_bootstrap, topic_prefix
):
    # Sealed under a key this deployment does not have; then a good event of the same channel (one
    # key, one partition: the consumer must get past the first to apply the second).
    foreign = channel_changed(tenant_id, "jira", "https://tickets.example/foreign",
                              sealing_keys=[Fernet.generate_key().decode()])
    good = channel_changed(tenant_id, "jira", "https://tickets.example/good")
    start_notifier()
    for event in (foreign, good):
        await publish(Topic.notification_channels, event)
    await eventually(lambda: applied(notifier_pool, good.event_id), what="the good event")

    [letter] = await read_topic(
        kafka_bootstrap, f"{topic_prefix}dead-letter", count=1, timeout=30,
        predicate=lambda r: r["headers"].get("eventId") == str(foreign.event_id),
    )
    assert letter["headers"]["eventType"] == "poison-record"
    assert "SEALING_KEYS" in letter["value"]["reason"] and letter["value"]["consumer"] == "notifier"
    assert letter["value"]["record"]["topic"] == f"{topic_prefix}notification-channels"
    assert not await applied(notifier_pool, foreign.event_id)
    assert (await live_channel(notifier_pool, tenant_id, "jira"))["url"] == "https://tickets.example/good"


async def test_poison_records_on_the_alerts_topic_are_dead_lettered_one_by_one_and_the_rest_applied(
    tenant_id, start_notifier, notifier_pool, kafka_bootstrap, topic_prefix
):
    # The alerts topic is consumed in batches: a record of an unknown event type and a malformed
    # alert-created are dead letters of their own, a tombstone is skipped, and the good event after
    # them on the same partition (one key) is applied.
    good = alert_created(tenant_id, "a1")
    key, topic = good.kafka_key(), f"{topic_prefix}alerts"
    await produce(kafka_bootstrap, topic, b"{}", key=key, headers={"eventType": "mystery", "tenantId": tenant_id})
    await produce(kafka_bootstrap, topic, b'{"alert": 1}', key=key,
                  headers={"eventType": "alert-created", "tenantId": tenant_id})
    await produce(kafka_bootstrap, topic, None, key=key, headers={"eventType": "tombstone"})
    await publish_event(kafka_bootstrap, topic_prefix, Topic.alerts, good)
    start_notifier()
    await eventually(lambda: applied(notifier_pool, good.event_id), what="the good event after the poison")

    dead = await read_topic(kafka_bootstrap, f"{topic_prefix}dead-letter", count=2, timeout=30,
                            predicate=lambda r: r["key"] == key.decode())
    assert sorted(d["value"]["record"]["headers"]["eventType"] for d in dead) == ["alert-created", "mystery"]
    assert {d["value"]["consumer"] for d in dead} == {"notifier"}
    assert [r["subject_id"] for r in await deliveries(notifier_pool, tenant_id)] == ["a1"]


# --- delivery outcomes as events ----------------------------------------------------------------------------


async def delivery_events(
    kafka_bootstrap: str, topic_prefix: str, delivery_id, count: int, timeout: float = 30
) -> list[DeliveryChanged]:
    records = await read_topic(
        kafka_bootstrap, f"{topic_prefix}deliveries", count=count, timeout=timeout,
        # (A deliveries-grouped record of another test's storm names no one delivery.)
        predicate=lambda r: r["value"].get("delivery", {}).get("id") == str(delivery_id),
    )
    assert all(r["headers"]["eventType"] == "delivery-changed" for r in records)
    assert all(r["key"] == f"{r['value']['tenantId']}:{delivery_id}" for r in records)
    return [DeliveryChanged.model_validate(r["value"]) for r in records]


async def test_each_change_of_a_delivery_is_published_and_a_death_with_its_dead_letter(
    tenant_id, start_notifier, publish, notifier_pool, receiver, kafka_bootstrap, topic_prefix
):
    ok, broken = f"/{tenant_id}/ok", f"/{tenant_id}/broken"
    receiver.script(broken, (400, {}))
    await set_channel(notifier_pool, tenant_id, "ok", receiver.url(ok))
    await set_channel(notifier_pool, tenant_id, "broken", receiver.url(broken))
    start_notifier()
    created = alert_created(tenant_id, "a1")
    await publish(Topic.alerts, created)
    await eventually(lambda: settled(notifier_pool, tenant_id, created.event_id), what="the deliveries")
    [delivered] = await deliveries(notifier_pool, tenant_id, channel="webhook:ok")
    [dead] = await deliveries(notifier_pool, tenant_id, channel="webhook:broken")

    life = await delivery_events(kafka_bootstrap, topic_prefix, delivered["delivery_id"], count=2)
    assert [(e.delivery.state, e.delivery.attempts) for e in life] == [("pending", 0), ("delivered", 1)]
    assert life[-1].delivery == store.delivery_view(delivered)  # the row as it is now
    assert life[-1].tenant_id == tenant_id and life[-1].delivery.last_status_code == 200

    death = await delivery_events(kafka_bootstrap, topic_prefix, dead["delivery_id"], count=2)
    assert [(e.delivery.state, e.delivery.attempts) for e in death] == [("pending", 0), ("dead", 1)]
    assert death[-1].delivery == store.delivery_view(dead)
    [letter] = await read_topic(
        kafka_bootstrap, f"{topic_prefix}dead-letter", count=1, timeout=30,
        predicate=lambda r: r["headers"].get("dlq.source") == f"delivery {dead['delivery_id']} to webhook:broken",
    )
    assert letter["key"] == tenant_id
    assert (letter["headers"]["eventType"], letter["headers"]["tenantId"]) == ("dead-delivery", tenant_id)
    assert letter["value"]["delivery"]["lastError"].startswith("HTTP 400")
    assert letter["headers"]["eventId"] == letter["value"]["eventId"]


# --- redelivery as a command ---------------------------------------------------------------------------------


def redelivery(tenant_id: str, delivery_id) -> RedeliveryRequested:
    return RedeliveryRequested(tenant_id=tenant_id, delivery_id=delivery_id,
                               actor=Actor(type=ActorType.user, id="admin@partner.example"))


@pytest.mark.timeout(180)
async def test_a_redelivery_command_requeues_a_dead_delivery_and_is_ignored_for_one_not_dead(
    tenant_id, start_notifier, publish, notifier_pool, receiver, kafka_bootstrap, topic_prefix
):
    path = f"/{tenant_id}/jira"
    receiver.script(path, (400, {}))
    await set_channel(notifier_pool, tenant_id, "jira", receiver.url(path))
    start_notifier()
    created = alert_created(tenant_id, "a1")
    await publish(Topic.alerts, created)
    await eventually(lambda: settled(notifier_pool, tenant_id, created.event_id), what="the dead delivery")
    [dead] = await deliveries(notifier_pool, tenant_id, channel="webhook:jira", state="dead")

    again = redelivery(tenant_id, dead["delivery_id"])
    await publish(Topic.delivery_commands, again)
    await eventually(lambda: settled(notifier_pool, tenant_id, again.event_id), what="the redelivery")
    [row] = await deliveries(notifier_pool, tenant_id, channel="webhook:jira")
    assert (row["state"], row["attempts"], row["redeliveries"]) == ("delivered", 1, 1)
    assert [c.status for c in receiver.calls(path)] == [400, 200]
    life = await delivery_events(kafka_bootstrap, topic_prefix, dead["delivery_id"], count=4)
    assert [(e.delivery.state, e.delivery.attempts, e.delivery.redeliveries) for e in life] == [
        ("pending", 0, 0), ("dead", 1, 0), ("pending", 0, 1), ("delivered", 1, 1)]

    # Delivered now: a second command (another click) changes nothing, sends nothing, tells nothing.
    ignored = redelivery(tenant_id, dead["delivery_id"])
    unknown = redelivery(tenant_id, uuid.uuid4())
    for command in (ignored, unknown):
        await publish(Topic.delivery_commands, command)
    await eventually(lambda: settled(notifier_pool, tenant_id, ignored.event_id, unknown.event_id),
                     what="the commands")
    [row] = await deliveries(notifier_pool, tenant_id, channel="webhook:jira")
    assert (row["state"], row["attempts"], row["redeliveries"]) == ("delivered", 1, 1)
    assert [c.status for c in receiver.calls(path)] == [400, 200]
    # (Each change is enqueued in the transaction that applies its command: applied, it is out within ms.)
    assert len(await delivery_events(kafka_bootstrap, topic_prefix, dead["delivery_id"], count=5, timeout=5)) == 4


# --- rebuilding from the topics --------------------------------------------------------------------------------


async def copied_state(pool: asyncpg.Pool, tenant_id: str) -> tuple[list[dict], dict, dict]:
    """The tenant's channels (tombstones included), contact and escalation chain, without the
    bookkeeping times of the rows."""
    channels = await pool.fetch("SELECT * FROM notification_channels WHERE tenant_id = $1 ORDER BY name", tenant_id)
    contact = await pool.fetchrow("SELECT * FROM notifier_contacts WHERE tenant_id = $1", tenant_id)
    chain = await pool.fetchrow("SELECT * FROM escalation_chains WHERE tenant_id = $1", tenant_id)
    bookkeeping = {"created_at", "updated_at"}
    return ([{k: v for k, v in dict(c).items() if k not in bookkeeping} for c in channels],
            {k: v for k, v in dict(contact).items() if k not in bookkeeping},
            {k: v for k, v in dict(chain).items() if k not in bookkeeping})


@pytest.mark.timeout(180)
async def test_a_notifier_on_an_empty_schema_rebuilds_its_channels_contacts_and_escalation_chains_from_the_topics(
    tenant_id, start_notifier, notifier_pool, own_database, kafka_bootstrap, topic_prefix
):
    # Topics of this test alone: the rebuilding notifier reads them from the beginning, and must not
    # send again what the run's other tests published.
    prefix = f"{topic_prefix}rebuild-{uuid.uuid4().hex[:6]}-"
    await ensure_topics(kafka_bootstrap, prefix)
    now = utcnow()
    events = [
        (Topic.notification_channels, channel_changed(tenant_id, "jira", "https://tickets.example/a",
                                                      routes=[{"severities": ["high"]}], occurred=now)),
        (Topic.notification_channels, channel_changed(
            tenant_id, "jira", "https://tickets.example/b", secret=OTHER_SECRET, previous_secret=SECRET,
            previous_secret_until=now + timedelta(hours=24), routes=[{"severities": ["high"]}], occurred=now)),
        (Topic.notification_channels, channel_changed(tenant_id, "pager", "https://pager.example/hook",
                                                      escalation=True, occurred=now)),
        (Topic.notification_channels, channel_changed(tenant_id, "old", "https://tickets.example/old",
                                                      occurred=now - timedelta(hours=2))),
        (Topic.notification_channels, channel_changed(tenant_id, "old", None, occurred=now - timedelta(hours=1))),
        (Topic.security_contacts, contact_changed(tenant_id, "first@partner.example")),
        (Topic.security_contacts, contact_changed(tenant_id, "soc@partner.example")),
        (Topic.escalation_chains, EscalationChainChanged(
            tenant_id=tenant_id, occurred_date_time=now - timedelta(minutes=1),
            steps=[EscalationStep(after_minutes=0, channel="pager")])),
        (Topic.escalation_chains, EscalationChainChanged(
            tenant_id=tenant_id, occurred_date_time=now, steps=[
                EscalationStep(after_minutes=60, email="lead@partner.example"),
                EscalationStep(after_minutes=240, channel="pager")])),
    ]
    for topic, event in events:
        await publish_event(kafka_bootstrap, prefix, topic, event)
    ids = [event.event_id for _, event in events]

    start_notifier(KAFKA_TOPIC_PREFIX=prefix)
    await eventually(lambda: applied(notifier_pool, *ids), what="the events applied as they came")
    before = await copied_state(notifier_pool, tenant_id)
    assert [c["name"] for c in before[0] if not c["deleted"]] == ["jira", "pager"]
    assert before[1]["email"] == "soc@partner.example"
    assert [step.email or step.channel for step in await store.escalation_chain(notifier_pool, tenant_id)] == [
        "lead@partner.example", "pager"]

    empty = await create_pool(own_database, schema="notifier")
    try:
        assert await empty.fetchval("SELECT count(*) FROM notification_channels") == 0
        start_notifier(DATABASE_URL=own_database, KAFKA_TOPIC_PREFIX=prefix,
                       CONSUMER_GROUP=f"notifier-rebuild-{uuid.uuid4().hex[:8]}")
        await eventually(lambda: applied(empty, *ids), what="the events applied again from the beginning")
        assert await copied_state(empty, tenant_id) == before
    finally:
        await empty.close()
