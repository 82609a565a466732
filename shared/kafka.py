"""Kafka wiring every service shares: the broker, topic names and settings, publishing, dead letters."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from fast_depends.exceptions import ValidationError as MessageValidationError
from fast_depends.pydantic import PydanticSerializer
from faststream import AckPolicy
from faststream._internal.constants import EMPTY
from faststream._internal.context import Context as _ContextField  # what faststream.Context() makes
from faststream.exceptions import SubscriberNotFound
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.middlewares import BaseMiddleware
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY
from pydantic import ValidationError

from shared import kafka_backoff, tracing
from shared.dead_letters import DEAD_LETTER_PUBLISH_TIMEOUT_SECONDS, one_line, poison_record, publish_dead_letter
from shared.events import EVENT_TYPE_HEADER, Event, Topic
from shared.logs import LogContextMiddleware
from shared.metrics import count_batch, end_tally, record_tally, start_tally
from shared.settings import CommonSettings

log = logging.getLogger(__name__)

# Every process that talks to Kafka imports this module: no aiokafka client of it spins during an outage.
kafka_backoff.install()


@dataclass(frozen=True)
class TopicSpec:
    topic: Topic
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


# Keyed topics whose latest record per key is the state (contacts, requirement status) are
# compacted; the others keep a bounded history.
SEVEN_DAYS_MS = str(7 * 24 * 3600 * 1000)
THIRTY_FIVE_DAYS_MS = str(35 * 24 * 3600 * 1000)
TOPIC_SPECS: tuple[TopicSpec, ...] = (
    TopicSpec(Topic.alerts, 6, {"retention.ms": THIRTY_FIVE_DAYS_MS}),
    TopicSpec(Topic.requirement_status, 3, {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}),
    TopicSpec(Topic.security_contacts, 3, {"cleanup.policy": "compact"}),
    TopicSpec(Topic.score_changes, 3, {"retention.ms": THIRTY_FIVE_DAYS_MS}),
    TopicSpec(Topic.notifications, 3, {"retention.ms": SEVEN_DAYS_MS}),
    TopicSpec(Topic.dead_letter, 1, {"retention.ms": THIRTY_FIVE_DAYS_MS}),
    TopicSpec(Topic.notification_channels, 3, {"cleanup.policy": "compact"}),
    TopicSpec(Topic.customer_mfa, 3, {"cleanup.policy": "compact"}),
    TopicSpec(Topic.alert_response_times, 6, {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}),
    TopicSpec(Topic.deliveries, 3, {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}),
    TopicSpec(Topic.delivery_commands, 3, {"retention.ms": SEVEN_DAYS_MS}),
    TopicSpec(Topic.alert_sync, 3, {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}),
    TopicSpec(Topic.escalation_chains, 3, {"cleanup.policy": "compact"}),
    TopicSpec(Topic.alert_triage, 3, {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}),
    TopicSpec(Topic.tenants, 3, {"cleanup.policy": "compact"}),
)


# Each FastStream subscriber is a consumer of its service's group, and a member joining makes every
# other member rejoin at its next heartbeat: with the default interval (3 s) a notifier's five
# subscribers took five rebalances, ~14 s, before it consumed anything. At 0.5 s the group settles
# within a few seconds (still well under a third of the 10 s session timeout).
CONSUMER_HEARTBEAT_INTERVAL_MS = 500


# A batch subscriber (FastStream) that found no records within its ``batch_timeout_ms`` sleeps that long
# again before it looks once more: at FastStream's default, 200 ms, an alert arriving at an idle consumer
# waited up to 200 ms in each hop someone waits on (idle, write -> visible took ~400 ms at p50 in some
# runs). For those, a short one: an idle consumer looks every ~2 x this (the fetches themselves are
# aiokafka's, in the background: a look is a glance at its buffer). Measured in `make bench`: idle,
# write -> visible p50 406 -> 57 ms; the idle write API and response time ~0.008 cores more each.
WAITED_FOR_BATCH_IDLE_MS = 20
BACKGROUND_BATCH_IDLE_MS = 200


def subscriber_options(settings: CommonSettings, *, background: bool = False, rare: bool = False,
                       batch_of: int | None = None) -> dict[str, Any]:
    """What every subscriber of a service shares: its group, reading from the earliest offset, a
    commit only after the handler succeeded, never an aborted transaction, a short heartbeat, and
    fetches that let records gather for a moment (``KAFKA_FETCH_MAX_WAIT_MS``; a ``background``
    subscriber, one nobody waits on, ``KAFKA_BACKGROUND_FETCH_MAX_WAIT_MS``). A ``rare`` topic's
    records (a few a day: statuses, triage, settings changed by hand) are not worth gathering: the
    broker answers a fetch at its first record, and holds an empty one the background wait.
    ``batch_of``: a batch subscriber of that many records at most, given them raw (:func:`batch_events`
    parses them)."""
    # Gathering saves CPU only where records come many a second. An idle consumer asks again each time
    # its wait ends: the short wait on a rare topic cost ~16 empty fetches a second, the broker's CPU too.
    long_wait = background or rare
    wait_ms = settings.kafka_background_fetch_max_wait_ms if long_wait else settings.kafka_fetch_max_wait_ms
    options = {
        "group_id": settings.consumer_group,
        "auto_offset_reset": "earliest",
        "ack_policy": AckPolicy.NACK_ON_ERROR,
        "isolation_level": "read_committed",
        "heartbeat_interval_ms": CONSUMER_HEARTBEAT_INTERVAL_MS,
        "fetch_max_wait_ms": wait_ms,
        "fetch_min_bytes": 1 if rare else settings.kafka_fetch_min_bytes,
    }
    if batch_of is not None:
        options.update(batch=True, max_records=batch_of, decoder=raw_records,
                       batch_timeout_ms=BACKGROUND_BATCH_IDLE_MS if background else WAITED_FOR_BATCH_IDLE_MS)
    return options


def topic_name(settings: CommonSettings, topic: Topic) -> str:
    return f"{settings.kafka_topic_prefix}{topic.value}"


@dataclass(frozen=True)
class TopicOptions:
    """How new topics are made on this deployment's cluster (from its settings: ``topic_options``)."""

    replication_factor: int = 1
    partitions: int | None = None  # every topic's count but the dead-letter topic's; None: each its own
    min_insync_replicas: int | None = None


