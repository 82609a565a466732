"""``GET /response-time`` of the read API: the figures of SPEC §3, computed at read time.

Computed on each request from the read model of ``alert-response-times`` (two index range scans,
O(responses in the window + open alerts)) with the response-time service's own pure functions
(``shared.response_time``), so it is current the moment an alert's event is applied.

``GET /response-time/trend``: the same average as of the end of each of the last days
(``trend.py``), from the responses of the read model.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import Field

from services.scoring import read_model, trend
from services.scoring.deps import PoolDep, ReaderDep
from shared.response_time import WINDOW_DAYS, ResponseTimeFigures
from shared.responses import RESPONSE_TARGET_HOURS
from shared.wire import WireModel, utcnow

router = APIRouter(prefix="/v1/tenants/{tenant_id}", tags=["response time"])


@router.get("/response-time", response_model=ResponseTimeFigures,
            summary="The rolling 30-day average response time and the open alerts beside it")
async def get_response_time(tenant_id: str, caller: ReaderDep, pool: PoolDep) -> ResponseTimeFigures:
    return await read_model.current_figures(pool, tenant_id, utcnow())


class TrendPoint(WireModel):
    date: dt.date = Field(description="The UTC day (YYYY-MM-DD).")
    average_response_time_in_hours: float | None = Field(
        description="The rolling 30-day average as of the end of that day (today: as of now); null if no "
        "response in that window.")
    responded_count: int = Field(description="The responses in that window.")


class ResponseTimeTrend(WireModel):
    value: list[TrendPoint] = Field(description="One point per day, oldest first; the last is today.")
    limit_hours: float = Field(float(RESPONSE_TARGET_HOURS), description="The requirement's limit.")
    goal_hours: float = Field(trend.GOAL_HOURS, description="The goal the requirement names.")
    window_days: int = Field(WINDOW_DAYS, description="Length of each point's rolling window.")


@router.get("/response-time/trend", response_model=ResponseTimeTrend,
            summary="The rolling 30-day average response time as of the end of each of the last days")
async def get_response_time_trend(
    tenant_id: str, caller: ReaderDep, pool: PoolDep,
    days: Annotated[int, Query(ge=1, le=trend.MAX_DAYS, description="How many days, today included.")] = 30,
) -> ResponseTimeTrend:
    now = utcnow()
    responses = await read_model.responses_after(pool, tenant_id, trend.first_response_needed_after(now, days))
    return ResponseTimeTrend(value=[
        TrendPoint(date=p.date, average_response_time_in_hours=p.average_hours, responded_count=p.responded_count)
        for p in trend.daily_averages(responses, now, days)])
