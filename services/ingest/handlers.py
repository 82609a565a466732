"""Translates the events the write API consumes: the notifier's ``delivery-changed`` (its deliveries,
known so a redelivery request is answered 404 / 409 / 202 without the notifier's tables). An event of
a tenant offboarded (#18) is dropped: one in flight, or one a rebuild of the view reads again."""

from __future__ import annotations

import logging
from typing import Any

from faststream import Context
from faststream.kafka import KafkaRouter

from services.ingest import deliveries_store
from services.ingest.config import Settings
from shared.events import DeliveryChanged, Topic
from shared.kafka import PoisonEvent, event_type_is, subscriber_options, topic_name

log = logging.getLogger(__name__)


def build_router(settings: Settings) -> KafkaRouter:
    router = KafkaRouter()
    deliveries = router.subscriber(
        topic_name(settings, Topic.deliveries),
        **subscriber_options(settings),
        title="ingest/deliveries",
        description="The notifier's deliveries as they change: the latest view of each, for redelivery requests.",
    )

    @deliveries(filter=event_type_is("delivery-changed"))
    async def on_delivery_changed(event: DeliveryChanged, pool=Context("pool")) -> None:
        # (An event of an offboarded tenant is dropped in the apply's transaction: deliveries_store.)
        if not await deliveries_store.apply_delivery_changed(pool, event):
            log.debug("event %s already applied", event.event_id)

    # Registered last, so it only sees records no handler above took. Without it FastStream raises
    # "no suitable handler", the record is never committed and the partition stalls behind it.
    @deliveries()
    async def on_other_event_type(body: Any, message=Context("message")) -> None:
        event_type = (message.headers or {}).get("eventType")
        raise PoisonEvent(f"no ingest handler for eventType {event_type!r} on the deliveries topic")

    return router
