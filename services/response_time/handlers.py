"""Translates ``alerts`` events into response-time state: one handler per event type."""

from __future__ import annotations

import logging

from faststream import Context
from faststream.kafka import KafkaRouter
from faststream.middlewares import AckPolicy

from services.response_time import domain, store
from services.response_time.config import Settings
from shared.events import AlertCreated, AlertUpdated, Topic
from shared.kafka import event_type_is, topic_name

log = logging.getLogger(__name__)


def build_router(settings: Settings) -> KafkaRouter:
    router = KafkaRouter()
    alerts = router.subscriber(
        topic_name(settings, Topic.alerts),
        group_id=settings.consumer_group,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title="response-time/alerts",
        description="Alert events: the clock starts at creation and stops at the first partner response.",
    )

    @alerts(filter=event_type_is("alert-created"))
    async def on_alert_created(event: AlertCreated, pool=Context("pool")) -> None:
        if not await store.apply_alert_created(pool, event, domain.clock_start(event)):
            log.debug("event %s already applied", event.event_id)

    @alerts(filter=event_type_is("alert-updated"))
    async def on_alert_updated(event: AlertUpdated, pool=Context("pool")) -> None:
        if not await store.apply_alert_updated(pool, event):
            log.debug("event %s already applied", event.event_id)

    return router
