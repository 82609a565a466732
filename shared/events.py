"""Event contracts: one envelope, one typed model per event type, the topics that carry them.

Every event has ``eventId``, ``eventType``, ``schemaVersion``, ``occurredDateTime`` and
``tenantId`` (SPEC §6), then its own fields beside them. ``eventType`` also travels as a Kafka
header so a consumer can route a record to the handler of its type before parsing the body.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

from pydantic import BeforeValidator, Field, PrivateAttr, model_validator

from shared.alerts import Alert
from shared.channels import ChannelKind
from shared.wire import UtcDateTime, WireModel, utcnow

EVENT_TYPE_HEADER = "eventType"


class Topic(StrEnum):
    """Logical topic names; the deployed name is ``KAFKA_TOPIC_PREFIX`` + this value."""

    alerts = "alerts"
    requirement_status = "requirement-status"
    security_contacts = "security-contacts"
    score_changes = "score-changes"
    notifications = "notifications"
    dead_letter = "dead-letter"
    # State that crosses services (#11): each has one owner that publishes it; the others rebuild
    # their copy or read model from it.
    notification_channels = "notification-channels"
    customer_mfa = "customer-mfa"
    alert_response_times = "alert-response-times"
    deliveries = "deliveries"
    delivery_commands = "delivery-commands"
    # Each alert's sync state with Partner Center (#12): owner ingest (its Graph connector).
    alert_sync = "alert-sync"
    # Each tenant's escalation chain (#13): owner ingest (the write API); consumer the notifier.
    escalation_chains = "escalation-chains"
    # Each alert's triage (#18): who it is assigned to, and its notes; owner ingest (the write API).
    # Never sent to Partner Center, never a response: the clock keeps running.
    alert_triage = "alert-triage"
    # Tenants offboarded (#18): owner ingest (the write API, an operator's request); every service
    # deletes what it holds of the tenant and tombstones the compacted keys it published for it.
    tenants = "tenants"


class Event(WireModel):
    """The envelope every event shares."""

    event_id: UUID = Field(default_factory=uuid4, description="Unique id; consumers drop ids already applied.")
    event_type: str = Field(description="What happened, e.g. `alert-created`.")
    schema_version: int = Field(1, description="Version of this event type's schema.")
    occurred_date_time: UtcDateTime = Field(default_factory=utcnow, description="When it happened (UTC).")
    tenant_id: str = Field(min_length=1, description="The partner tenant it concerns.")

    def kafka_key(self) -> bytes:
        """Records of one key keep their order; each event type says what its key is."""
        return self.tenant_id.encode()

    def record_value(self) -> bytes:
        """The Kafka record's value: the event's JSON."""
        return self.model_dump_json().encode()


# --- alerts topic: key tenant:alertId ---------------------------------------------------------


class ActorType(StrEnum):
    user = "user"
    system = "system"


class Actor(WireModel):
    """Who made a change. An empty ``updatedBy`` or the value ``system`` is the system."""

    type: ActorType = Field(description="`user` (a partner person or ticketing user) or `system`.")
    id: str | None = Field(None, description="User id or name; null for the system.")


class FieldChange(WireModel):
    field: str = Field(description="camelCase name of the changed alert field.")
    from_: Any = Field(None, alias="from", description="Value before the change.")
    to: Any = Field(None, description="Value after the change.")


class StatusChange(WireModel):
    """One change of ``status`` or ``resolvedReason``, with its own actor and time (SPEC §3)."""

    field: Literal["status", "resolvedReason"]
    from_: str | None = Field(None, alias="from")
    to: str | None = None
    actor: Actor
    changed_date_time: UtcDateTime


class _CarriesAlert(Event):
    """An event whose ``alert`` is an alert's whole state: the biggest part of its JSON, which its writer
    has often made already (the write API hashes it for the event's id and stores it as the alert's
    state). Told that text (:meth:`keep_alert_json`), the event writes it into its record instead of
    serialising the alert again: one serialisation of the alert per event instead of three was ~15% of
    the write API's time on lists of alerts (#15)."""

    # Each subclass declares its ``alert`` field itself (its description, its place among its fields).
    # (the alert object the text was made of, its JSON): used only while ``alert`` is that very object.
    _alert_json: tuple[Alert, str] | None = PrivateAttr(None)

    def keep_alert_json(self, text: str) -> None:
        """``text`` is ``self.alert.model_dump_json()``, made by the caller: kept, not made again."""
        self._alert_json = (self.alert, text)

    def alert_json(self) -> str:
        """``self.alert.model_dump_json()``, made once."""
        kept = self._alert_json
        if kept is None or kept[0] is not self.alert:
            kept = self._alert_json = (self.alert, self.alert.model_dump_json())
        return kept[1]

    def record_value(self) -> bytes:
        # The same JSON as model_dump_json() with the alert's text as the last member, not serialised anew.
        head = self.model_dump_json(exclude={"alert"})
        return f'{head[:-1]},"alert":{self.alert_json()}}}'.encode()


