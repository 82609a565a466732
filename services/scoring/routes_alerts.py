"""``GET /alerts`` and ``GET /alerts/{alertId}`` of the read API, from its read model of ``alert-response-times``,
``alert-sync`` and ``alert-triage``.

Each alert comes back as its latest known state plus its response-time fields: when its clock
started, its first partner response (time and actor) and latency, or its age while open; its
sync state with Partner Center (``partnerCenterSync``), null for an alert that did not come from it;
and its triage: who it is assigned to (``assignedTo``, null: nobody) and how many notes it has.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from services.scoring import read_model
from services.scoring.deps import PoolDep, ReaderDep, reader
from shared.alerts import AlertStatus, Severity
from shared.auth import Principal
from shared.events import PartnerCenterSync
from shared.http import Problem, TenantIdPath
from shared.http_guards import authenticates
from shared.response_time import RESOLVED, TARGET_US, hours, open_age_us
from shared.wire import format_utc, utcnow

router = APIRouter(prefix="/v1/tenants/{tenant_id}", tags=["alerts"])


def _utc(value: datetime | None) -> str | None:
    return None if value is None else format_utc(value)


def _partner_center_sync(row) -> dict[str, Any] | None:
    """The alert's ``PartnerCenterSync`` wire form; None if it has none (it did not come from Partner Center)."""
    if row["sync_state"] is None:
        return None
    return PartnerCenterSync(
        state=row["sync_state"], last_synced_date_time=row["last_synced_at"], pending_status=row["pending_status"],
        attempts=row["sync_attempts"], last_error=row["sync_last_error"],
    ).model_dump(mode="json")


def _view(row, now: datetime) -> dict[str, Any]:
    alert = json.loads(row["alert"])
    responded = row["responded_at"] is not None
    # Resolved with no partner response: closed unanswered (not open, not averaged; shared.response_time.is_open).
    closed_unanswered = not responded and row["status"] == RESOLVED
    return {
        **alert,
        "status": row["status"],
        "clockStartedDateTime": _utc(row["clock_started_at"]),
        "respondedDateTime": _utc(row["responded_at"]),
        "respondedBy": row["responded_by"],
        "latencyHours": hours(row["latency_us"]) if responded else None,
        # While open: how long the clock has run (test alerts too, though they never count).
        "openAgeHours": (None if responded or closed_unanswered
                         else hours(open_age_us(row["clock_started_at"], now))),
        # What is left of the 24 hours before a response counts against the limit; negative past them.
        "timeLeftHours": (None if responded or closed_unanswered
                          else hours(TARGET_US - open_age_us(row["clock_started_at"], now))),
        "countsTowardResponseTime": not row["is_test"] and not closed_unanswered,
        "partnerCenterSync": _partner_center_sync(row),
        "assignedTo": row["assignee"],
        "notesCount": row["notes_count"] or 0,
    }


def encode_position(started: datetime, *rest: str | int) -> str:
    """An opaque ``skiptoken``: a list's position after one of its rows (a time, then what breaks ties)."""
    position = json.dumps([started.isoformat(), *rest]).encode()
    return base64.urlsafe_b64encode(position).decode().rstrip("=")


def decode_position(token: str, *rest: type) -> tuple:
    """The position a ``skiptoken`` of ``encode_position`` names, its time then values of the types
    ``rest``; 422 naming the parameter if it is not one of ours."""
    try:
        started, *others = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        position = datetime.fromisoformat(started), *others
        if (position[0].tzinfo is None or len(others) != len(rest)
                or not all(type(value) is kind for value, kind in zip(others, rest, strict=True))):
            raise ValueError("not a position")
    except (ValueError, TypeError, UnicodeDecodeError, binascii.Error):
        raise Problem(422, "Invalid request", "skiptoken: not a token of this API; follow @odata.nextLink",
                      errors=[{"field": "query.skiptoken", "message": "not a token of this API"}]) from None
    return position


def skip_token(row) -> str:
    """The opaque position after ``row``: its clock start and id (``list_alerts``'s ``after``)."""
    return encode_position(row["clock_started_at"], row["alert_id"])


def position_of(token: str) -> tuple[datetime, str]:
    """The position a ``skiptoken`` names; 422 naming the parameter if it is not one of ours."""
    return decode_position(token, str)


class AlertOrder(StrEnum):
    time_left = "timeLeft"


