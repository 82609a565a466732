"""The partner security alert of SPEC §2 (Graph's ``partnerSecurityAlert``), parsed tolerantly.

Real feeds are messy: ``isTest`` may be a string, timestamps may lack an offset, the older Partner
Center feed writes ``"None"`` and ``9999-12-31T23:59:59.997`` for "not resolved", enum values
unknown today must be kept (as ``unknownFutureValue``) rather than rejected.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import AliasChoices, BeforeValidator, Field
from pydantic.alias_generators import to_camel

from shared.wire import OptionalUtcDateTime, WireModel


class AlertStatus(StrEnum):
    active = "active"
    investigating = "investigating"
    resolved = "resolved"
    unknownFutureValue = "unknownFutureValue"


class ResolvedReason(StrEnum):
    legitimate = "legitimate"
    ignore = "ignore"
    fraud = "fraud"
    unknownFutureValue = "unknownFutureValue"


class Severity(StrEnum):
    informational = "informational"
    low = "low"
    medium = "medium"
    high = "high"
    unknownFutureValue = "unknownFutureValue"


class ConfidenceLevel(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"
    unknownFutureValue = "unknownFutureValue"


# Spellings seen in older feeds that mean a known value.
_ENUM_SYNONYMS = {"inprogress": "investigating", "in_progress": "investigating", "new": "active"}


def _tolerant_enum(enum: type[StrEnum], *, none_words: frozenset[str] = frozenset()):
    by_lower = {member.value.lower(): member for member in enum}

    def parse(value: Any) -> Any:
        if value is None or isinstance(value, enum):
            return value
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {type(value).__name__}")
        key = value.strip().lower()
        if key == "" or key in none_words:
            return None
        key = _ENUM_SYNONYMS.get(key, key)
        return by_lower.get(key, enum.unknownFutureValue)

    return BeforeValidator(parse)


_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f", ""}


def _tolerant_bool(value: Any) -> Any:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        key = value.strip().lower()
        if key in _TRUE:
            return True
        if key in _FALSE:
            return False
    raise ValueError(f"not a boolean: {value!r}")


def _none_word_to_none(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in {"", "none", "null"}:
        return None
    return value


def _integer_to_text(value: Any) -> Any:
    # Some feeds number their events; an id is still text.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


StatusField = Annotated[AlertStatus | None, _tolerant_enum(AlertStatus)]
ResolvedReasonField = Annotated[
    ResolvedReason | None, _tolerant_enum(ResolvedReason, none_words=frozenset({"none", "null"}))
]
SeverityField = Annotated[Severity | None, _tolerant_enum(Severity)]
ConfidenceField = Annotated[ConfidenceLevel | None, _tolerant_enum(ConfidenceLevel)]
TolerantBool = Annotated[bool, BeforeValidator(_tolerant_bool)]
OptionalText = Annotated[str | None, BeforeValidator(_none_word_to_none)]


class AffectedResource(WireModel):
    resource_id: str | None = Field(None, description="Id of the affected resource.")
    resource_type: str | None = Field(None, description="Type of the affected resource.")


class ActivityLog(WireModel):
    """One change of an alert's status, as Partner Center records it."""

    status_from: StatusField = Field(None, description="Status before the change.")
    status_to: StatusField = Field(None, description="Status after the change.")
    updated_by: str | None = Field(None, description="Who made the change; empty or `system` is the system.")
    updated_date_time: OptionalUtcDateTime = Field(None, description="When the change was made (UTC).")


class Alert(WireModel):
    """A partner security alert. The owning partner tenant comes from the URL, not from here."""

    id: Annotated[
        str,
        BeforeValidator(_integer_to_text),
        Field(min_length=1, max_length=256, description="Alert id, unique within the partner tenant."),
    ]
    display_name: str | None = Field(None, description="Title of the alert.")
    description: str | None = None
    alert_type: str | None = Field(None, description="Kind of alert, e.g. `unusualActivity`.")
    status: StatusField = Field(AlertStatus.active, description="active | investigating | resolved")
    resolved_reason: ResolvedReasonField = Field(None, description="legitimate | ignore | fraud | null")
    severity: SeverityField = Field(None, description="informational | low | medium | high")
    confidence_level: ConfidenceField = None
    customer_tenant_id: str | None = Field(None, description="The customer tenant the alert is about.")
    subscription_id: str | None = None
    value_added_reseller_tenant_id: str | None = None
    catalog_offer_id: str | None = None
    detected_date_time: OptionalUtcDateTime = Field(None, description="When the alert appeared (UTC).")
    first_observed_date_time: OptionalUtcDateTime = None
    last_observed_date_time: OptionalUtcDateTime = None
    resolved_on_date_time: OptionalUtcDateTime = Field(
        None,
        # The older Partner Center feed calls it `resolvedOn`.
        validation_alias=AliasChoices("resolvedOnDateTime", "resolvedOn", "resolved_on"),
        description="When it was resolved (UTC); null while unresolved.",
    )
    resolved_by: OptionalText = None
    is_test: TolerantBool = Field(False, description="Test alerts never count toward the response time.")
    affected_resources: list[AffectedResource] = Field(default_factory=list)
    additional_details: dict[str, Any] = Field(default_factory=dict)
    activity_logs: list[ActivityLog] = Field(default_factory=list)


