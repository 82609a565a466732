"""Translates ``alerts`` events into response-time state, and ``tenant-offboarded`` into the tenant's end.

Records are consumed in batches (up to ``RESPONSE_TIME_BATCH_SIZE``), each batch applied in one
PostgreSQL transaction and its offsets committed after that commit: a process killed mid-batch
leaves nothing of the batch, and the batch is consumed again (the dedupe ledger drops what a
previous commit already applied). That transaction also enqueues, in the outbox, the new state of
each alert it changed (``alert-response-times``); the relay publishes it once committed. A batch
handler, unlike a per-type ``filter``, cannot route by header, so each record is parsed here by its
``eventType`` header into the event type of its own, and a poison record is dead-lettered here, one
record at a time, the way the broker's dead-letter middleware does it for a whole message
(``shared.dead_letters``): the rest of the batch is applied.

``tenants`` is consumed one record at a time, like every other service's topics: a tenant offboarded
loses every row here (``offboarding.py``), and its events are dropped from then on.
"""

from __future__ import annotations

import logging
from typing import Any

from faststream.kafka import KafkaBroker, KafkaRouter
from pydantic import BaseModel

from services.response_time import offboarding, store
from services.response_time.config import Settings
from shared.events import EVENT_TYPE_HEADER, AlertCreated, AlertUpdated, TenantOffboarded, Topic
from shared.kafka import Context, PoisonEvent, batch_events, event_type_is, subscriber_options, topic_name
from shared.metrics import count_duplicates

EVENT_TYPES: dict[str, type[BaseModel]] = {"alert-created": AlertCreated, "alert-updated": AlertUpdated}
# Who refused a poison record, in its dead letter: the service's name, as the middleware names it.
CONSUMER = "response-time"

log = logging.getLogger(__name__)


def build_router(settings: Settings) -> KafkaRouter:
    router = KafkaRouter()
    dead_letter_topic = topic_name(settings, Topic.dead_letter)

    @router.subscriber(
        topic_name(settings, Topic.alerts),
        # (read_committed among them: ingest may publish inside Kafka transactions, never see an aborted one.)
        **subscriber_options(settings, batch_of=settings.response_time_batch_size),
        title="response-time/alerts",
        description="alert-created and alert-updated: the clock starts at creation and stops at the first "
        "partner response.",
    )
    async def on_alert_events(records: list[Any], pool=Context("pool"),
                              broker: KafkaBroker = Context("broker"),
                              status=Context("status", default=None),
                              relay=Context("relay", default=None)) -> None:
        # Other event types of the topic are not this service's business: skipped, not poison.
        events = await batch_events(records, EVENT_TYPES, broker=broker, dead_letter_topic=dead_letter_topic,
                                    consumer=CONSUMER, others_are_poison=False)
        if await store.apply_events(pool, events):
            # The commit enqueued the alerts' new state and marked their tenants: publish both now.
            if relay is not None:
                relay.wake()
            if status is not None:
                status.wake()

    tenants = router.subscriber(
        topic_name(settings, Topic.tenants),
        **subscriber_options(settings, background=True, rare=True),
        title="response-time/tenants",
        description="tenant-offboarded: every alert and figure of the tenant deleted, its keys tombstoned, "
        "its later events dropped.",
    )

    @tenants(filter=event_type_is("tenant-offboarded"))
    async def on_tenant_offboarded(event: TenantOffboarded, pool=Context("pool"),
                                   relay=Context("relay", default=None)) -> None:
        done = await offboarding.offboard(pool, event)
        if done is None:
            count_duplicates()
            log.debug("event %s already applied", event.event_id)
            return
        log.info("tenant %s offboarded: %d alert(s) deleted, %d key(s) tombstoned", event.tenant_id, done.alerts,
                 done.tombstones)
        if relay is not None:
            relay.wake()

    # After the handler, so it only sees records it did not take: one of another event type is poison (a
    # dead letter), a tombstone is skipped (the dead-letter middleware). Without it FastStream raises "no
    # suitable handler" outside any middleware's reach: never committed, the partition stalls behind it.
    @tenants()
    async def on_other_event_type(body: Any, message=Context("message")) -> None:
        event_type = (message.headers or {}).get(EVENT_TYPE_HEADER)
        raise PoisonEvent(f"no response-time handler for eventType {event_type!r} on the tenants topic")

    return router

