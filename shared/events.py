"""Event contracts: one envelope, one typed model per event type, the topics that carry them.

Every event has ``eventId``, ``eventType``, ``schemaVersion``, ``occurredDateTime`` and
``tenantId`` (SPEC §6), then its own fields beside them. ``eventType`` also travels as a Kafka
header so a consumer can route a record to the handler of its type before parsing the body.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

from pydantic import BeforeValidator, Field

from shared.alerts import Alert
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


class AlertCreated(Event):
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


class AlertUpdated(Event):
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


# --- dead-letter topic -------------------------------------------------------------------------------
# Its records are not events of this module: every dead letter, a poison record or a dead delivery,
# is one envelope, shared.dead_letters.DeadLetter.
