"""``POST /v1/tenants/{tenantId}/alert-actions``: acknowledge, resolve or assign many of a tenant's alerts
in one call (#18), named by id (``alertIds``) or by a filter (``filter``: status, severity, customer).

At most :data:`MAX_BULK_ALERTS` alerts a call: more ids, or a filter matching more, is a 422 saying how
many matched, and changes nothing. Each alert is still changed on its own:

- acknowledge (→ ``investigating``, only an alert still ``active``: it never reopens one) and resolve
  (→ ``resolved`` with ``resolvedReason``) go through the one recording path
  (``services.ingest.recording.record_alerts``, as ``PATCH /alerts/{id}`` does): each alert changed gets
  its own ``alert-updated`` with its own status change by the caller at the request's time (its own
  response and latency), and is queued for Partner Center if it came from there;
- assign (``assignee``: an e-mail address, or null to unassign) goes through the assignment of
  ``routes_triage`` (``triage_store.assign``): one ``alert-assigned`` per alert changed, no status change.

All of one call's changes commit together, or none. The answer lists each alert, once, in the order
named (a filter's: first seen first): ``changed``, ``unchanged`` (and why: already so) or ``notFound``
(an id the tenant does not have: listed, not fatal). Permission: as a status change (``update-alerts``).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import ConfigDict, Field

from services.ingest import triage_store
from services.ingest.contact import Email
from services.ingest.deps import AlertUpdaterDep, PoolDep, SettingsDep, wake_relay_after_write
from services.ingest.domain import acted_on
from services.ingest.graph.writeback import queue_writebacks
from services.ingest.outgoing import EventTooLarge
from services.ingest.recording import record_alerts
from services.ingest.routes_triage import actor_of, too_large
from shared.action_links import Action
from shared.alerts import Alert, AlertStatus
from shared.events import Actor
from shared.http import Problem, TenantIdPath
from shared.wire import WireModel

router = APIRouter(prefix="/v1/tenants/{tenant_id}", tags=["triage"], dependencies=[Depends(wake_relay_after_write)])

MAX_BULK_ALERTS = 500

# As the path of PATCH /alerts/{alertId} takes it: no control characters.
AlertIdItem = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")]


class BulkFilter(WireModel):
    """The tenant's alerts with all of the values given (at least one)."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["active", "investigating", "resolved"] | None = None
    severity: Literal["informational", "low", "medium", "high"] | None = None
    customer_tenant_id: str | None = Field(None, min_length=1, max_length=256)


class BulkRequest(WireModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"oneOf": [{"required": ["alertIds"]}, {"required": ["filter"]}]}
    )

    action: Literal["acknowledge", "resolve", "assign"] = Field(
        description="`acknowledge` (→ investigating, an alert still active), `resolve` (with `resolvedReason`), "
        "`assign` (with `assignee`)."
    )
    resolved_reason: Literal["legitimate", "ignore", "fraud"] | None = Field(
        None, description="With `resolve` only (required there)."
    )
    assignee: Email | None = Field(
        None, description="With `assign` only (required there): an e-mail address, or null to unassign."
    )
    alert_ids: list[AlertIdItem] | None = Field(
        None, min_length=1, max_length=MAX_BULK_ALERTS,
        description=f"The alerts, by id (1 to {MAX_BULK_ALERTS}; one named twice counts once); or give `filter`.",
    )
    filter: BulkFilter | None = Field(
        None, description=f"The alerts matching it (at most {MAX_BULK_ALERTS}); or give `alertIds`."
    )


class Outcome(StrEnum):
    changed = "changed"
    unchanged = "unchanged"
    not_found = "notFound"


class BulkResult(WireModel):
    alert_id: str
    outcome: Outcome
    detail: str = Field(description="What was done, or why nothing was.")


class BulkAnswer(WireModel):
    action: str
    matched: int = Field(description="Alerts the call named (each once) or its filter matched.")
    changed: int
    unchanged: int
    not_found: int
    results: list[BulkResult] = Field(description="Each alert once: in the order named, or first seen first.")

    @classmethod
    def of(cls, action: str, results: list[BulkResult]) -> BulkAnswer:
        def count(outcome: Outcome) -> int:
            return sum(1 for r in results if r.outcome is outcome)

        return cls(action=action, matched=len(results), changed=count(Outcome.changed),
                   unchanged=count(Outcome.unchanged), not_found=count(Outcome.not_found), results=results)


def refusals(body: BulkRequest) -> list[dict[str, str]]:
    """The rules JSON Schema does not say (which fields go with which action), each naming its field."""
    given = body.model_fields_set
    errors = []
    # (A null given counts as given: the schema's oneOf says so, and a null is no list of alerts.)
    if len(given & {"alert_ids", "filter"}) != 1:
        errors.append({"field": "body", "message": "give exactly one of alertIds and filter"})
    elif body.alert_ids is None and body.filter is None:
        field = "alertIds" if "alert_ids" in given else "filter"
        errors.append({"field": field, "message": "must not be null"})
    if body.filter is not None and all(value is None for value in body.filter.model_dump().values()):
        errors.append({"field": "filter", "message": "give at least one of status, severity and customerTenantId"})
    if body.action == "resolve" and body.resolved_reason is None:
        errors.append({"field": "resolvedReason", "message": "required to resolve: legitimate, ignore or fraud"})
    if body.action != "resolve" and "resolved_reason" in given:
        errors.append({"field": "resolvedReason", "message": "only with the action resolve"})
    if body.action == "assign" and "assignee" not in given:
        errors.append({"field": "assignee", "message": "required to assign: an e-mail address, or null to unassign"})
    if body.action != "assign" and "assignee" in given:
        errors.append({"field": "assignee", "message": "only with the action assign"})
    return errors


