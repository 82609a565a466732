"""``POST /alerts`` and ``PATCH /alerts/{alertId}`` of the write API (SPEC §2, §6)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from services.ingest.deps import BrokerDep, CallerDep, PoolDep, SettingsDep
from services.ingest.domain import decide
from services.ingest.store import lock_alert_states
from shared.alerts import Alert
from shared.auth import Permission, authorize
from shared.events import Topic
from shared.http import Problem, _field_path
from shared.kafka import publish_event
from shared.wire import utcnow

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/tenants/{tenant_id}", tags=["alerts"])

TenantId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$")]
_alerts = TypeAdapter(list[Alert])


class AcceptedEvent(BaseModel):
    alertId: str
    eventType: str


class Accepted(BaseModel):
    accepted: int = Field(description="Alerts that produced an event.")
    duplicates: int = Field(description="Alerts identical to what was already known: no event.")
    events: list[AcceptedEvent]


async def _json_body(request: Request, settings) -> Any:
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() not in ("application/json", ""):
        if not content_type.split(";")[0].strip().lower().endswith("+json"):
            raise Problem(415, "Unsupported media type", f"send application/json, not {content_type}")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.max_body_bytes:
        raise Problem(413, "Request too large", f"the body may be at most {settings.max_body_bytes} bytes")
    body = await request.body()
    if len(body) > settings.max_body_bytes:
        raise Problem(413, "Request too large", f"the body may be at most {settings.max_body_bytes} bytes")
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Problem(400, "Malformed JSON", f"the request body is not valid JSON: {exc}") from None


def _alert_list(document: Any, settings) -> list[Alert]:
    if isinstance(document, dict) and isinstance(document.get("value"), list):
        items = document["value"]
        prefix: tuple[Any, ...] = ("value",)
    elif isinstance(document, dict):
        items, prefix = [document], ()
    elif isinstance(document, list):
        items, prefix = document, ()
    else:
        raise Problem(422, "Invalid request", "send one alert object, or a list as {\"value\": [...]}")
    if len(items) > settings.max_alerts_per_request:
        raise Problem(413, "Too many alerts", f"at most {settings.max_alerts_per_request} alerts per request")
    try:
        alerts = _alerts.validate_python(items)
    except ValidationError as exc:
        errors = [{"field": _field_path((*prefix, *e["loc"]) if prefix or len(items) > 1 else e["loc"][1:]),
                   "message": e["msg"]} for e in exc.errors()]
        raise Problem(422, "Invalid alert", "; ".join(f"{e['field']}: {e['message']}" for e in errors[:10]),
                      errors=errors) from None
    ids = [a.id for a in alerts]
    if len(ids) != len(set(ids)):
        raise Problem(422, "Invalid alert", "the same alert id appears twice in one request")
    return alerts


@router.post("/alerts", status_code=202, response_model=Accepted,
             summary="Ingest one alert, a Graph list {value: [...]}, or older fraud events")
async def post_alerts(tenant_id: TenantId, request: Request, caller: CallerDep, settings: SettingsDep,
                      pool: PoolDep, broker: BrokerDep) -> JSONResponse:
    authorize(caller, Permission.update_alerts, tenant_id)
    alerts = _alert_list(await _json_body(request, settings), settings)
    now = utcnow()
    async with lock_alert_states(pool, tenant_id, alerts) as states:
        events = [e for a in alerts if (e := decide(tenant_id, a, states.previous[a.id], now=now)) is not None]
        try:
            # Sent together, so aiokafka batches them; 202 only once the broker acknowledged all.
            await asyncio.gather(*(publish_event(broker, settings, Topic.alerts, e) for e in events))
        except Exception as exc:
            log.warning("broker unavailable, %d events not accepted: %s", len(events), exc)
            raise Problem(503, "Broker unavailable", "the events could not be stored; retry later",
                          headers={"Retry-After": "5"}) from None
        await states.save([a for a in alerts if states.previous[a.id] is None or any(
            getattr(e, "alert", None) is a for e in events)])
    body = Accepted(accepted=len(events), duplicates=len(alerts) - len(events),
                    events=[AcceptedEvent(alertId=e.alert.id, eventType=e.event_type) for e in events])
    return JSONResponse(body.model_dump(), status_code=202)
