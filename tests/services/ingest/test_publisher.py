"""The event publisher on the real broker: a list is visible whole or not at all, across topics too."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer

from services.ingest.config import Settings
from services.ingest.publisher import EventPublisher, EventTooLarge, PublishFailed
from shared.alerts import Alert
from shared.events import Actor, ActorType, AlertCreated, SecurityContact, SecurityContactChanged, Topic
from tests.services.ingest.support import alert_records
from tests.support.kafka import read_topic


def created(tenant_id: str, alert_id: str, **fields) -> AlertCreated:
    return AlertCreated(tenant_id=tenant_id, alert=Alert(id=alert_id, **fields))


@pytest.fixture
async def publisher(test_env, tenant_id):
    publisher = EventPublisher(Settings(ingest_instance_id=f"test-{tenant_id}", alert_producers=1))
    await publisher.start()
    yield publisher
    await publisher.close()


async def test_a_list_whose_commit_fails_is_never_visible(
    publisher, tenant_id, kafka_bootstrap, topic_prefix, monkeypatch
):
    async def commit_fails(self):
        raise ConnectionError("injected: the commit did not reach the broker")

    monkeypatch.setattr(AIOKafkaProducer, "commit_transaction", commit_fails)
    with pytest.raises(PublishFailed):
        await publisher.publish([created(tenant_id, f"lost-{i}") for i in range(3)])
    monkeypatch.undo()
    await publisher.publish([created(tenant_id, "kept-1"), created(tenant_id, "kept-2")])

    committed = await alert_records(kafka_bootstrap, topic_prefix, tenant_id, at_least=2)
    assert sorted(r["key"] for r in committed) == [f"{tenant_id}:kept-1", f"{tenant_id}:kept-2"]
    # The failed list's records did reach the log (acknowledged), and were aborted there.
    written = await read_topic(
        kafka_bootstrap,
        f"{topic_prefix}alerts",
        timeout=20,
        predicate=lambda r: (r["key"] or "").startswith(f"{tenant_id}:lost-"),
        isolation_level="read_uncommitted",
    )
    assert sorted(r["key"] for r in written) == [f"{tenant_id}:lost-{i}" for i in range(3)]


async def test_an_event_too_large_for_a_record_publishes_nothing(
    publisher, tenant_id, kafka_bootstrap, topic_prefix
):
    events = [created(tenant_id, "small"), created(tenant_id, "huge", description="x" * 1_100_000)]
    with pytest.raises(EventTooLarge) as caught:
        await publisher.publish(events)
    assert caught.value.index == 1
    await publisher.publish([created(tenant_id, "after")])
    records = await alert_records(kafka_bootstrap, topic_prefix, tenant_id, at_least=1)
    assert [r["key"] for r in records] == [f"{tenant_id}:after"]


async def test_concurrent_requests_share_transactions_and_all_arrive(
    publisher, tenant_id, kafka_bootstrap, topic_prefix
):
    requests = [[created(tenant_id, f"r{r}-e{e}") for e in range(r % 3 + 1)] for r in range(30)]
    await asyncio.gather(*(publisher.publish(events) for events in requests))
    records = await alert_records(kafka_bootstrap, topic_prefix, tenant_id, at_least=60)
    assert sorted(r["key"] for r in records) == sorted(
        f"{tenant_id}:{event.alert.id}" for events in requests for event in events
    )


async def test_requests_past_their_deadline_fail_and_stay_invisible(
    test_env, tenant_id, kafka_bootstrap, topic_prefix, monkeypatch
):
    publisher = EventPublisher(
        Settings(ingest_instance_id=f"test-{tenant_id}", alert_producers=1, publish_timeout_seconds=1)
    )
    await publisher.start()
    original_commit = AIOKafkaProducer.commit_transaction

    async def slow_commit(self):
        await asyncio.sleep(3)  # longer than any request may wait
        await original_commit(self)

    try:
        monkeypatch.setattr(AIOKafkaProducer, "commit_transaction", slow_commit)
        outcomes = await asyncio.gather(
            *(publisher.publish([created(tenant_id, f"late-{i}")]) for i in range(5)), return_exceptions=True
        )
        assert all(isinstance(outcome, PublishFailed) for outcome in outcomes), outcomes
        monkeypatch.undo()
        await publisher.publish([created(tenant_id, "on-time")])
    finally:
        await publisher.close()
    records = await alert_records(kafka_bootstrap, topic_prefix, tenant_id, at_least=1)
    assert [r["key"] for r in records] == [f"{tenant_id}:on-time"]


async def test_events_for_two_topics_are_visible_together_or_not_at_all(
    publisher, tenant_id, kafka_bootstrap, topic_prefix, monkeypatch
):
    def change(name: str) -> list[tuple[Topic, AlertCreated | SecurityContactChanged]]:
        contact = SecurityContact(name=name, email=f"{name}@example.com")
        return [(Topic.alerts, created(tenant_id, name)),
                (Topic.security_contacts, SecurityContactChanged(tenant_id=tenant_id, contact=contact,
                                                          actor=Actor(type=ActorType.system)))]

    async def commit_fails(self):
        raise ConnectionError("injected: the commit did not reach the broker")

    monkeypatch.setattr(AIOKafkaProducer, "commit_transaction", commit_fails)
    with pytest.raises(PublishFailed):
        await publisher.publish_together(change("lost"))
    monkeypatch.undo()
    await publisher.publish_together(change("kept"))

    alerts = await alert_records(kafka_bootstrap, topic_prefix, tenant_id, at_least=1)
    contacts = await read_topic(kafka_bootstrap, f"{topic_prefix}security-contacts", count=1, timeout=20,
                                predicate=lambda r: r["key"] == tenant_id)
    assert [r["key"] for r in alerts] == [f"{tenant_id}:kept"]
    assert [r["value"]["contact"]["name"] for r in contacts] == ["kept"]
    # Nothing of the failed one was visible: the next committed records follow the aborted ones.
    aborted = await read_topic(kafka_bootstrap, f"{topic_prefix}security-contacts", timeout=10,
                               predicate=lambda r: r["key"] == tenant_id, isolation_level="read_uncommitted")
    assert [r["value"]["contact"]["name"] for r in aborted] == ["lost", "kept"]
