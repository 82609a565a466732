"""``GET /v1/tenants/{t}/changes``: the tenant's changes as server-sent events (``text/event-stream``),
so a page updates without polling.

First ``event: ready`` (``data: {"tenantId": t}``) once the stream is subscribed: every change after
it is sent. Then one ``event: change`` per change any read API process applied (``changes.py``):
``data: {"kind": "score" | "alert" | "delivery" | "customer-mfa", "alertId"?: id}``; the client reads
what it shows again. A comment every ``CHANGES_PING_SECONDS`` keeps proxies from closing an idle
stream. Redis failing ends the stream (the client reconnects); Redis unreachable at the start is a
503 problem. The stream ends when the client leaves and when the process stops (sse-starlette
watches uvicorn's shutdown), so an open stream never holds up a shutdown.

EventSource cannot send an ``Authorization`` header: a browser reads the stream with ``fetch()``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from redis.exceptions import RedisError
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask

from services.scoring.changes import Changes, Subscription
from services.scoring.deps import ReaderDep, SettingsDep
from shared.http import Problem

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/tenants/{tenant_id}", tags=["changes"])

# One event of the stream (OpenAPI 3.2's `itemSchema` of an event stream): its name, and its data, JSON.
_EVENT = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "enum": ["ready", "change"]},
        "data": {"type": "string", "contentMediaType": "application/json",
                 "description": '`ready`: `{"tenantId": t}`; `change`: `{"kind": "score" | "alert" | "delivery" | '
                                '"customer-mfa", "alertId"?: id}`.'},
    },
}
_STREAM = {
    200: {"description": "Server-sent events: `ready`, then one `change` per change.",
          "content": {"text/event-stream": {"itemSchema": _EVENT}}},
    503: {"description": "Redis does not answer; retry after `Retry-After` seconds."},
}


async def _events(tenant_id: str, subscription: Subscription) -> AsyncIterator[ServerSentEvent]:
    try:
        yield ServerSentEvent(event="ready", data=json.dumps({"tenantId": tenant_id}))
        async for change in subscription:
            yield ServerSentEvent(event="change", data=json.dumps(change))
    except RedisError as exc:
        log.warning("the change stream of tenant %s ends: Redis: %s: %s", tenant_id, type(exc).__name__, exc)
    finally:
        await subscription.close()


@router.get("/changes", summary="The tenant's changes as server-sent events", response_class=EventSourceResponse,
            responses=_STREAM)
async def stream_changes(tenant_id: str, caller: ReaderDep, request: Request,
                         settings: SettingsDep) -> EventSourceResponse:
    changes: Changes = request.app.state.changes
    try:
        subscription = await changes.subscribe(tenant_id)
    except RedisError as exc:
        raise Problem(503, "Changes unavailable", f"Redis does not answer ({type(exc).__name__})",
                      headers={"Retry-After": str(settings.retry_after_seconds)}) from None
    # Closed by the stream when it ends; the background task closes it too should the stream never
    # start (the client gone before its first byte), so no subscription outlives its request.
    return EventSourceResponse(_events(tenant_id, subscription), ping=settings.changes_ping_seconds,
                               background=BackgroundTask(subscription.close))