class AlertCreated(_CarriesAlert):
    event_type: Literal["alert-created"] = "alert-created"
    alert: Alert = Field(description="The alert as first seen.")
    ingested_date_time: UtcDateTime = Field(
        default_factory=utcnow, description="When this system first saw it; the clock's start if no detection time."
    )
    status_changes: list[StatusChange] = Field(
        default_factory=list,
        description="Status changes already recorded in the alert's activity logs when first seen.",
    )

    def kafka_key(self) -> bytes:
        return f"{self.tenant_id}:{self.alert.id}".encode()


class AlertUpdated(_CarriesAlert):
    event_type: Literal["alert-updated"] = "alert-updated"
    alert_id: str
    changes: list[FieldChange] = Field(description="Every field that changed, from and to.")
    status_changes: list[StatusChange] = Field(
        default_factory=list, description="The changes of status or resolvedReason, each with actor and time."
    )
    actor: Actor = Field(description="Who made the change (the latest actor when several).")
    changed_date_time: UtcDateTime = Field(description="When the change was made (UTC).")
    alert: Alert = Field(description="The alert after the change.")

    def kafka_key(self) -> bytes:
        return f"{self.tenant_id}:{self.alert_id}".encode()


AlertEvent = Annotated[AlertCreated | AlertUpdated, Field(discriminator="event_type")]


# --- requirement-status topic: key tenant:requirementType (compacted) ---------------------------


class ComplianceStatus(StrEnum):
    compliant = "compliant"
    noncompliant = "noncompliant"


def _compliance(value: Any) -> Any:
    # Graph's wire spelling is `noncomplaint`; accept it and any casing.
    if isinstance(value, str):
        key = value.strip().lower()
        return {"noncomplaint": "noncompliant"}.get(key, key)
    return value


class RequirementStatusObserved(Event):
    event_type: Literal["requirement-status-observed"] = "requirement-status-observed"
    requirement_type: str = Field(min_length=1, description="e.g. `mfaEnforcedForAdmins`.")
    compliance_status: Annotated[ComplianceStatus, BeforeValidator(_compliance)] = Field(
        description="compliant | noncompliant (`noncomplaint` accepted)."
    )
    observed_date_time: UtcDateTime = Field(description="When the status was observed; the newest wins.")
    source: str = Field(description="What observed it, e.g. `response-time`, `admin-mfa-report`.")
    insights: dict[str, Any] = Field(default_factory=dict, description="Figures behind the status.")

    def kafka_key(self) -> bytes:
        return f"{self.tenant_id}:{self.requirement_type}".encode()


# --- security-contacts topic: key tenant (compacted) ---------------------------------------------


class SecurityContact(WireModel):
    name: str = Field(description="A person or a group.")
    email: str
    phone: str | None = Field(None, description="E.164, e.g. +442071234567.")


class SecurityContactChanged(Event):
    event_type: Literal["security-contact-changed"] = "security-contact-changed"
    contact: SecurityContact | None = Field(description="The contact now in force; null once cleared.")
    actor: Actor


# --- score-changes topic: key tenant ---------------------------------------------------------------


class ScoreChanged(Event):
    event_type: Literal["score-changed"] = "score-changed"
    current_score: float
    projected_score: float
    previous_score: float | None = None
    compliant_requirements_count: int
    total_requirements_count: int


# --- notifications topic: key tenant:customer ------------------------------------------------------


class SpendingBudgetThresholdReached(Event):
    event_type: Literal["spending-budget-threshold-reached"] = "spending-budget-threshold-reached"
    customer_tenant_id: str
    customer_name: str | None = None
    month: str = Field(pattern=r"^\d{4}-\d{2}$", description="Budget month, YYYY-MM.")
    budget: float
    spend: float
    threshold_percent: int = 80

    def kafka_key(self) -> bytes:
        return f"{self.tenant_id}:{self.customer_tenant_id}".encode()


# --- notification-channels topic: key tenant:name (compacted); owner: ingest (the write API) ------------


