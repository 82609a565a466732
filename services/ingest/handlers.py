"""Translates the events the write API consumes: the notifier's ``delivery-changed`` (its deliveries,
known so a redelivery request is answered 404 / 409 / 202 without the notifier's tables). An event of
a tenant offboarded (#18) is dropped: one in flight, or one a rebuild of the view reads again."""

from __future__ import annotations

import logging
from typing import Any

from faststream.kafka import KafkaBroker, KafkaRouter

from services.ingest import deliveries_store
from services.ingest.config import Settings
from shared.events import DeliveriesGrouped, DeliveryChanged, Topic
from shared.kafka import Context, batch_events, subscriber_options, topic_name

log = logging.getLogger(__name__)

EVENT_TYPES = {"delivery-changed": DeliveryChanged, "deliveries-grouped": DeliveriesGrouped}
# Who refused a poison record, in its dead letter: the service, as the dead-letter middleware names it.
DEAD_LETTER_CONSUMER = "ingest"


def build_router(settings: Settings) -> KafkaRouter:
    router = KafkaRouter()
    dead_letter_topic = topic_name(settings, Topic.dead_letter)

    # In batches (#15): one transaction per batch, its offsets committed after it commits; each record
    # parsed alone, a poison one (an event type nobody here handles, a malformed event) dead-lettered alone.
    @router.subscriber(
        topic_name(settings, Topic.deliveries),
        # Not in the background: a delivery the read API shows dead must be dead here too when someone asks to
        # redeliver it (the read API's copy waits longer, shared.kafka.subscriber_options).
        **subscriber_options(settings, batch_of=settings.deliveries_batch_size),
        title="ingest/deliveries",
        description="The notifier's deliveries as they change: the latest state of each (a dead one's view), "
        "for redelivery requests.",
    )
    async def on_deliveries_changed(records: list[Any], pool=Context("pool"),
                                    broker: KafkaBroker = Context("broker")) -> None:
        events = await batch_events(records, EVENT_TYPES, broker=broker, dead_letter_topic=dead_letter_topic,
                                    consumer=DEAD_LETTER_CONSUMER)
        applied = await deliveries_store.apply_deliveries_changed(pool, events)
        if applied < len(events):
            log.debug("%d of %d delivery changes applied before or of offboarded tenants", len(events) - applied,
                      len(events))

    return router