# --- the older Partner Center fraud-event shape ("Azure fraud events") ------------------------------

# Keys only the older fraud-event shape has; one of them marks a document as a fraud event.
FRAUD_EVENT_MARKERS = frozenset({"eventId", "eventStatus", "event_id", "event_status"})

# Fraud-event key -> Alert wire name, for fields that mean the same thing.
_FRAUD_FIELD_MAP = {
    "eventId": "id",
    "eventTime": "detectedDateTime",
    "eventStatus": "status",
    "customerTenantId": "customerTenantId",
    "subscriptionId": "subscriptionId",
    "catalogOfferId": "catalogOfferId",
    "firstOccurrence": "firstObservedDateTime",
    "lastOccurrence": "lastObservedDateTime",
    "resolvedOn": "resolvedOnDateTime",
    "resolvedReason": "resolvedReason",
    "resolvedBy": "resolvedBy",
    "severity": "severity",
    "isTest": "isTest",
    "description": "description",
    "activityLogs": "activityLogs",
}
# Kept as they are in additionalDetails (and some also feed affectedResources / the alert type).
_FRAUD_DETAIL_KEYS = (
    "customerName",
    "subscriptionType",
    "entityId",
    "entityName",
    "entityUrl",
    "hitCount",
    "serviceName",
    "resourceName",
    "resourceGroupName",
    "eventName",
    "fraudEventType",
)
# Alert wire name -> fraud-event key, to name the posted field in a validation error.
FRAUD_FIELD_NAMES = {alert: fraud for fraud, alert in _FRAUD_FIELD_MAP.items()}


def _camel_keys(document: dict[str, Any]) -> dict[str, Any]:
    return {to_camel(k) if isinstance(k, str) and "_" in k else k: v for k, v in document.items()}


def is_fraud_event(document: Any) -> bool:
    """True for a document of the older fraud-event shape (it has ``eventId`` or ``eventStatus``)."""
    return isinstance(document, dict) and not FRAUD_EVENT_MARKERS.isdisjoint(document)


def alert_document_from_fraud_event(event: dict[str, Any]) -> dict[str, Any]:
    """The Alert wire document an older fraud event means; keys absent from the event stay absent.

    Keeping absent keys absent matters: a later partial post must not clear what it did not send.
    """
    event = _camel_keys(event)
    alert: dict[str, Any] = {}
    if "eventId" not in event and "id" in event:
        alert["id"] = event["id"]
    for source, target in _FRAUD_FIELD_MAP.items():
        if source in event:
            alert[target] = event[source]
    kind = event.get("fraudEventType") or event.get("eventName")
    if kind is not None:
        alert["alertType"] = kind
        alert["displayName"] = event.get("eventName") or kind
    if "displayName" in event:
        alert["displayName"] = event["displayName"]
    resources = []
    if event.get("entityId") or event.get("entityUrl"):
        resources.append(
            {
                "resourceId": event.get("entityId") or event.get("entityUrl"),
                "resourceType": event.get("entityName") or "entity",
            }
        )
    if event.get("resourceName"):
        group = event.get("resourceGroupName")
        resources.append(
            {
                "resourceId": f"{group}/{event['resourceName']}" if group else event["resourceName"],
                "resourceType": event.get("serviceName") or "resource",
            }
        )
    if resources:
        alert["affectedResources"] = resources
    known = {*_FRAUD_FIELD_MAP, *_FRAUD_DETAIL_KEYS, "id", "displayName"}
    details = {k: event[k] for k in _FRAUD_DETAIL_KEYS if k in event}
    # Anything else the feed sends is kept rather than dropped.
    details.update({k: v for k, v in event.items() if k not in known})
    if details:
        alert["additionalDetails"] = details
    return alert
