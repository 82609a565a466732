"""The response-time service's own metrics (the shared ones: ``shared/metrics.py``).

- ``csp_response_time_status_total{status}``: each requirement status the service enqueued:
  ``compliant``, ``at_risk`` (compliant, but the projected average is over 24 hours) or ``noncompliant``.
- ``csp_tenants_at_risk``: tenants whose last status was ``at_risk`` or ``noncompliant``, read from the
  service's table of tenants at each scrape (one count over one row per tenant), so every instance
  reports the same figure, and one just started reports it at once.
"""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
from fastapi import FastAPI
from prometheus_client import Counter, Gauge

from shared.metrics import on_scrape
from shared.response_time import ResponseTimeFigures

STATUSES = Counter(
    "csp_response_time_status_total", "Response-time requirement statuses emitted (compliant, at_risk, noncompliant).",
    ["status"])
TENANTS_AT_RISK = Gauge(
    "csp_tenants_at_risk", "Tenants whose response-time requirement is not compliant (at_risk or noncompliant), as "
    "last computed by the response-time service.")


def status_of(figures: ResponseTimeFigures) -> str:
    if not figures.compliant:
        return "noncompliant"
    return "at_risk" if figures.at_risk else "compliant"


def count_status(figures: ResponseTimeFigures) -> None:
    STATUSES.labels(status_of(figures)).inc()


# The figures each tenant was last published with (store.record_published); a tenant never evaluated
# has none and is not at risk.
_AT_RISK = """
SELECT count(*) FROM response_time_tenants
WHERE last_figures IS NOT NULL
  AND (NOT coalesce((last_figures->>'compliant')::boolean, true) OR coalesce((last_figures->>'atRisk')::boolean, false))
"""


async def tenants_at_risk(pool: asyncpg.Pool) -> int:
    return await pool.fetchval(_AT_RISK)


def watch_tenants_at_risk(app: FastAPI, pool: Callable[[], asyncpg.Pool | None]) -> None:
    async def refresh() -> None:
        if (current := pool()) is not None:
            TENANTS_AT_RISK.set(await tenants_at_risk(current))

    on_scrape(app, refresh)
