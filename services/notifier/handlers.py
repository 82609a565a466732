"""Translates events into the notifier's delivery log, timers, contacts, channels and escalation chains:
one handler per event type, but ``alerts``, consumed in batches (#15: one transaction per batch,
``store.apply_alert_events``, each record parsed here by its ``eventType``). A tenant offboarded
(``tenants``) loses all of them (``offboarding.py``), and every later event of it is dropped
(``store.claim``). On each topic a record of an event type no handler takes is poison: it goes to the
dead-letter topic and the consumer moves on (on ``alerts``, that record alone, the rest of its batch
applied); a tombstone (a key another service deleted, #18) is skipped
(``shared.kafka.DeadLetterMiddleware``, or the batch's parse).

Handlers only record what must be sent (in the transaction that claims the event) and wake the
delivery worker; they never wait on SMTP or a webhook, so a slow receiver cannot stall the consumer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from faststream.kafka import KafkaBroker, KafkaRouter

from services.notifier import domain, offboarding, store, warning_store
from services.notifier.config import Settings
from shared import tracing
from shared.events import (
    AlertCreated,
    AlertUpdated,
    EscalationChainChanged,
    NotificationChannelChanged,
    RedeliveryRequested,
    RequirementStatusObserved,
    SecurityContactChanged,
    SpendingBudgetThresholdReached,
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
from shared.wire import utcnow

log = logging.getLogger(__name__)


ALERT_EVENT_TYPES: dict[str, type[AlertCreated] | type[AlertUpdated]] = {
    "alert-created": AlertCreated, "alert-updated": AlertUpdated}
# Who refused a poison record, in its dead letter (as the dead-letter middleware names the service).
CONSUMER = "notifier"


def build_router(settings: Settings, wake_worker: Callable[[], None]) -> KafkaRouter:
    router = KafkaRouter()

    # Every topic but ``alerts`` carries a few records a day: each is fetched the moment it comes
    # (shared.kafka.subscriber_options).
    def subscriber(topic: Topic, description: str) -> Any:
        return router.subscriber(
            topic_name(settings, topic),
            **subscriber_options(settings, background=True, rare=True),
            title=f"notifier/{topic.value}",
            description=description,
        )

    # ``alerts`` in batches: one transaction per batch (store.apply_alert_events), its offsets committed
    # after it commits; each record parsed here by its eventType, a poison one dead-lettered alone.
    alerts = router.subscriber(
        topic_name(settings, Topic.alerts),
        **subscriber_options(settings, background=True, batch_of=settings.notifier_batch_size),
        title=f"notifier/{Topic.alerts.value}",
        description="New alerts are delivered and get timers; a partner response cancels them.",
    )
    contacts = subscriber(Topic.security_contacts, "The security contact every e-mail goes to.")
    notifications = subscriber(Topic.notifications, "Spending-budget notifications for the contact.")
    channels = subscriber(
        Topic.notification_channels, "The ticketing channels (the write API's), kept with their secrets opened."
    )
    commands = subscriber(Topic.delivery_commands, "Redeliveries of dead deliveries.")
    statuses = subscriber(
        Topic.requirement_status, "Requirement statuses: a change for the worse is an at-risk warning."
    )
    chains = subscriber(
        Topic.escalation_chains, "Each tenant's escalation chain (the write API's): who is told, in order, of an "
        "unanswered alert, instead of the deployment's escalation."
    )
    tenants = subscriber(
        Topic.tenants, "Tenants offboarded: everything of the tenant deleted, its deliveries' keys tombstoned, "
        "its later events dropped."
    )

    dead_letter_topic = topic_name(settings, Topic.dead_letter)

    @alerts
    async def on_alert_events(records: list[Any], pool=Context("pool"),
                              broker: KafkaBroker = Context("broker")) -> None:
        events = await batch_events(records, ALERT_EVENT_TYPES, broker=broker, dead_letter_topic=dead_letter_topic,
                                    consumer=CONSUMER)
        # What the batch reads of each tenant is read afresh for each batch.
        batch = store.AlertsBatch(settings.reminder_after_seconds, settings.escalation_after_seconds,
                                  settings.storm_policy)
        if tracing.enabled():
            batch.traces = record_traces(records)
        created, cancelled = await store.apply_alert_events(pool, events, batch)
        if created:
            wake_worker()
        if cancelled:
            log.info("%d timers cancelled by answers or resolutions", cancelled)

    @contacts(filter=event_type_is("security-contact-changed"))
    async def on_contact_changed(event: SecurityContactChanged, pool=Context("pool")) -> None:
        due_again = await store.record_contact(pool, event, settings.contact_catch_up_seconds)
        if due_again:
            log.info("contact of %s set: %d e-mails that waited for it are due", event.tenant_id, due_again)
            wake_worker()

    @notifications(filter=event_type_is("spending-budget-threshold-reached"))
    async def on_spending_threshold(event: SpendingBudgetThresholdReached, pool=Context("pool")) -> None:
        if await store.record_spending(pool, event):
            wake_worker()

    @channels(filter=event_type_is("notification-channel-changed"))
    async def on_channel_changed(event: NotificationChannelChanged, pool=Context("pool")) -> None:
        try:
            channel = domain.open_channel(event.channel, settings.sealing_key_list) if event.channel else None
        except domain.UnusableChannel as exc:  # never applicable, whatever is retried: a dead letter
            raise PoisonEvent(f"channel {event.tenant_id}/{event.name}: {exc}") from exc
        changed = await store.record_channel(pool, event, channel)
        if changed is False:
            log.info("channel %s/%s: event of %s older than the one in force; ignored",
                     event.tenant_id, event.name, event.occurred_date_time)

    @chains(filter=event_type_is("escalation-chain-changed"))
    async def on_escalation_chain_changed(event: EscalationChainChanged, pool=Context("pool")) -> None:
        try:
            chain = domain.usable_chain(event.steps)
        except domain.UnusableChain as exc:  # never applicable, whatever is retried: a dead letter
            raise PoisonEvent(f"escalation chain of {event.tenant_id}: {exc}") from exc
        changed = await store.record_escalation_chain(pool, event, chain)
        if changed is False:
            log.info("escalation chain of %s: event of %s older than the one in force; ignored",
                     event.tenant_id, event.occurred_date_time)

    @commands(filter=event_type_is("redelivery-requested"))
    async def on_redelivery_requested(event: RedeliveryRequested, pool=Context("pool")) -> None:
        result = await store.requeue_dead(pool, event)
        if result is None:
            return
        requeued, state = result
        if requeued:
            log.info("delivery %s of %s requeued", event.delivery_id, event.tenant_id)
            wake_worker()
        else:
            log.info("redelivery of %s of %s ignored: %s", event.delivery_id, event.tenant_id,
                     f"it is {state}, not dead" if state else "no such delivery")

    @statuses(filter=event_type_is("requirement-status-observed"))
    async def on_requirement_status(event: RequirementStatusObserved, pool=Context("pool")) -> None:
        made = await warning_store.record_requirement_status(
            pool, event, now=utcnow(), escalation_email=bool(settings.escalation_email))
        if made:
            log.info("%s: %s changed for the worse (%s): %d warning(s) to send", event.tenant_id,
                     event.requirement_type, event.compliance_status.value, made)
            wake_worker()

    def refuse_other_event_types(topic: Topic, records: Any) -> None:
        # Registered after the topic's handlers, so it only sees records none of them took (a tombstone
        # included, which the dead-letter middleware then skips). Without it FastStream raises "no suitable
        # handler" outside any middleware's reach: never committed, the partition stalls behind it.
        @records()
        async def on_other_event_type(body: Any, message=Context("message")) -> None:
            event_type = (message.headers or {}).get("eventType")
            raise PoisonEvent(f"no notifier handler for eventType {event_type!r} on the {topic.value} topic")

    @tenants(filter=event_type_is("tenant-offboarded"))
    async def on_tenant_offboarded(event: TenantOffboarded, pool=Context("pool")) -> None:
        done = await offboarding.offboard(pool, event)
        if done is None:
            count_duplicates()
            log.debug("event %s already applied", event.event_id)
            return
        log.info("tenant %s offboarded: %s deleted, %d delivery key(s) tombstoned", event.tenant_id,
                 ", ".join(f"{count} {table}" for table, count in done.rows.items() if count) or "nothing",
                 done.tombstones)

    for topic, records in ((Topic.security_contacts, contacts),
                           (Topic.notifications, notifications), (Topic.notification_channels, channels),
                           (Topic.delivery_commands, commands), (Topic.requirement_status, statuses),
                           (Topic.escalation_chains, chains), (Topic.tenants, tenants)):
        refuse_other_event_types(topic, records)

    return router


def record_traces(records: list[Any]) -> dict[str, str]:
    """The trace context each record of a batch carries (``traceparent``), by its ``eventId`` header: the
    trace of the webhook or POST that wrote the event (its outbox row's, #16). Its deliveries are sent in
    it, so the e-mail's SMTP send is a step of the webhook's trace (this batch's own span is not: it
    holds many traces, and only links to them)."""
    traces: dict[str, str] = {}
    for record in records:
        headers = dict(record.headers or ())
        event_id, traceparent = headers.get("eventId"), headers.get(tracing.TRACEPARENT)
        if event_id and traceparent:
            traces[event_id.decode(errors="replace")] = traceparent.decode(errors="replace")
    return traces