def _invalid(errors: list[dict], **extra) -> Problem:
    return Problem(422, "Invalid bulk action", "; ".join(f"{e['field']}: {e['message']}" for e in errors),
                   errors=errors, **extra)


async def _alert_ids(pool, tenant_id: str, body: BulkRequest) -> list[str]:
    if body.alert_ids is not None:
        return list(dict.fromkeys(body.alert_ids))  # each once, in the order named
    criteria = body.filter
    ids, matched = await triage_store.alerts_matching(
        pool, tenant_id, status=criteria.status, severity=criteria.severity,
        customer_tenant_id=criteria.customer_tenant_id, limit=MAX_BULK_ALERTS + 1)
    if matched > MAX_BULK_ALERTS:
        message = (f"matches {matched} alerts; at most {MAX_BULK_ALERTS} a call: narrow the filter, or name the "
                   "alerts by id")
        raise _invalid([{"field": "filter", "message": message}], matched=matched)
    return ids


def _not_found(tenant_id: str, alert_id: str) -> BulkResult:
    return BulkResult(alert_id=alert_id, outcome=Outcome.not_found,
                      detail=f"no alert {alert_id!r} for tenant {tenant_id}")


class _StatusChange:
    """``record_alerts``' patch for a bulk acknowledge or resolve: each alert as the action changes it
    (``shared.action_links.change_for``, as a one-click response), else as it is; remembers each as found."""

    def __init__(self, action: Action, actor: Actor) -> None:
        self.action, self.actor = action, actor
        self.found: dict[str, Alert] = {}

    def patch(self, previous: Alert, now: datetime) -> Alert:
        self.found[previous.id] = previous
        return acted_on(previous, self.action, self.actor, now)

    def why_unchanged(self, alert: Alert) -> str:
        if self.action is Action.acknowledge:
            if alert.status is AlertStatus.resolved:
                return "resolved: acknowledging never reopens an alert"
            return f"already {alert.status.value}" if alert.status else "nothing to change"
        return f"already resolved as {alert.resolved_reason.value}"


async def _change_status(pool, settings, tenant_id: str, alert_ids: list[str], body: BulkRequest,
                         actor: Actor) -> list[BulkResult]:
    action = Action.acknowledge if body.action == "acknowledge" else Action(f"resolve-{body.resolved_reason}")
    # The recording path changes known alerts only (an unknown one is a 404 failing the others); alert
    # states are never deleted, so one known here is still there in its transaction.
    known = await triage_store.known_alert_ids(pool, tenant_id, alert_ids)
    recording = _StatusChange(action, actor)
    events = await record_alerts(pool, settings, tenant_id, [Alert(id=i) for i in alert_ids if i in known],
                                 api_actor=actor, patch=recording.patch, after=queue_writebacks) if known else []
    changed = {event.alert.id: event.alert for event in events}
    results = []
    for alert_id in alert_ids:
        if alert_id in changed:
            before, after = recording.found[alert_id], changed[alert_id]
            detail = f"{before.status.value} → {after.status.value}" + (
                f" ({after.resolved_reason.value})" if after.resolved_reason else "")
            results.append(BulkResult(alert_id=alert_id, outcome=Outcome.changed, detail=detail))
        elif alert_id in recording.found:
            results.append(BulkResult(alert_id=alert_id, outcome=Outcome.unchanged,
                                      detail=recording.why_unchanged(recording.found[alert_id])))
        else:
            results.append(_not_found(tenant_id, alert_id))
    return results


async def _assign(pool, settings, tenant_id: str, alert_ids: list[str], assignee: str | None,
                  actor: Actor) -> list[BulkResult]:
    try:
        changes = await triage_store.assign(pool, tenant_id, alert_ids, assignee, actor=actor,
                                            max_event_bytes=settings.max_event_bytes)
    except EventTooLarge as exc:
        raise too_large(exc) from None
    results = []
    for alert_id in alert_ids:
        change = changes.get(alert_id)
        if change is None:
            results.append(_not_found(tenant_id, alert_id))
            continue
        now = change.assignment.assignee
        if change.changed:
            detail = f"assigned to {now}" if now else "unassigned"
            detail += f" (was {change.previous_assignee})" if change.previous_assignee else ""
        else:
            detail = f"already assigned to {now}" if now else "already unassigned"
        results.append(BulkResult(alert_id=alert_id, outcome=Outcome.changed if change.changed else Outcome.unchanged,
                                  detail=detail))
    return results


@router.post(
    "/alert-actions",
    response_model=BulkAnswer,
    summary=f"Acknowledge, resolve or assign up to {MAX_BULK_ALERTS} alerts, by id or by a filter; each its own event",
    responses={422: {"description": "A rule of the body broken, or more alerts than a call may change (`matched` "
                     "says how many)"}},
)
async def bulk_alerts(tenant_id: TenantIdPath, body: BulkRequest, caller: AlertUpdaterDep, pool: PoolDep,
                      settings: SettingsDep) -> BulkAnswer:
    """The changes are by the key's user at the time of the request. An alert already so is left as it
    is (`unchanged`); an id the tenant does not have is listed (`notFound`)."""
    if errors := refusals(body):
        raise _invalid(errors)
    alert_ids = await _alert_ids(pool, tenant_id, body)
    actor = actor_of(caller)
    if body.action == "assign":
        results = await _assign(pool, settings, tenant_id, alert_ids, body.assignee, actor)
    else:
        results = await _change_status(pool, settings, tenant_id, alert_ids, body, actor)
    return BulkAnswer.of(body.action, results)
