"""``GET /alerts/{alertId}/timeline`` of the read API: everything that happened to one alert, newest first,
from the entries the read model made of the owners' events (``timeline.py``, ``timeline_store.py``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from services.scoring import timeline_store
from services.scoring.deps import PoolDep, ReaderDep
from services.scoring.routes_alerts import decode_position, encode_position
from shared.http import Problem

router = APIRouter(prefix="/v1/tenants/{tenant_id}", tags=["alerts"])


def _after(token: str) -> timeline_store.Position:
    """The position a ``skiptoken`` names (an entry's time, place at that instant and key); 422 if not ours."""
    return decode_position(token, int, str)


@router.get("/alerts/{alert_id}/timeline", summary="One alert's timeline, newest first: received, updated, "
            "notified, reminded, escalated, assigned, noted, responded, synced with Partner Center")
async def get_timeline(
    tenant_id: str, alert_id: str, caller: ReaderDep, pool: PoolDep, request: Request,
    top: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 100,
    skip: Annotated[int, Query(ge=0, le=1_000_000, description="Entries to skip (counted from the "
                               "skiptoken's position if there is one).")] = 0,
    skiptoken: Annotated[str | None, Query(max_length=1024, description="Where the page starts; from "
                                           "`@odata.nextLink`, opaque.")] = None,
) -> dict[str, Any]:
    after = _after(skiptoken) if skiptoken else None
    rows = await timeline_store.page(pool, tenant_id, alert_id, top=top + 1, skip=skip, after=after)
    if not rows and not await timeline_store.alert_known(pool, tenant_id, alert_id):
        raise Problem(404, "Alert not found", f"no alert {alert_id!r} for tenant {tenant_id!r}")
    body: dict[str, Any] = {"value": [timeline_store.wire_of(row) for row in rows[:top]]}
    if len(rows) > top:
        # The next page starts after this page's last entry (keyset): entries arriving in between
        # (newer ones, at the top) do not shift it.
        following = request.url.remove_query_params("skip").include_query_params(
            top=top, skiptoken=encode_position(*timeline_store.position(rows[top - 1])))
        body["@odata.nextLink"] = str(following)
    return body
