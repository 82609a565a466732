"""Translates ``requirement-status`` events into the score: one handler per event type."""

from __future__ import annotations

import logging
from typing import Any

from faststream import Context
from faststream.kafka import KafkaRouter
from faststream.middlewares import AckPolicy

from services.scoring.config import Settings
from services.scoring.keeper import ScoreKeeper
from shared.events import RequirementStatusObserved, Topic
from shared.kafka import PoisonEvent, event_type_is, topic_name

log = logging.getLogger(__name__)


def build_router(settings: Settings) -> KafkaRouter:
    router = KafkaRouter()
    statuses = router.subscriber(
        topic_name(settings, Topic.requirement_status),
        group_id=settings.consumer_group,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        isolation_level="read_committed",
        title="scoring/requirement-status",
        description="Requirement status observations: the newest per tenant and requirement makes the score.",
    )

    @statuses(filter=event_type_is("requirement-status-observed"))
    async def on_requirement_status_observed(
        event: RequirementStatusObserved, keeper: ScoreKeeper = Context("keeper")
    ) -> None:
        applied = await keeper.apply(event)
        if not applied.claimed:
            log.debug("event %s already applied", event.event_id)

    # Registered last, so it only sees records no handler above took. Without it FastStream raises
    # "no suitable handler", the record is never committed and the partition stalls behind it.
    @statuses()
    async def on_other_event_type(body: Any, message=Context("message")) -> None:
        event_type = (message.headers or {}).get("eventType")
        raise PoisonEvent(f"no scoring handler for eventType {event_type!r} on the requirement-status topic")

    return router
