"""Translates the scoring service's topics into the score and the read model: one handler per event type,
but ``requirement-status``, ``alert-response-times``, ``deliveries`` and ``alerts``, consumed in batches.

``requirement-status`` makes the score (``keeper.py``); ``alert-response-times``, ``deliveries``,
``customer-mfa``, ``alert-sync`` and ``alert-triage`` feed the read API's read model (``read_model.py``), and
``alerts`` with them each alert's timeline (``timeline.py``). ``tenants`` ends a tenant: everything of it
deleted, its later events dropped (``offboarding.py``). On each topic a record of an event type no
handler takes is poison: it goes to the dead-letter topic and the consumer moves on (in a batch, that
record alone, the rest of the batch applied); a tombstone (a key another service deleted, #18) is
skipped (``shared.kafka.DeadLetterMiddleware``, or the batch's parse).

Those four (#15: the bulk of the events, a few per alert) come in batches of up to
``READ_MODEL_BATCH_SIZE``: one transaction per batch (``keeper.apply_batch``, ``read_model.apply_deliveries``,
``apply_alert_events``...), its offsets committed after that commit, so a process killed mid-batch leaves
nothing of it and the batch comes again (the dedupe ledger drops what a previous commit applied).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from faststream.kafka import KafkaBroker, KafkaRouter

from services.scoring import offboarding, read_model
from services.scoring.changes import ChangeKind, Changes
from services.scoring.config import Settings
from services.scoring.keeper import ScoreKeeper
from shared.events import (
    AlertAssigned,
    AlertCreated,
    AlertNoteAdded,
    AlertResponseTimeChanged,
    AlertSyncChanged,
    AlertUpdated,
    CustomerMfaObserved,
    CustomerMfaRemoved,
    DeliveriesGrouped,
    DeliveryChanged,
    RequirementStatusObserved,
    TenantOffboarded,
    Topic,
)
from shared.kafka import (
    Context,
    PoisonEvent,
    batch_events,
    event_type_is,
    subscriber_options,
    topic_name,
)
from shared.metrics import count_duplicates

log = logging.getLogger(__name__)

# Who refused a poison record, in its dead letter: the service, as the dead-letter middleware names it.
DEAD_LETTER_CONSUMER = "scoring"

DELIVERY_EVENT_TYPES = {"delivery-changed": DeliveryChanged, "deliveries-grouped": DeliveriesGrouped}
STATUS_EVENT_TYPES = {"requirement-status-observed": RequirementStatusObserved}
ALERT_EVENT_TYPES = {"alert-created": AlertCreated, "alert-updated": AlertUpdated}
RESPONSE_TIME_EVENT_TYPES = {"alert-response-time-changed": AlertResponseTimeChanged}


def refuse_a_response_without_latency(event: AlertResponseTimeChanged) -> None:
    """A response time's contract: a response and its latency come together (a poison event otherwise)."""
    if (event.responded_date_time is None) != (event.latency_us is None):
        raise PoisonEvent("respondedDateTime and latencyUs must both be set or both be null")


async def told(applied: bool, event: Any, changes: Changes, kind: ChangeKind, alert_id: str | None = None) -> None:
    """After an event's change is committed, tell the tenant's open streams (``changes.py``); an event
    applied before (or dropped: an offboarded tenant's) changed nothing and tells nothing."""
    if applied:
        await changes.publish(event.tenant_id, kind, alert_id)
    else:
        count_duplicates()
        log.debug("event %s already applied", event.event_id)


async def told_batch(changes: Changes, hints: Iterable[tuple[str, ChangeKind, str | None]]) -> None:
    """After a batch is committed, tell each of its changes (tenant, kind, alert) once."""
    for tenant_id, kind, alert_id in dict.fromkeys(hints):
        await changes.publish(tenant_id, kind, alert_id)