def topic_options(settings: CommonSettings) -> TopicOptions:
    return TopicOptions(settings.kafka_replication_factor, settings.kafka_partitions,
                        settings.kafka_min_insync_replicas)


def new_topic(spec: TopicSpec, prefix: str = "", options: TopicOptions | None = None) -> NewTopic:
    """The topic ``spec`` describes, as ``options`` make it: the dead-letter topic keeps its one partition
    (operators read it in order); every other takes ``options.partitions`` when set."""
    options = options or TopicOptions()
    partitions = spec.partitions
    if options.partitions is not None and spec.topic is not Topic.dead_letter:
        partitions = options.partitions
    config = dict(spec.config)
    if options.min_insync_replicas is not None:
        config["min.insync.replicas"] = str(options.min_insync_replicas)
    return NewTopic(name=f"{prefix}{spec.topic.value}", num_partitions=partitions,
                    replication_factor=options.replication_factor, topic_configs=config)


async def ensure_topics(
    bootstrap_servers: str, prefix: str = "", specs: Iterable[TopicSpec] = TOPIC_SPECS,
    options: TopicOptions | None = None,
) -> list[str]:
    """Create the topics that do not exist yet (partitions and replicas as ``options`` say); returns the
    names it created. Safe to repeat; a topic that exists is left as it is."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="csp-triage-topics")
    await admin.start()
    created: list[str] = []
    try:
        existing = set(await admin.list_topics())
        wanted = [new_topic(spec, prefix, options) for spec in specs
                  if f"{prefix}{spec.topic.value}" not in existing]
        if wanted:
            try:
                await admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                pass  # another process won the race; the topic is there, which is all we need
            created = [t.name for t in wanted]
    finally:
        await admin.close()
    return created


def make_broker(settings: CommonSettings, client_id: str, **kwargs: Any) -> KafkaBroker:
    """The one way a service gets its broker: idempotent producer, acks=all, dead letters for poison,
    FastStream's Prometheus metrics (``app_name``: ``client_id``, the service) and, with tracing on
    (``shared.tracing``), its telemetry. Outermost first: the log context (``shared.logs``: every line
    about the message, the other middlewares' too, carries its ids), telemetry (its span holds the
    rest), metrics, the dead letters (nearest the handler)."""
    # FastStream logs through the process's own logging set-up (shared.logs), one format for all.
    kwargs.setdefault("logger", logging.getLogger(f"faststream.{client_id}"))
    # "Received" / "Processed" for every message is debugging detail, not an operator's log.
    kwargs.setdefault("log_level", logging.DEBUG)
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        middlewares=(
            LogContextMiddleware,
            *tracing.broker_middlewares(),
            KafkaPrometheusMiddleware(registry=REGISTRY, app_name=client_id),
            DeadLetterMiddleware.for_topic(topic_name(settings, Topic.dead_letter), consumer=client_id),
        ),
        # The one place a message becomes its model: FastDepends validates the handler's arguments
        # and, with its own errors on, reports a message that does not fit as its ValidationError,
        # which pydantic's ValidationError raised by the handler's own code is not (see is_poison).
        serializer=PydanticSerializer(use_fastdepends_errors=True),
        decoder=decode_or_poison,
        **kwargs,
    )


async def decode_or_poison(message: Any, default_decoder: Any) -> Any:
    """FastStream's decoding of a record's bytes, with bytes that cannot be decoded made poison.

    (A record without a content type that is not JSON is passed on as bytes: the model's
    validation then refuses it.) A subscriber with a decoder of its own bypasses this one.
    """
    try:
        return await default_decoder(message)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PoisonEvent(f"undecodable message: {one_line(exc)}") from exc


def event_headers(event: Event) -> dict[str, str]:
    return {EVENT_TYPE_HEADER: event.event_type, "eventId": str(event.event_id), "tenantId": event.tenant_id}


async def publish_event(broker: KafkaBroker, settings: CommonSettings, topic: Topic, event: Event) -> None:
    """Publish one event and wait for the broker's acknowledgement (acks=all)."""
    await broker.publish(
        event.model_dump_json().encode(),
        topic=topic_name(settings, topic),
        key=event.kafka_key(),
        headers=event_headers(event),
    )


