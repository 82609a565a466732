"""``POST /alerts`` and ``PATCH /alerts/{alertId}`` of the write API (SPEC §2, §6).

Both record through ``services.ingest.recording`` (the one path of every alert): 202 means the new
states and their events committed (the relay publishes the events, in order, whenever the broker
takes them); 503 means nothing was recorded.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.json_schema import models_json_schema

from services.ingest.deps import wake_relay
from services.ingest.domain import actor_from, patched
from services.ingest.graph.writeback import queue_writebacks
from services.ingest.parsing import (
    alerts_from_document,
    parse_json,
    plain_text,
    read_body,
    require_json_media_type,
)
from services.ingest.recording import AlertEvents, record_alerts
from services.ingest.webhook_auth import (
    WriteCaller,
    authenticate_key,
    authenticate_webhook,
    wants_signature_check,
)
from shared.alerts import Alert, AlertStatus, ResolvedReason
from shared.http import Problem, TenantIdPath
from shared.http_guards import accepts_signature, authenticates
from shared.wire import WireModel, utcnow

log = logging.getLogger(__name__)
# No dependency but the path's (and the app's offboarding check): the busiest write route, and each
# dependency costs on every request (#15: four state aliases and the relay's wake-up, a generator, were a
# tenth of the route's CPU). The routes read the state ``app.py`` wires from the app and wake the relay
# themselves once their transaction has committed.
router = APIRouter(prefix="/v1/tenants/{tenant_id}", tags=["alerts"])

# No control characters (NUL cannot be stored at all).
AlertId = Annotated[str, Path(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")]

_ERRORS = {
    400: {"description": "Malformed JSON"},
    401: {"description": "No valid key or webhook signature"},
    403: {"description": "The key's role or tenant may not update alerts here"},
    413: {"description": "Body or list too large"},
    415: {"description": "Not JSON"},
    422: {"description": "Schema violation; `errors[].field` names the path (`value[3].detectedDateTime`)"},
    503: {"description": "Database unavailable: nothing was stored; retry after `Retry-After`"},
}


class AcceptedEvent(BaseModel):
    alertId: str
    eventType: str


class Accepted(BaseModel):
    accepted: int = Field(description="Alerts that produced an event.")
    duplicates: int = Field(description="Alerts identical to what was already known: no event.")
    events: list[AcceptedEvent]


class AlertPatch(WireModel):
    """A change of an alert's status by a person (or a ticketing system acting for one)."""

    # At least one of status and resolvedReason (the route refuses a change of neither).
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"anyOf": [{"required": ["status"]}, {"required": ["resolvedReason"]}]}
    )

    status: Literal["active", "investigating", "resolved"] | None = None
    resolved_reason: Literal["legitimate", "ignore", "fraud"] | None = None
    updated_by: str | None = Field(
        None,
        max_length=256,
        description="The user a ticketing system acts for; default: the key's user (`system`: the system).",
    )


async def _authenticate(request: Request, tenant_id: str) -> tuple[WriteCaller, bytes]:
    """The caller and the body: a signed webhook is checked over the raw body, a key before reading it."""
    state = request.app.state
    keys, secrets, settings = state.keys, state.webhook_secrets, state.settings
    signed = wants_signature_check(request.headers)
    # (A key was already checked, before the body was read, by the request guard; this reuses it.)
    caller = None if signed else await authenticate_key(keys, request, tenant_id)
    require_json_media_type(request.headers.get("content-type"))
    body = await read_body(request, settings.max_body_bytes)
    if signed:
        caller = await authenticate_webhook(secrets, tenant_id, request.headers, body)
    return caller, body


def openapi_schemas() -> dict:
    """Schemas the hand-parsed request bodies refer to, for ``components.schemas``."""
    _, schema = models_json_schema(
        [(Alert, "validation"), (AlertPatch, "validation")], ref_template="#/components/schemas/{model}"
    )
    return schema["$defs"]


def _accepted(alert_count: int, events: AlertEvents) -> Response:
    # Built of values already checked, its JSON written by pydantic at once (not a dict, then json.dumps).
    body = Accepted.model_construct(
        accepted=len(events),
        duplicates=alert_count - len(events),
        events=[AcceptedEvent.model_construct(alertId=e.alert.id, eventType=e.event_type) for e in events],
    )
    return Response(body.model_dump_json(), status_code=202, media_type="application/json")


