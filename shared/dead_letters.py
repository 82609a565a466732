"""Dead letters: one envelope and one way to publish it, for every service.

Two things end up on the ``dead-letter`` topic: a *poison record* (a record a consumer can never
apply: not decodable, not its event model) and a *dead delivery* (a notification that exhausted
its retries or met a permanent refusal). Both travel as one :class:`DeadLetter`, whose
``eventType`` says which, published by :func:`publish_dead_letter` with the ``dlq.*`` headers
operators' tools read.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from shared.metrics import count_dead_letter
from shared.wire import OptionalUtcDateTime, UtcDateTime, utcnow

log = logging.getLogger(__name__)

POISON_RECORD = "poison-record"
DEAD_DELIVERY = "dead-delivery"
DeadLetterKind = Literal["poison-record", "dead-delivery"]

# Most a dead letter waits for the broker's acknowledgement; past it the caller does not commit
# (a poison record) or keeps it to publish (a dead delivery), so nothing is lost.
DEAD_LETTER_PUBLISH_TIMEOUT_SECONDS = 10.0

# Ids derived from what was dead-lettered, so the same dead letter published twice (a crash between
# publish and commit) has the same eventId and a consumer can drop the second.
_POISON_NAMESPACE = uuid.UUID("4f1d3c2a-8b6e-4e0f-9a57-2c1b0d9e6f83")

_HEADER_TEXT_LIMIT = 1000


class _Envelope(BaseModel):
    # Not shared.wire.WireModel: a dead letter carries whatever the bad record held, NUL included
    # (that model refuses text PostgreSQL cannot store); it is never stored, only published.
    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, validate_by_alias=True, serialize_by_alias=True,
        extra="ignore",
    )


class PoisonRecord(_Envelope):
    """The record a consumer refused, as it was on its topic."""

    topic: str = Field(description="The topic the record was read from (with its prefix).")
    partition: int = Field(description="Its partition.")
    offset: int = Field(description="Its offset in that partition.")
    key: str | None = Field(None, description="Its key as text (undecodable bytes replaced), or null.")
    headers: dict[str, str] = Field(default_factory=dict, description="Its headers, as text.")
    value: str | None = Field(
        description="Its bytes: the text when they are UTF-8, else base64 (see `valueEncoding`); null when empty.")
    value_encoding: Literal["utf-8", "base64"] = Field(
        "utf-8", description="`utf-8`: `value` is the text itself; `base64`: decode `value` to get the bytes.")

    def original_bytes(self) -> bytes:
        if self.value is None:
            return b""
        return base64.b64decode(self.value) if self.value_encoding == "base64" else self.value.encode()


class DeadDelivery(_Envelope):
    """The notifier's view of a delivery that went dead."""

    delivery_id: str = Field(description="The delivery (redeliver it with `POST .../deliveries/{id}/redeliver`).")
    alert_id: str | None = Field(None, description="The alert it was about, if any (a spending one has none).")
    channel: str = Field(description="Where it was going: `email:contact`, `webhook:<name>`, ...")
    kind: str = Field(description="`alert`, `reminder`, `escalation`, `spending`, `warning` or `digest`.")
    attempts: int = Field(description="Attempts made.")
    last_error: str = Field(description="What the last attempt met, e.g. `HTTP 400`.")
    last_attempt_date_time: OptionalUtcDateTime = Field(None, description="When the last attempt was made (UTC).")


class DeadLetter(_Envelope):
    """One dead letter. The SPEC §6 envelope (eventId, eventType, schemaVersion, occurredDateTime,
    tenantId), where ``eventType`` is the kind, then why and what: exactly one of ``record`` (a
    poison record) and ``delivery`` (a dead delivery)."""

    event_id: uuid.UUID = Field(
        description="Derived from what was dead-lettered: the same dead letter published twice has the same id.")
    event_type: DeadLetterKind = Field(
        description="The kind: `poison-record` (a consumer refused a record) or `dead-delivery` (a notification "
        "that exhausted its retries or met a permanent refusal).")
    schema_version: int = Field(1, description="Version of this envelope's schema.")
    occurred_date_time: UtcDateTime = Field(default_factory=utcnow, description="When it was dead-lettered (UTC).")
    tenant_id: str | None = Field(None, description="The partner tenant it concerns, when known.")
    reason: str = Field(description="Why, in one line (the validation error, `HTTP 400`, ...).")
    error_type: str = Field(
        description="The class of error: `ValidationError`, `PoisonEvent`, ... for a record, `DeliveryFailed` "
        "for a delivery.")
    source: str = Field(
        description="Where it came from, in one line: `topic[partition]@offset` for a record, "
        "`delivery <id> to <channel>` for a delivery (also the `dlq.source` header).")
    consumer: str | None = Field(None, description="The service that refused the record (a poison record only).")
    record: PoisonRecord | None = Field(None, description="The refused record, for a poison record.")
    delivery: DeadDelivery | None = Field(None, description="The dead delivery, for a dead delivery.")

    @property
    def kind(self) -> DeadLetterKind:
        return self.event_type

    @model_validator(mode="after")
    def _one_payload_of_its_kind(self) -> DeadLetter:
        if self.event_type == POISON_RECORD and (self.record is None or self.delivery is not None):
            raise ValueError("a poison-record dead letter carries `record` and no `delivery`")
        if self.event_type == DEAD_DELIVERY and (self.delivery is None or self.record is not None):
            raise ValueError("a dead-delivery dead letter carries `delivery` and no `record`")
        return self

    def headers(self) -> dict[str, str]:
        """The record's headers: ``eventType`` (the kind) and the ``dlq.*`` ones. A poison record keeps
        its own headers besides (its eventId and tenantId find it); a dead delivery has the eventId
        and tenantId of its dead letter, as every event has."""
        if self.record is not None:
            headers = dict(self.record.headers)
        else:
            headers = {"eventId": str(self.event_id)}
            if self.tenant_id:
                headers["tenantId"] = self.tenant_id
        headers.update({"eventType": self.event_type, "dlq.reason": self.reason[:_HEADER_TEXT_LIMIT],
                        "dlq.source": self.source, "dlq.error": self.error_type})
        return headers

    def kafka_key(self) -> bytes | None:
        """A poison record keeps its own key; a dead delivery is keyed by its tenant."""
        if self.record is not None:
            return self.record.key.encode() if self.record.key is not None else None
        return self.tenant_id.encode() if self.tenant_id else None