def event_type_is(event_type: str):
    """A subscriber filter: route a record to the handler of its ``eventType`` header."""

    def matches(message: Any) -> bool:
        return (message.headers or {}).get(EVENT_TYPE_HEADER) == event_type

    matches.__name__ = f"event_type_is_{event_type.replace('-', '_')}"
    return matches


def is_tombstone(record: Any) -> bool:
    """Whether a consumed record is a tombstone: a key whose value is gone (None, or empty bytes).

    A compacted topic's way of saying "this key no longer exists" (shared.outbox.enqueue_tombstones,
    #18 offboarding): no event, nothing to apply. A batch (a tuple of records) is not one record.
    """
    return hasattr(record, "value") and not record.value


class _ContextOnTheLoop(_ContextField):
    async def use(self, /, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        return super().use(**kwargs)


def Context(real_name: str = "", *, default: Any = EMPTY) -> Any:  # noqa: N802 (FastStream's name)
    """FastStream's ``Context()`` (a handler's parameter taken from the broker's context, e.g.
    ``pool=Context("pool")``), resolved on the event loop.

    FastDepends runs a custom field's synchronous ``use`` in a worker thread, once per parameter per
    message: a thread hop and its GIL hand-over for a dictionary look-up, most of a small handler's cost
    under load (#15, py-spy). A coroutine ``use`` is awaited in place.
    """
    return _ContextOnTheLoop(real_name=real_name, default=default)


class PoisonEvent(Exception):
    """An event that can never be applied (malformed, or contradicting its own contract)."""


# Errors of parsing a record's bytes into an event by hand (a batch handler that parses each
# record itself, as response_time does): caught around that parse only, they mark the record poison.
# Never catch them around a handler's own work: a pydantic error there (a bad stored row) is a
# fault to retry, not a bad message.
POISON_ERRORS: tuple[type[BaseException], ...] = (
    ValidationError, json.JSONDecodeError, UnicodeDecodeError, PoisonEvent)


def is_poison(exc: BaseException) -> bool:
    """Whether the record itself is bad, so retrying cannot help.

    Poison: a message that does not decode or does not validate as the handler's event model
    (FastDepends' error, raised before the handler runs), a :class:`PoisonEvent` a handler raises
    about the event, and a record no handler's filter takes (SubscriberNotFound: unknown or missing
    eventType). Anything the handler's own code raises, pydantic's ValidationError included, is not.
    """
    if isinstance(exc, MessageValidationError):
        # FastDepends also validates a handler's return value; a bad one is the handler's fault.
        return not any(option.field_name == "return" for option in exc.error_fields)
    return isinstance(exc, (PoisonEvent, SubscriberNotFound))


class DeadLetterMiddleware(BaseMiddleware):
    """Sends a poison record (:func:`is_poison`) to the dead-letter topic as a ``poison-record``
    :class:`shared.dead_letters.DeadLetter`, then lets it be committed. A tombstone
    (:func:`is_tombstone`) reaches no handler: it is committed as it is.

    Any other error propagates, so FastStream does not commit the record and it is consumed again
    after a short pause (the database or Redis being briefly unreachable, or a bad row of the
    service's own, must not lose events). So does a dead letter the broker does not acknowledge
    within its timeout: the poison record is consumed, and dead-lettered, again.
    """

    dead_letter_topic: str = "dead-letter"
    consumer: str = "unknown"
    retry_pause_seconds: float = 1.0
    publish_timeout_seconds: float = DEAD_LETTER_PUBLISH_TIMEOUT_SECONDS

    @classmethod
    def for_topic(cls, topic: str, *, consumer: str) -> type[DeadLetterMiddleware]:
        return type(cls.__name__, (cls,), {"dead_letter_topic": topic, "consumer": consumer})

    async def consume_scope(self, call_next, msg):
        if is_tombstone(msg.raw_message):
            # A compacted topic's deleted key (#18): nothing to apply, and not poison either. Every
            # handler of every subscriber goes through here, so none of them ever sees one.
            log.debug("tombstone of key %r on %s skipped", msg.raw_message.key, msg.raw_message.topic)
            return None
        # csp_events_processed_total: the handler (or batch_events) fills the tally in; counted once
        # the handler succeeded. A poison record is counted as a dead letter instead.
        tally, token = start_tally()
        try:
            result = await call_next(msg)
            record_tally(self.consumer, _topic_of(msg.raw_message), tally)
            return result
        except Exception as exc:
            if not is_poison(exc):
                log.exception("handler failed; the record is not committed and will be retried")
                await asyncio.sleep(self.retry_pause_seconds)
                raise
            letter = poison_record(msg.raw_message, exc, consumer=self.consumer)
            await publish_dead_letter(self.context.get("broker"), self.dead_letter_topic, letter,
                                      timeout=self.publish_timeout_seconds)
            return None
        finally:
            end_tally(token)


def _topic_of(raw_message: Any) -> str:
    # A batch subscriber's message is the tuple of its records, all of one topic.
    if isinstance(raw_message, (tuple, list)):
        return raw_message[0].topic if raw_message else ""
    return getattr(raw_message, "topic", "")


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value and value.strip() else None


def main() -> None:
    import argparse
    import os

    parser = argparse.ArgumentParser(prog="python -m shared.kafka")
    parser.add_argument("command", choices=["ensure-topics"])
    parser.add_argument("--bootstrap-servers", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    parser.add_argument("--prefix", default=os.environ.get("KAFKA_TOPIC_PREFIX", ""))
    # The settings' variables (shared.settings.CommonSettings), read here without the rest of the settings.
    parser.add_argument("--replication-factor", type=int, default=int(os.environ.get("KAFKA_REPLICATION_FACTOR", "1")))
    parser.add_argument("--partitions", type=int, default=_int_or_none(os.environ.get("KAFKA_PARTITIONS")))
    parser.add_argument("--min-insync-replicas", type=int,
                        default=_int_or_none(os.environ.get("KAFKA_MIN_INSYNC_REPLICAS")))
    args = parser.parse_args()
    options = TopicOptions(args.replication_factor, args.partitions, args.min_insync_replicas)
    created = asyncio.run(ensure_topics(args.bootstrap_servers, args.prefix, options=options))
    names = ", ".join(created)
    print(f"    topics: {len(created)} created" + (f" ({names})" if created else ", all present"))


if __name__ == "__main__":
    main()


# --- batches of records -------------------------------------------------------------------------------
# A subscriber with ``batch=True`` and ``decoder=raw_records`` gets the records as they are, and turns
# them into events with :func:`batch_events`: each record parsed alone, a poison one dead-lettered
# alone, the rest applied together (one transaction per batch, the offsets committed after it).


# Parsing a batch is CPU only: a batch of a few hundred records held the event loop for several
# milliseconds, and the requests and other consumers of the process (the read API's reads, its change
# stream, the batch someone waits for) waited behind it. Every this many records (~1 ms) it lets them
# run. (#15, A/B at a steady 200 alerts/s, 6 interleaved pairs: the read API's hop p50 shorter in 4,
# the whole pipeline's CPU lower in 5.)
YIELD_EVERY_RECORDS = 25


async def raw_records(message: Any) -> Any:
    """A batch subscriber's decoder: the records as consumed, each parsed (or dead-lettered) on its own."""
    return list(message.raw_message)


def record_event(record: Any, models: Mapping[str, type[Event]], *, others_are_poison: bool) -> Event | None:
    """The event ``record`` carries, by its eventType header among ``models``; None for a tombstone (a
    deleted key: nothing to apply), and for another eventType unless ``others_are_poison`` (then
    :class:`PoisonEvent`). A malformed event raises pydantic's error (poison: :data:`POISON_ERRORS`)."""
    if is_tombstone(record):
        return None
    headers = {k: v.decode(errors="replace") for k, v in (record.headers or ())}
    event_type = headers.get(EVENT_TYPE_HEADER)
    model = models.get(event_type or "")
    if model is None:
        if others_are_poison:
            raise PoisonEvent(f"no handler for eventType {event_type!r} on {record.topic}")
        return None
    return model.model_validate_json(record.value or b"")


async def batch_events(
    records: Iterable[Any], models: Mapping[str, type[Event]], *, broker: KafkaBroker, dead_letter_topic: str,
    consumer: str, others_are_poison: bool = True, check: Callable[[Any], None] | None = None,
) -> list[Event]:
    """The events of a batch of records, in their order (:func:`record_event`); each poison record is
    sent to ``dead_letter_topic`` as it is found: one that does not parse, or whose event ``check``
    refuses (:class:`PoisonEvent`: it contradicts its own contract). A dead letter the broker does not
    acknowledge in time raises: the batch is not committed and comes again."""
    events: list[Event] = []
    for index, record in enumerate(records):
        if index and index % YIELD_EVERY_RECORDS == 0:
            await asyncio.sleep(0)  # let the process's other work run (see YIELD_EVERY_RECORDS)
        try:
            event = record_event(record, models, others_are_poison=others_are_poison)
            if event is not None and check is not None:
                check(event)
        except POISON_ERRORS as exc:
            await publish_dead_letter(broker, dead_letter_topic, poison_record(record, exc, consumer=consumer))
            continue
        if event is not None:
            events.append(event)
            if tracing.enabled():
                _trace_record(record, event, consumer)
    count_batch(len(events))
    return events


def _trace_record(record: Any, event: Event, consumer: str) -> None:
    """A short span of ``consumer`` taking ``event`` in a batch, in the trace its record carries, and a link
    to that trace from the batch's own span (FastStream's, current here: it starts a trace of its own and
    links only records with a ``correlation_id``, which ours do not carry). Without them the trace of a
    webhook would not show who consumed its event."""
    headers = {k: v.decode(errors="replace") for k, v in (record.headers or ())}
    context = tracing.context_from(headers)
    if context is None:
        return
    trace.get_current_span().add_link(trace.get_current_span(context).get_span_context())
    with tracing.span(f"{record.topic} receive", kind=SpanKind.CONSUMER, context=context, attributes={
        "messaging.system": "kafka", "messaging.destination.name": record.topic,
        "csp.consumer": consumer, "messaging.kafka.offset": record.offset,
        "messaging.destination.partition.id": str(record.partition), "messaging.message.id": str(event.event_id),
        "csp.event_type": event.event_type,
    }):
        pass