# A key, or a Standard Webhooks signature with the tenant's secret (shared.http_openapi's schemes).
_KEY_OR_SIGNATURE = [{"bearerKey": []}, {"standardWebhook": []}]
_ALERT_BODY = {
    "security": _KEY_OR_SIGNATURE,
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "description": 'One alert, a Graph list {"value": [alert, ...]}, a bare list, or older '
                    'fraud events (eventId, eventStatus, eventTime, ...; one, a list, or {"value": [...]}).',
                    "anyOf": [
                        {"$ref": "#/components/schemas/Alert"},
                        {"type": "array", "items": {"$ref": "#/components/schemas/Alert"}},
                        {
                            "type": "object",
                            "required": ["value"],
                            "properties": {
                                "value": {"type": "array", "items": {"$ref": "#/components/schemas/Alert"}}
                            },
                        },
                        {
                            "type": "object",
                            "description": "older fraud event",
                            "required": ["eventId"],
                            "properties": {"eventId": {"type": "string", "minLength": 1}},
                            "additionalProperties": True,
                        },
                    ],
                }
            }
        },
    }
}


@router.post(
    "/alerts",
    status_code=202,
    response_model=Accepted,
    responses=_ERRORS,
    openapi_extra=_ALERT_BODY,
    summary="Ingest one alert, a Graph list {value: [...]}, or older fraud events",
)
@accepts_signature
@authenticates
async def post_alerts(tenant_id: TenantIdPath, request: Request) -> Response:
    """Authenticate with `Authorization: Bearer <key>` (a role that may update alerts) or sign as a
    Standard Webhook with the tenant's secret. A post is a feed's report: a status change it carries
    with no new activity-log entry is the system's."""
    caller, body = await _authenticate(request, tenant_id)
    settings = request.app.state.settings
    alerts = alerts_from_document(parse_json(body), settings.max_alerts_per_request, now=utcnow(),
                                  text_checked=plain_text(body))
    events = (
        await record_alerts(request.app.state.pool, settings, tenant_id, alerts, webhook_id=caller.webhook_id)
        if alerts
        else []
    )
    wake_relay(request)
    return _accepted(len(alerts), events)


@router.patch(
    "/alerts/{alert_id}",
    status_code=202,
    response_model=Accepted,
    responses={**_ERRORS, 404: {"description": "No such alert for this tenant"}},
    openapi_extra={
        "security": _KEY_OR_SIGNATURE,
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AlertPatch"}}},
        }
    },
    summary="Change an alert's status / resolvedReason as the calling user",
)
@accepts_signature
@authenticates
async def patch_alert(tenant_id: TenantIdPath, alert_id: AlertId, request: Request) -> Response:
    """The change is by the key's user (or the `updatedBy` a ticketing system names) at the time of
    the request; a change of status or resolvedReason by a user stops the response clock."""
    caller, body = await _authenticate(request, tenant_id)
    document = parse_json(body)
    try:
        change = AlertPatch.model_validate(document)
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in e.get("loc", ())) or "body", "message": e.get("msg", "")}
            for e in exc.errors()
        ]
        raise Problem(
            422, "Invalid change", "; ".join(f"{e['field']}: {e['message']}" for e in errors), errors=errors
        ) from None
    fields = change.model_fields_set - {"updated_by"}
    if not fields:
        raise Problem(
            422,
            "Invalid change",
            "send status and/or resolvedReason",
            errors=[{"field": "body", "message": "send status and/or resolvedReason"}],
        )
    if "updated_by" in change.model_fields_set:
        actor = actor_from(change.updated_by)
    elif caller.principal is not None:
        actor = actor_from(caller.principal.user_id)
    else:
        actor = actor_from(None)  # a signed webhook naming nobody: the system

    def apply_patch(previous: Alert, now: datetime) -> Alert:
        return patched(
            previous,
            status=AlertStatus(change.status) if change.status else None,
            resolved_reason=ResolvedReason(change.resolved_reason) if change.resolved_reason else None,
            fields=fields,
            actor=actor,
            now=now,
        )

    # A response recorded here is queued, in the same transaction, for Partner Center (an alert
    # that came from there: services/ingest/graph/writeback.py).
    events = await record_alerts(
        request.app.state.pool,
        request.app.state.settings,
        tenant_id,
        [Alert(id=alert_id)],
        api_actor=actor,
        patch=apply_patch,
        webhook_id=caller.webhook_id,
        after=queue_writebacks,
    )
    wake_relay(request)
    return _accepted(1, events)