class ConsumedRecord(Protocol):
    """What a consumed Kafka record offers (aiokafka's ConsumerRecord)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Any  # a sequence of (name, bytes) pairs


def one_line(exc: BaseException) -> str:
    # FastDepends' message error wraps pydantic's, whose text names the fields at fault.
    return " ".join(str(getattr(exc, "original_error", None) or exc).split())


def poison_record(record: ConsumedRecord, exc: BaseException, *, consumer: str) -> DeadLetter:
    """The dead letter of a record ``consumer`` can never apply. Never raises on what the record holds."""
    headers = {name: (value or b"").decode(errors="replace") for name, value in (record.headers or ())}
    value, encoding = _as_text(record.value)
    source = f"{record.topic}[{record.partition}]@{record.offset}"
    return DeadLetter(
        event_id=uuid.uuid5(_POISON_NAMESPACE, f"{consumer}:{source}"),
        event_type=POISON_RECORD,
        tenant_id=headers.get("tenantId") or None,
        reason=one_line(exc),
        error_type=type(exc).__name__,
        source=source,
        consumer=consumer,
        record=PoisonRecord(
            topic=record.topic, partition=record.partition, offset=record.offset,
            key=record.key.decode(errors="replace") if record.key is not None else None,
            headers=headers, value=value, value_encoding=encoding,
        ),
    )


def dead_delivery(
    *, event_id: uuid.UUID, tenant_id: str, delivery_id: str, alert_id: str | None, channel: str, kind: str,
    attempts: int, last_error: str, last_attempt_date_time: datetime | None,
) -> DeadLetter:
    """The dead letter of a delivery that went dead (``event_id``: the notifier's id of that death)."""
    return DeadLetter(
        event_id=event_id,
        event_type=DEAD_DELIVERY,
        tenant_id=tenant_id,
        reason=last_error,
        error_type="DeliveryFailed",
        source=f"delivery {delivery_id} to {channel}",
        delivery=DeadDelivery(
            delivery_id=delivery_id, alert_id=alert_id, channel=channel, kind=kind, attempts=attempts,
            last_error=last_error, last_attempt_date_time=last_attempt_date_time,
        ),
    )


class Publisher(Protocol):
    async def publish(self, message: Any, *, topic: str, key: bytes | None, headers: dict[str, str]) -> Any: ...


async def publish_dead_letter(
    broker: Publisher, topic: str, letter: DeadLetter, *, timeout: float = DEAD_LETTER_PUBLISH_TIMEOUT_SECONDS
) -> None:
    """The one way to publish a dead letter: waits for the broker's acknowledgement at most ``timeout``
    seconds, then raises TimeoutError (the caller keeps what it was dead-lettering: nothing is lost)."""
    # A poison record is a fault to look at; a dead delivery is already logged by the notifier.
    level = logging.ERROR if letter.event_type == POISON_RECORD else logging.INFO
    log.log(level, "%s at %s sent to %s: %s", letter.event_type, letter.source, topic, letter.reason)
    async with asyncio.timeout(timeout):
        await broker.publish(letter.model_dump_json().encode(), topic=topic, key=letter.kafka_key(),
                             headers=letter.headers())
    if letter.record is not None:  # csp_dead_letters_total: once the broker has it
        count_dead_letter(letter.consumer or "unknown", letter.record.topic)


def _as_text(value: bytes | None) -> tuple[str | None, Literal["utf-8", "base64"]]:
    if not value:
        return None, "utf-8"
    try:
        return value.decode(), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(value).decode(), "base64"
