"""The AsyncAPI document of a service's Kafka traffic: every topic it consumes and publishes, and the
event models (``shared.events``) each carries.

FastStream generates the document (AsyncAPI 3.0). It cannot infer every payload from the handlers: a
batch handler takes the raw records (``shared.kafka.raw_records``) and parses each by its ``eventType``
header, and the services publish through their outbox relays, not through FastStream publishers. So
:func:`document` has FastStream describe a stand-in broker, never started: one subscriber per topic
the service's own broker consumes (its title, description and consumer group), with a handler per
event model the topic carries (:data:`TOPIC_EVENTS`), and one publisher per topic the service
publishes (:data:`PUBLICATIONS`), with each model as a return type. The service's broker is only read.

The document is deterministic (no timestamps, keys sorted), so the copy published in ``docs/asyncapi/``
can be compared with a fresh one (``make asyncapi``; ``tests/contract/test_asyncapi_docs.py``).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from typing import Any

import yaml
from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI, get_asyncapi_html
from pydantic import BaseModel

from shared.dead_letters import DeadLetter
from shared.events import (
    EVENT_TYPE_HEADER,
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
    EscalationChainChanged,
    NotificationChannelChanged,
    RedeliveryRequested,
    RequirementStatusObserved,
    ScoreChanged,
    SecurityContactChanged,
    SpendingBudgetThresholdReached,
    TenantOffboarded,
    Topic,
)
from shared.kafka import TOPIC_SPECS

# The version of the documents' own layout; each service's API version is its own ("1" today).
DOCUMENT_VERSION = "1"

# What each topic carries: every event model a record of it may hold (by its eventType header). A
# consumer's handlers are checked against it (:func:`document`), so a handler of a model not listed
# here fails the build of the document, not silently leaves it out.
TOPIC_EVENTS: Mapping[Topic, tuple[type[BaseModel], ...]] = {
    Topic.alerts: (AlertCreated, AlertUpdated),
    Topic.requirement_status: (RequirementStatusObserved,),
    Topic.security_contacts: (SecurityContactChanged,),
    Topic.score_changes: (ScoreChanged,),
    Topic.notifications: (SpendingBudgetThresholdReached,),
    Topic.dead_letter: (DeadLetter,),
    Topic.notification_channels: (NotificationChannelChanged,),
    Topic.customer_mfa: (CustomerMfaObserved, CustomerMfaRemoved),
    Topic.alert_response_times: (AlertResponseTimeChanged,),
    Topic.deliveries: (DeliveryChanged, DeliveriesGrouped),
    Topic.delivery_commands: (RedeliveryRequested,),
    Topic.alert_sync: (AlertSyncChanged,),
    Topic.escalation_chains: (EscalationChainChanged,),
    Topic.alert_triage: (AlertAssigned, AlertNoteAdded),
    Topic.tenants: (TenantOffboarded,),
}

# Each topic's record key (the events' ``kafka_key``): records of one key keep their order, and a
# compacted topic keeps the latest record of each. One pattern per kind of record.
TOPIC_KEYS: Mapping[Topic, tuple[str, ...]] = {
    Topic.alerts: ("{tenantId}:{alertId}",),
    Topic.requirement_status: ("{tenantId}:{requirementType}",),
    Topic.security_contacts: ("{tenantId}",),
    Topic.score_changes: ("{tenantId}",),
    Topic.notifications: ("{tenantId}:{customerTenantId}",),
    Topic.notification_channels: ("{tenantId}:{name}",),
    Topic.customer_mfa: ("{tenantId}:{customerTenantId}",),
    Topic.alert_response_times: ("{tenantId}:{alertId}",),
    Topic.deliveries: ("{tenantId}:{deliveryId}",),
    Topic.delivery_commands: ("{tenantId}:{deliveryId}",),
    Topic.alert_sync: ("{tenantId}:{alertId}",),
    Topic.escalation_chains: ("{tenantId}",),
    Topic.alert_triage: ("{tenantId}:{alertId}:assignee", "{tenantId}:{alertId}:note:{noteId}"),
    Topic.tenants: ("{tenantId}",),
}
_DEAD_LETTER_KEY = "A poison record's own key (null if it had none); a dead delivery's {tenantId}."

_OUTBOX = "written in the same transaction as the change, published by the service's outbox relay"
_TOMBSTONES = "A record without a value (a tombstone) deletes its key: the tenant was offboarded."
_DEAD_LETTERS = ("Poison records its consumers refused (the dead-letter middleware, or a batch's parse), "
                 "published at once; the record is committed after the broker acknowledged its dead letter.")

# What each service publishes (by its Kafka client id), and how. Every service dead-letters the poison
# records it consumes; the rest goes through the service's transactional outbox (shared.outbox).
PUBLICATIONS: Mapping[str, Mapping[Topic, str]] = {
    "ingest": {
        Topic.alerts: f"Each alert received (webhook, Graph poll) and each change of it, {_OUTBOX}.",
        Topic.requirement_status: f"Requirement statuses the write API observes (signals, the contact), {_OUTBOX}. "
        f"{_TOMBSTONES}",
        Topic.security_contacts: f"Each tenant's security contact as set or cleared, {_OUTBOX}. {_TOMBSTONES}",
        Topic.notifications: f"Spending-budget thresholds reached, {_OUTBOX}.",
        Topic.notification_channels: f"Each tenant's channels as set or deleted (secrets sealed), {_OUTBOX}. "
        f"{_TOMBSTONES}",
        Topic.customer_mfa: f"Each customer's figures from the latest customer-MFA report, {_OUTBOX}. {_TOMBSTONES}",
        Topic.delivery_commands: f"Redeliveries of dead deliveries an operator asked for, {_OUTBOX}.",
        Topic.alert_sync: f"Each alert's sync state with Partner Center, {_OUTBOX}. {_TOMBSTONES}",
        Topic.escalation_chains: f"Each tenant's escalation chain as set or removed, {_OUTBOX}. {_TOMBSTONES}",
        Topic.alert_triage: f"Each alert's assignee and notes, {_OUTBOX}. {_TOMBSTONES}",
        Topic.tenants: f"Tenants an operator offboarded, {_OUTBOX}.",
        Topic.dead_letter: _DEAD_LETTERS,
    },
    "response-time": {
        Topic.alert_response_times: f"Each alert's clock and first response as they change, {_OUTBOX}. "
        f"{_TOMBSTONES}",
        Topic.requirement_status: f"The response-time requirement of each tenant (its 30-day average), {_OUTBOX}. "
        f"{_TOMBSTONES}",
        Topic.dead_letter: _DEAD_LETTERS,
    },
    "scoring": {
        Topic.score_changes: f"Each change of a tenant's live score, {_OUTBOX}.",
        Topic.dead_letter: _DEAD_LETTERS,
    },
    "notifier": {
        Topic.deliveries: f"Each delivery as it changes state (the alerts a storm's digest takes in: one event for "
        f"those of a transaction), {_OUTBOX}. {_TOMBSTONES}",
        Topic.dead_letter: _DEAD_LETTERS + " Also dead deliveries (a notification that exhausted its retries or met "
        "a permanent refusal), through the outbox.",
    },
}

# Each service's document: title and description (its version is DOCUMENT_VERSION unless given).
SERVICES: Mapping[str, tuple[str, str]] = {
    "ingest": ("CSP alert triage: write API events",
               "What the write API publishes (alerts, signals, contacts, channels, triage, offboarding) "
               "and the deliveries it keeps a view of."),
    "response-time": ("CSP alert triage: response-time events",
                      "The alert events the response-time service consumes, and the response times and "
                      "requirement status it publishes."),
    "scoring": ("CSP alert triage: scoring events",
                "The events the score and the read API's read model are made of, and the score changes."),
    "notifier": ("CSP alert triage: notifier events",
                 "The events the notifier turns into e-mails and webhook calls, and the deliveries it publishes."),
}


def _event_headers(topic: Topic) -> dict[str, Any]:
    """The headers of a record of ``topic`` (shared.outbox.outbox_row, shared.dead_letters.DeadLetter.headers)."""
    event_types = sorted(str(model.model_fields["event_type"].default) for model in TOPIC_EVENTS[topic])
    if topic is Topic.dead_letter:
        return {
            "type": "object",
            "description": "A poison record's dead letter keeps the record's own headers besides these.",
            "properties": {
                EVENT_TYPE_HEADER: {"type": "string", "enum": ["dead-delivery", "poison-record"],
                                    "description": "The dead letter's kind, as in the body."},
                "eventId": {"type": "string", "description": "The poison record's eventId, or the dead letter's."},
                "tenantId": {"type": "string", "description": "The partner tenant, when known."},
                "dlq.reason": {"type": "string", "description": "Why, in one line (at most 1,000 characters)."},
                "dlq.source": {"type": "string",
                               "description": "`topic[partition]@offset`, or `delivery <id> to <channel>`."},
                "dlq.error": {"type": "string", "description": "The class of error, e.g. `ValidationError`."},
            },
            "required": [EVENT_TYPE_HEADER, "dlq.reason", "dlq.source", "dlq.error"],
        }
    return {
        "type": "object",
        "properties": {
            EVENT_TYPE_HEADER: {"type": "string", "enum": event_types, "description": "The body's eventType: a "
                                "consumer routes the record by it to the handler of its type before parsing it."},
            "eventId": {"type": "string", "format": "uuid", "description": "The body's eventId."},
            "tenantId": {"type": "string", "description": "The body's tenantId."},
            "content-type": {"type": "string", "const": "application/json"},
        },
        "required": [EVENT_TYPE_HEADER, "eventId", "tenantId", "content-type"],
    }


class AsyncAPIDocumentError(ValueError):
    """The service's broker and the contract tables disagree (a topic or a handler's model unknown)."""


def _logical_topic(address: str, topic_prefix: str) -> Topic:
    name = address.removeprefix(topic_prefix) if address.startswith(topic_prefix) else None
    try:
        return Topic(name)
    except ValueError:
        raise AsyncAPIDocumentError(
            f"topic {address!r} is not one of shared.events.Topic with the prefix {topic_prefix!r}") from None


def _receiver(model: type[BaseModel]) -> Any:
    async def receive(event: Any) -> None:
        return None

    # FastStream reads the payload's model from the handler's signature.
    receive.__annotations__ = {"event": model, "return": None}
    receive.__name__ = receive.__qualname__ = f"receive_{model.__name__}"
    return receive


def _sender(model: type[BaseModel]) -> Any:
    async def send() -> Any:
        return None

    # FastStream reads a publisher's payload from the return type of the functions it decorates.
    send.__annotations__ = {"return": model}
    send.__name__ = send.__qualname__ = f"send_{model.__name__}"
    return send


def _check_handlers(sub: Any, topic: Topic) -> None:
    """Every model a handler of ``sub`` takes (as FastStream infers it) is one ``topic`` carries."""
    carried = {model.__name__ for model in TOPIC_EVENTS[topic]}
    sub.schema()  # FastStream's own way to read its handlers (what it does at start, again, idempotently)
    for body, _ in sub.specification.get_payloads():
        title = str(body.get("title", ""))
        # A title with a colon is FastStream's name for a body that is no model (raw records, Any).
        if ":" not in title and title not in carried:
            raise AsyncAPIDocumentError(
                f"a handler of {sub.specification.config.title_ or topic.value!r} takes {title}, which "
                f"shared.asyncapi.TOPIC_EVENTS does not list on {topic.value!r}")


def _stand_in(broker: KafkaBroker, service: str, topic_prefix: str) -> tuple[KafkaBroker, dict[str, str]]:
    """A broker never started that FastStream can describe (see the module's docstring); also each of its
    subscribers' consumer groups, by title."""
    # One server per bootstrap address (FastStream would make "k1:9092,k2:9092" one host).
    hosts = [host.strip() for url in broker.specification.url for host in url.split(",") if host.strip()]
    stand_in = KafkaBroker(hosts, logger=None)
    groups: dict[str, str] = {}
    subscriptions = []
    for sub in broker.subscribers:
        if not sub.specification.include_in_schema:
            continue
        topics = sub.specification.topics
        for address in topics:
            topic = _logical_topic(address, topic_prefix)
            _check_handlers(sub, topic)
            title = sub.specification.config.title_ or f"{service}/{topic.value}"
            if len(topics) > 1:
                title = f"{title}:{address}"
            subscriptions.append((title, address, topic, sub.specification.description, sub.group_id))
    for title, address, topic, description, group_id in sorted(subscriptions, key=lambda s: (s[0], s[1])):
        stand_in_sub = stand_in.subscriber(address, group_id=group_id, title=title, description=description)
        for model in TOPIC_EVENTS[topic]:
            stand_in_sub(_receiver(model))
        if group_id:
            groups[title] = group_id
    try:
        publications = PUBLICATIONS[service]
    except KeyError:
        raise AsyncAPIDocumentError(f"no publications of service {service!r} in shared.asyncapi") from None
    # A FastStream publisher the service declares is described by PUBLICATIONS, never left out.
    for pub in broker.publishers:
        if pub.specification.include_in_schema and _logical_topic(pub.specification.topic, topic_prefix) not in (
                publications):
            raise AsyncAPIDocumentError(f"{service} declares a publisher of {pub.specification.topic!r}, which "
                                        "shared.asyncapi.PUBLICATIONS does not list")
    for topic in sorted(publications, key=lambda t: t.value):
        publisher = stand_in.publisher(f"{topic_prefix}{topic.value}", title=f"{service}/{topic.value}:publish",
                                       description=publications[topic])
        for model in TOPIC_EVENTS[topic]:
            publisher(_sender(model))
    return stand_in, groups


def _add_kafka_details(doc: dict[str, Any], topic_prefix: str, groups: Mapping[str, str]) -> None:
    """What FastStream does not know of the Kafka traffic: each message's headers and key, each consumer's group,
    each topic's cleanup policy and retention; and what it assumes wrongly: no record carries a
    ``correlation_id`` header (the outbox relays publish with the events' own headers)."""
    specs = {spec.topic: spec for spec in TOPIC_SPECS}
    message_topics: dict[str, Topic] = {}
    for channel in doc.get("channels", {}).values():
        topic = _logical_topic(channel["address"], topic_prefix)
        for message in channel.get("messages", {}).values():
            message_topics[message["$ref"].rsplit("/", 1)[-1]] = topic
        spec = specs.get(topic)
        if spec is not None:
            configuration: dict[str, Any] = {}
            if "cleanup.policy" in spec.config:
                configuration["cleanup.policy"] = spec.config["cleanup.policy"].split(",")
            if "retention.ms" in spec.config:
                configuration["retention.ms"] = int(spec.config["retention.ms"])
            if configuration:
                channel.setdefault("bindings", {}).setdefault("kafka", {})["topicConfiguration"] = configuration
    for name, message in doc.get("components", {}).get("messages", {}).items():
        topic = message_topics.get(name)
        if topic is not None:
            message["headers"] = _event_headers(topic)
            key = (_DEAD_LETTER_KEY if topic is Topic.dead_letter
                   else " or ".join(f"`{pattern}`" for pattern in TOPIC_KEYS[topic]))
            message["bindings"] = {"kafka": {"key": {"type": "string", "description": key},
                                             "bindingVersion": "0.4.0"}}
        payload = message.get("payload", {})
        if "oneOf" in payload:
            # Which of the models a record holds: its eventType (in the body, and as a header).
            payload["discriminator"] = "eventType"
        message.pop("correlationId", None)
    for name, operation in doc.get("operations", {}).items():
        if operation.get("action") == "receive" and name in groups:
            operation["bindings"] = {"kafka": {"groupId": {"type": "string", "enum": [groups[name]]},
                                               "bindingVersion": "0.4.0"}}


def document(broker: KafkaBroker, service: str, *, title: str | None = None, version: str = DOCUMENT_VERSION,
             description: str | None = None, topic_prefix: str = "") -> dict[str, Any]:
    """The AsyncAPI 3.0 document of ``service``'s Kafka traffic, as a JSON-able dict.

    ``broker`` is the service's (``shared.kafka.make_broker`` with its routers included): only read,
    never started. ``service`` is its Kafka client id (a key of :data:`PUBLICATIONS`); ``topic_prefix`` the
    deployment's ``KAFKA_TOPIC_PREFIX``. Raises :class:`AsyncAPIDocumentError` when a consumed topic or a
    handler's model is not in :data:`TOPIC_EVENTS`, and on any FastStream warning (two channels or two
    schemas of one name: one would hide the other).
    """
    default_title, default_description = SERVICES.get(service, (f"CSP alert triage: {service} events", ""))
    stand_in, groups = _stand_in(broker, service, topic_prefix)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        spec = AsyncAPI(stand_in, title=title or default_title, version=version,
                        description=description or default_description or None).to_specification()
        doc: dict[str, Any] = spec.to_jsonable()
    _add_kafka_details(doc, topic_prefix, groups)
    # Keys sorted (lists keep their order, made deterministic above): the same code, the same text.
    return json.loads(json.dumps(doc, sort_keys=True))


def to_json(doc: Mapping[str, Any]) -> str:
    """The document as the published file holds it: sorted keys, two-space indent, a final newline."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def to_yaml(doc: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(doc), sort_keys=True, allow_unicode=True, width=120)


class _Rendered:
    """What FastStream's HTML page reads of a specification: its title and JSON."""

    def __init__(self, doc: Mapping[str, Any]) -> None:
        self.title = doc["info"]["title"]
        # Inside a <script>: a "</" in a description must not end it.
        self._json = json.dumps(doc, sort_keys=True).replace("</", "<\\/")

    def to_json(self) -> str:
        return self._json


def asyncapi_routes(broker: KafkaBroker, service: str, *, title: str | None = None, version: str = DOCUMENT_VERSION,
                    description: str | None = None, topic_prefix: str = "") -> APIRouter:
    """``GET /asyncapi.json``, ``/asyncapi.yaml`` and ``/asyncapi`` (FastStream's HTML page, which loads
    its viewer from unpkg.com), none in the OpenAPI document. The document is built here, once: the
    broker's subscribers are all included by then, and a disagreement with the contract tables stops
    the process at start, not at the first request."""
    doc = document(broker, service, title=title, version=version, description=description,
                   topic_prefix=topic_prefix)
    as_json = to_json(doc).encode()
    as_yaml = to_yaml(doc).encode()
    as_html = get_asyncapi_html(_Rendered(doc), try_it_out_path=None)  # type: ignore[arg-type]
    router = APIRouter(include_in_schema=False)

    @router.get("/asyncapi.json")
    async def asyncapi_json() -> Response:
        return Response(as_json, media_type="application/json")

    @router.get("/asyncapi.yaml")
    async def asyncapi_yaml() -> Response:
        return Response(as_yaml, media_type="application/yaml")

    @router.get("/asyncapi")
    async def asyncapi_html() -> HTMLResponse:
        return HTMLResponse(as_html)

    return router