# ``assignee=``: the calling key's user, nobody, or a person's e-mail address.
ASSIGNEE_ME, ASSIGNEE_NONE = "me", "none"


def assignee_filter(assignee: str, caller: Principal) -> tuple[str | None, bool]:
    """Whom ``assignee=`` names: (an address, False), or (None, True) for nobody; 422 naming the
    parameter if it is no e-mail address."""
    if assignee == ASSIGNEE_ME:
        return caller.user_id, False
    if assignee == ASSIGNEE_NONE:
        return None, True
    local, at, domain = assignee.partition("@")
    if not (local and at and domain) or any(c.isspace() for c in assignee):
        raise Problem(422, "Invalid request", f"assignee: {assignee!r} is not an e-mail address, `me` or `none`",
                      errors=[{"field": "query.assignee", "message": "an e-mail address, `me` or `none`"}])
    return assignee, False


@router.get("/alerts", summary="The tenant's alerts, newest first (or the open ones, least time left first), "
             "with each one's response time, sync state with Partner Center and assignee",
            response_model=dict[str, Any])
async def list_alerts(
    tenant_id: str, caller: ReaderDep, pool: PoolDep, request: Request,
    status: Annotated[AlertStatus | None, Query(description="active | investigating | resolved")] = None,
    responded: Annotated[bool | None, Query(description="true: answered by a partner; false: not answered")] = None,
    top: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 100,
    skip: Annotated[int, Query(ge=0, le=1_000_000, description="Alerts to skip (counted from the "
                               "skiptoken's position if there is one).")] = 0,
    skiptoken: Annotated[str | None, Query(max_length=512, description="Where the page starts; from "
                                           "`@odata.nextLink`, opaque.")] = None,
    assignee: Annotated[str | None, Query(max_length=320, description="Only the alerts assigned to this e-mail "
                                          "address (any case); `me`: to the calling key's user; `none`: to "
                                          "nobody.")] = None,
    severity: Annotated[Severity | None, Query(description="Only the alerts of this severity.")] = None,
    customer_tenant_id: Annotated[str | None, Query(alias="customerTenantId", max_length=256,
                                                    description="Only the alerts of this customer tenant "
                                                    "(exactly).")] = None,
    orderby: Annotated[AlertOrder | None, Query(description="`timeLeft`: only the open alerts whose clock "
                                                "counts (no partner response, not resolved, not a test), "
                                                "the least time left before 24 hours first.")] = None,
) -> JSONResponse:
    assigned_to, unassigned = (None, False) if assignee is None else assignee_filter(assignee, caller)
    rows = await read_model.list_alerts(
        pool, tenant_id, status=status.value if status else None, responded=responded, top=top + 1, skip=skip,
        after=position_of(skiptoken) if skiptoken else None, assignee=assigned_to, unassigned=unassigned,
        severity=severity.value if severity else None, customer_tenant_id=customer_tenant_id,
        least_time_left_first=orderby is AlertOrder.time_left)
    now = utcnow()
    body: dict[str, Any] = {"value": [_view(r, now) for r in rows[:top]]}
    if len(rows) > top:
        # The next page starts after this page's last alert, not at an offset: alerts arriving in
        # between do not shift it, and a deep page costs no more than the first.
        following = request.url.remove_query_params("skip").include_query_params(
            top=top, skiptoken=skip_token(rows[top - 1]))
        body["@odata.nextLink"] = str(following)
    return JSONResponse(body)


@router.get("/alerts/{alert_id}", summary="One alert, with its response time and sync state with Partner Center",
            response_model=dict[str, Any],
            # (The database away: documented by shared.http_openapi for a route with dependencies; this has none.)
            responses={503: {}})
@authenticates
async def get_alert(request: Request, tenant_id: TenantIdPath, alert_id: str) -> JSONResponse:
    # No dependency but the path: answered ahead of FastAPI's routing (app.py, shared.hot_routes), the busiest
    # read under a live feed after the score.
    await reader(request, tenant_id)
    row = await read_model.get_alert(request.app.state.pool, tenant_id, alert_id)
    if row is None:
        raise Problem(404, "Alert not found", f"no alert {alert_id!r} for tenant {tenant_id!r}")
    # JSON already (the alert as stored, strings and numbers): encoded as it is, not walked by FastAPI's
    # encoder first (#15: the read API's busiest route under a live feed, beside the score).
    return JSONResponse(_view(row, utcnow()))