class ChannelConfig(WireModel):
    """A channel as the write API stores it; its secrets travel sealed (``shared.sealed``).

    A webhook channel has a secret; a Teams channel has none (Teams verifies no signature: its URL is
    its credential). An event of before #13 names no kind: a webhook.
    """

    kind: ChannelKind = Field(
        ChannelKind.webhook,
        description="`webhook`: the signed JSON; `teams`: an Adaptive Card (no secret). Absent: `webhook`.",
    )
    url: str = Field(description="Where deliveries are POSTed.")
    secret: str | None = Field(
        None,
        description="The Standard Webhooks signing secret, sealed with the deployment's key; "
        "required for a webhook channel, null for a Teams channel.",
    )
    previous_secret: str | None = Field(
        None, description="The secret it replaced, sealed, still signing beside it until `previousSecretUntil`."
    )
    previous_secret_until: UtcDateTime | None = Field(None, description="End of the rotation overlap.")
    routes: list[dict[str, Any]] = Field(
        default_factory=list, description="Routing rules (`shared.channels.Route`); none: every alert."
    )
    escalation: bool = Field(False, description="Also receives escalations.")

    @model_validator(mode="after")
    def _secrets_fit_the_kind(self) -> ChannelConfig:
        if self.kind is ChannelKind.webhook and not self.secret:
            raise ValueError("a webhook channel needs its signing secret")
        if self.kind is ChannelKind.teams and (self.secret or self.previous_secret):
            raise ValueError("a Teams channel has no signing secret")
        return self


class NotificationChannelChanged(Event):
    event_type: Literal["notification-channel-changed"] = "notification-channel-changed"
    name: str = Field(min_length=1, description="The channel's name within its tenant.")
    channel: ChannelConfig | None = Field(description="The channel now in force; null once deleted.")

    def kafka_key(self) -> bytes:
        return f"{self.tenant_id}:{self.name}".encode()


# --- customer-mfa topic: key tenant:customer (compacted); owner: ingest -----------------------------


class CustomerMfaObserved(Event):
    """One customer's figures from the tenant's latest customer-MFA report (SPEC §4)."""

    event_type: Literal["customer-mfa-observed"] = "customer-mfa-observed"
    customer_tenant_id: str = Field(min_length=1)
    customer_name: str
    admins: int = Field(ge=0)
    admins_with_mfa: int = Field(ge=0)
    non_admins_with_mfa: int = Field(ge=0)
    total_users: int = Field(ge=0)
    observed_date_time: UtcDateTime = Field(description="When the report was observed; the newest wins.")

    def kafka_key(self) -> bytes:
        return f"{self.tenant_id}:{self.customer_tenant_id}".encode()


class CustomerMfaRemoved(Event):
    """A customer the tenant's latest customer-MFA report no longer contains (the report replaces the last)."""

    event_type: Literal["customer-mfa-removed"] = "customer-mfa-removed"
    customer_tenant_id: str = Field(min_length=1)
    observed_date_time: UtcDateTime = Field(
        description="When the report that left it out was observed; the newest wins."
    )

    def kafka_key(self) -> bytes:
        return f"{self.tenant_id}:{self.customer_tenant_id}".encode()


# --- alert-response-times topic: key tenant:alert (compacted); owner: response time -----------------


class AlertResponseTimeChanged(Event):
    """An alert as the response-time service now knows it: its state, clock and first response (SPEC §3)."""

    event_type: Literal["alert-response-time-changed"] = "alert-response-time-changed"
    alert_id: str
    alert: dict[str, Any] = Field(description="The alert's latest known state, as received (SPEC §2 fields).")
    status: str = Field(description="active | investigating | resolved.")
    is_test: bool = Field(description="A test alert never counts toward the average.")
    clock_started_date_time: UtcDateTime = Field(description="Detection time, else first seen.")
    responded_date_time: UtcDateTime | None = Field(None, description="The first partner response.")
    responded_by: str | None = Field(None, description="Who responded first.")
    latency_us: int | None = Field(None, description="Response latency in microseconds; null while unanswered.")

    def kafka_key(self) -> bytes:
        return f"{self.tenant_id}:{self.alert_id}".encode()


# --- deliveries topic: key tenant:deliveryId (compacted); owner: notifier ---------------------------