def build_router(settings: Settings) -> KafkaRouter:
    router = KafkaRouter()

    # Someone waits for these (a new alert and its response time on GET /alerts, the score, an assignment
    # just made); the others are logs and timelines, read later (shared.kafka.subscriber_options).
    waited_for = {Topic.alerts, Topic.alert_response_times, Topic.requirement_status, Topic.alert_triage}
    # A few records a day (shared.kafka.subscriber_options): each fetched the moment it comes.
    rare = {Topic.requirement_status, Topic.alert_triage, Topic.tenants}

    def subscriber(topic: Topic, description: str, *, in_batches: bool = False) -> Any:
        # In batches: one transaction per batch, its offsets committed after it commits; each record parsed
        # alone by its eventType (shared.kafka.batch_events), a poison one dead-lettered alone.
        return router.subscriber(
            topic_name(settings, topic),
            **subscriber_options(settings, background=topic not in waited_for, rare=topic in rare,
                                 batch_of=settings.read_model_batch_size if in_batches else None),
            title=f"scoring/{topic.value}",
            description=description,
        )

    dead_letter_topic = topic_name(settings, Topic.dead_letter)

    def refuse_other_event_types(topic: Topic, records: Any) -> None:
        # Registered after the topic's handlers, so it only sees records none of them took. Without
        # it FastStream raises "no suitable handler", the record is never committed and the
        # partition stalls behind it.
        @records()
        async def on_other_event_type(body: Any, message=Context("message")) -> None:
            event_type = (message.headers or {}).get("eventType")
            raise PoisonEvent(f"no scoring handler for eventType {event_type!r} on the {topic.value} topic")

    statuses = subscriber(
        Topic.requirement_status,
        "Requirement status observations: the newest per tenant and requirement makes the score.",
        in_batches=True,
    )
    response_times = subscriber(
        Topic.alert_response_times, "Each alert's clock and first response: GET /alerts and /response-time.",
        in_batches=True)
    deliveries = subscriber(Topic.deliveries, "Each notification's state: GET /deliveries.", in_batches=True)
    customers = subscriber(Topic.customer_mfa, "Each customer's MFA figures: GET /customers/mfa.")
    syncs = subscriber(
        Topic.alert_sync, "Each alert's sync state with Partner Center: partnerCenterSync on GET /alerts."
    )
    alerts = subscriber(Topic.alerts, "Each alert received and each change of it: its timeline, and a new alert on "
                        "GET /alerts before its response time's event comes.", in_batches=True)
    triage = subscriber(
        Topic.alert_triage, "Each alert's assignee and notes: assignedTo and notesCount on GET /alerts, its timeline."
    )
    tenants = subscriber(
        Topic.tenants, "Tenants offboarded: every row and the Redis hash of the tenant deleted, its later events "
        "dropped."
    )

    @statuses
    async def on_requirement_statuses(records: list[Any], keeper: ScoreKeeper = Context("keeper"),
                                      broker: KafkaBroker = Context("broker")) -> None:
        events = await batch_events(records, STATUS_EVENT_TYPES, broker=broker, dead_letter_topic=dead_letter_topic,
                                    consumer=DEAD_LETTER_CONSUMER, others_are_poison=True)
        outcomes = await keeper.apply_batch(events)
        count_duplicates(sum(1 for applied in outcomes if not applied.claimed))

    @response_times
    async def on_alert_response_times_changed(records: list[Any], pool=Context("pool"),
                                              broker: KafkaBroker = Context("broker"),
                                              changes: Changes = Context("changes")) -> None:
        events = await batch_events(records, RESPONSE_TIME_EVENT_TYPES, broker=broker,
                                    dead_letter_topic=dead_letter_topic, consumer=DEAD_LETTER_CONSUMER,
                                    others_are_poison=True, check=refuse_a_response_without_latency)
        applied = await read_model.apply_alert_response_times(pool, events)
        count_duplicates(len(events) - len(applied))
        await told_batch(changes, ((e.tenant_id, ChangeKind.alert, e.alert_id) for e in applied))

    @deliveries
    async def on_deliveries_changed(records: list[Any], pool=Context("pool"), broker: KafkaBroker = Context("broker"),
                                    changes: Changes = Context("changes")) -> None:
        events = await batch_events(records, DELIVERY_EVENT_TYPES, broker=broker,
                                    dead_letter_topic=dead_letter_topic, consumer=DEAD_LETTER_CONSUMER,
                                    others_are_poison=True)
        applied = await read_model.apply_deliveries(pool, events)
        count_duplicates(len(events) - len(applied))
        # The alerts told of, read off the events: a grouped one's changes are not built again for it.
        await told_batch(changes, ((e.tenant_id, ChangeKind.delivery, alert_id) for e in applied
                                   for alert_id in (e.alert_ids() if isinstance(e, DeliveriesGrouped)
                                                    else (e.delivery.alert_id,))))

    @customers(filter=event_type_is("customer-mfa-observed"))
    async def on_customer_mfa_observed(event: CustomerMfaObserved, pool=Context("pool"),
                                       changes: Changes = Context("changes")) -> None:
        await told(await read_model.apply_customer_mfa(pool, event), event, changes, ChangeKind.customer_mfa)

    @customers(filter=event_type_is("customer-mfa-removed"))
    async def on_customer_mfa_removed(event: CustomerMfaRemoved, pool=Context("pool"),
                                      changes: Changes = Context("changes")) -> None:
        await told(await read_model.apply_customer_mfa_removed(pool, event), event, changes,
                   ChangeKind.customer_mfa)

    @syncs(filter=event_type_is("alert-sync-changed"))
    async def on_alert_sync_changed(event: AlertSyncChanged, pool=Context("pool"),
                                    changes: Changes = Context("changes")) -> None:
        await told(await read_model.apply_alert_sync(pool, event), event, changes, ChangeKind.alert, event.alert_id)

    @alerts
    async def on_alert_events(records: list[Any], pool=Context("pool"), broker: KafkaBroker = Context("broker"),
                              changes: Changes = Context("changes")) -> None:
        events = await batch_events(records, ALERT_EVENT_TYPES, broker=broker, dead_letter_topic=dead_letter_topic,
                                    consumer=DEAD_LETTER_CONSUMER, others_are_poison=True)
        applied = await read_model.apply_alert_events(pool, events)
        count_duplicates(len(events) - len(applied))
        await told_batch(changes, ((e.tenant_id, ChangeKind.alert, e.alert.id if isinstance(e, AlertCreated)
                                    else e.alert_id) for e in applied))

    @triage(filter=event_type_is("alert-assigned"))
    async def on_alert_assigned(event: AlertAssigned, pool=Context("pool"),
                                changes: Changes = Context("changes")) -> None:
        await told(await read_model.apply_alert_assigned(pool, event), event, changes, ChangeKind.alert,
                   event.alert_id)

    @triage(filter=event_type_is("alert-note-added"))
    async def on_alert_note_added(event: AlertNoteAdded, pool=Context("pool"),
                                  changes: Changes = Context("changes")) -> None:
        await told(await read_model.apply_alert_note_added(pool, event), event, changes, ChangeKind.alert,
                   event.alert_id)

    @tenants(filter=event_type_is("tenant-offboarded"))
    async def on_tenant_offboarded(event: TenantOffboarded, pool=Context("pool"),
                                   keeper: ScoreKeeper = Context("keeper")) -> None:
        done = await offboarding.offboard(pool, keeper.cache, event)
        if done is None:
            count_duplicates()
            log.debug("event %s already applied", event.event_id)
            return
        log.info("tenant %s offboarded: %s deleted", event.tenant_id,
                 ", ".join(f"{count} {table}" for table, count in done.rows.items() if count) or "nothing")

    # Not ``requirement-status``, ``alert-response-times``, ``deliveries`` nor ``alerts``: their batch
    # handler takes every record, and refuses another event type itself (others_are_poison).
    for topic, records in ((Topic.customer_mfa, customers), (Topic.alert_sync, syncs),
                           (Topic.alert_triage, triage), (Topic.tenants, tenants)):
        refuse_other_event_types(topic, records)

    return router