class DeliveryView(WireModel):
    """One notification and its last attempt, as the notifier's delivery log holds it."""

    id: UUID = Field(description="Delivery id; also the Idempotency-Key receivers dedupe by.")
    alert_id: str | None = None
    subject: str = Field(
        description="The alert id, spending:<customer>:<month>, warning:<requirement>:<reason>:<time>, or "
        "digest:<its first alert id>."
    )
    channel: str = Field(
        description="email:contact | email:escalation | email:to:<address> (a chain's step) | webhook:<name>."
    )
    kind: str = Field(description="alert | reminder | escalation | spending | warning | digest.")
    state: str = Field(
        description="pending | delivered | dead | skipped | cancelled | grouped (an alert's message went in a "
        "storm's digest: `digestId`)."
    )
    recipient: str | None = None
    attempts: int = 0
    redeliveries: int = 0
    next_attempt_date_time: UtcDateTime | None = None
    last_attempt_date_time: UtcDateTime | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    delivered_date_time: UtcDateTime | None = None
    dead_lettered_date_time: UtcDateTime | None = None
    created_date_time: UtcDateTime
    digest_id: UUID | None = Field(
        None, description="The digest delivery that carried a grouped alert's message (a storm of new alerts)."
    )


class DeliveryChanged(Event):
    event_type: Literal["delivery-changed"] = "delivery-changed"
    delivery: DeliveryView

    def kafka_key(self) -> bytes:
        return f"{self.tenant_id}:{self.delivery.id}".encode()


class GroupedDelivery(WireModel):
    """One alert's delivery on the digest's channel, logged grouped."""

    id: UUID = Field(description="Delivery id.")
    alert_id: str = Field(description="The alert (the delivery's subject).")


class DeliveriesGrouped(Event):
    """New alerts of a storm a digest took in: each alert's delivery on the digest's channel, logged
    `grouped` in one transaction (#15: one event for them, not a `delivery-changed` each). Each stands for
    the `delivery-changed` of its delivery (`changes()`); a grouped delivery changes no more."""

    event_type: Literal["deliveries-grouped"] = "deliveries-grouped"
    digest_id: UUID = Field(description="The digest delivery that carries the alerts' messages.")
    channel: str = Field(description="The digest's channel, and each grouped delivery's.")
    created_date_time: UtcDateTime = Field(description="When the deliveries were logged (each one's creation).")
    deliveries: list[GroupedDelivery] = Field(min_length=1, description="The grouped deliveries, in order.")

    def kafka_key(self) -> bytes:
        # Its first delivery's key: the tombstone an offboarding gives that key on the compacted topic
        # deletes this record too, and no other record of the key comes (a grouped delivery changes no more).
        return f"{self.tenant_id}:{self.deliveries[0].id}".encode()

    def changes(self) -> list[DeliveryChanged]:
        """The ``delivery-changed`` each grouped delivery stands for, as the notifier's log shows it (no
        attempt: never sent alone), with this event's id and time."""
        # Built of this event's checked fields, not checked again; and each a copy of one built once, with
        # what differs set (model_construct per delivery cost ~21 us, a copy ~8: #15, a storm's thousands).
        first = self.deliveries[0]
        view = DeliveryView.model_construct(
            id=first.id, alert_id=first.alert_id, subject=first.alert_id, channel=self.channel, kind="alert",
            state="grouped", created_date_time=self.created_date_time, digest_id=self.digest_id)
        change = DeliveryChanged.model_construct(
            event_id=self.event_id, occurred_date_time=self.occurred_date_time, tenant_id=self.tenant_id,
            delivery=view)
        return [
            change.model_copy(update={"delivery": view.model_copy(
                update={"id": grouped.id, "alert_id": grouped.alert_id, "subject": grouped.alert_id})})
            for grouped in self.deliveries
        ]

    def alert_ids(self) -> list[str]:
        """The alerts of the grouped deliveries, in order (what a reader that needs no more asks)."""
        return [grouped.alert_id for grouped in self.deliveries]


def delivery_changes(events: Sequence[DeliveryChanged | DeliveriesGrouped]) -> list[DeliveryChanged]:
    """The ``delivery-changed`` events a batch of the ``deliveries`` topic stands for, in order."""
    return [change for event in events
            for change in (event.changes() if isinstance(event, DeliveriesGrouped) else (event,))]


# --- delivery-commands topic: key tenant:deliveryId; owner of the command: ingest --------------------


class RedeliveryRequested(Event):
    """Someone asked for a dead delivery to be tried again (the notifier ignores it unless still dead)."""

    event_type: Literal["redelivery-requested"] = "redelivery-requested"
    delivery_id: UUID
    actor: Actor

    def kafka_key(self) -> bytes:
        return f"{self.tenant_id}:{self.delivery_id}".encode()


# --- escalation-chains topic: key tenant (compacted); owner: ingest (the write API) -------------------


class EscalationStep(WireModel):
    """One step of a tenant's escalation chain: who is told, how long after the alert's detection
    (if it is still unanswered then). Exactly one of ``email`` and ``channel``."""

    after_minutes: int = Field(ge=0, le=7 * 24 * 60, description="Minutes after the alert's detection.")
    email: str | None = Field(None, description="An e-mail address to tell.")
    channel: str | None = Field(None, description="The name of one of the tenant's channels to tell.")


class EscalationChainChanged(Event):
    """A tenant's escalation chain was set (``steps``, in order) or removed (``steps`` null: the
    deployment's default escalation applies again)."""

    event_type: Literal["escalation-chain-changed"] = "escalation-chain-changed"
    steps: list[EscalationStep] | None = Field(description="The chain, in order; null when removed.")


# --- alert-sync topic: key tenant:alertId (compacted); owner: ingest (the Graph connector) ----------


class PartnerCenterSyncState(StrEnum):
    """Where an alert stands with its copy in Partner Center (Microsoft Graph)."""

    synced = "synced"  # Partner Center's copy has our last response (or we have its last change)
    pending = "pending"  # a response recorded here waits to be written back (Graph down, throttling)
    failed = "failed"  # Partner Center refused the write-back for good (see lastError)


class PartnerCenterSync(WireModel):
    """An alert's sync state with Partner Center, as the read API shows it beside the alert."""

    state: PartnerCenterSyncState
    last_synced_date_time: UtcDateTime | None = Field(
        None, description="When the copies were last brought in step: the alert first seen in Partner Center, a "
        "change of Partner Center's taken here, or a write-back Partner Center accepted (a poll that finds nothing "
        "new does not move it)."
    )
    pending_status: str | None = Field(None, description="The status waiting to be written back, while pending.")
    attempts: int = Field(0, ge=0, description="Write-back attempts of the pending or failed change.")
    last_error: str | None = Field(None, description="Why the last write-back failed (a refusal, while failed).")


class AlertSyncChanged(Event):
    """An alert's sync state with Partner Center changed (it was polled, or a write-back moved on)."""

    event_type: Literal["alert-sync-changed"] = "alert-sync-changed"
    alert_id: str = Field(min_length=1)
    sync: PartnerCenterSync

    def kafka_key(self) -> bytes:
        return f"{self.tenant_id}:{self.alert_id}".encode()


# --- alert-triage topic (compacted): owner ingest (#18) --------------------------------------------------
# An assignment is keyed tenant:alert:assignee (the latest is the alert's assignee); a note
# tenant:alert:note:<noteId> (each note kept). Neither is a response to the alert.


class AlertAssigned(Event):
    """An alert was assigned to a person, or unassigned (``assignee`` null). Not a response: the
    Partner Center clock keeps running unless the status changes."""

    event_type: Literal["alert-assigned"] = "alert-assigned"
    alert_id: str = Field(min_length=1)
    assignee: str | None = Field(description="The person's e-mail address; null: unassigned.")
    previous_assignee: str | None = Field(None, description="Who it was assigned to before; null: nobody.")
    actor: Actor = Field(description="Who assigned it.")

    def kafka_key(self) -> bytes:
        return f"{self.tenant_id}:{self.alert_id}:assignee".encode()


class AlertNoteAdded(Event):
    """A free-text note on an alert, for the people triaging it (the next shift). Never sent to
    Partner Center."""

    event_type: Literal["alert-note-added"] = "alert-note-added"
    alert_id: str = Field(min_length=1)
    note_id: UUID = Field(description="The note's id (one note per id).")
    text: str = Field(
        min_length=1, max_length=4000, description="The note; no control characters but line breaks and tabs."
    )
    author: Actor = Field(description="Who wrote it.")

    def kafka_key(self) -> bytes:
        return f"{self.tenant_id}:{self.alert_id}:note:{self.note_id}".encode()


# --- tenants topic (compacted, key tenant): owner ingest (#18) -----------------------------------------


class TenantOffboarded(Event):
    """An operator offboarded the tenant: every service deletes all it holds of it (rows, Redis keys),
    tombstones the keys of compacted topics it published for it, and from then on drops any event of
    it (one still in flight, or replayed by a rebuild from the topics). The tenant id stays retired."""

    event_type: Literal["tenant-offboarded"] = "tenant-offboarded"
    actor: Actor = Field(description="The operator who offboarded it.")

    def kafka_key(self) -> bytes:
        return self.tenant_id.encode()


# --- dead-letter topic -------------------------------------------------------------------------------
# Its records are not events of this module: every dead letter, a poison record or a dead delivery,
# is one envelope, shared.dead_letters.DeadLetter.
