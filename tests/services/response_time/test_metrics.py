"""The response-time service's metrics (#16): each status it emits counted by compliance, and the tenants
at risk read from its table of tenants, as store.record_published leaves it."""

from __future__ import annotations

from prometheus_client import REGISTRY

from services.response_time import metrics, store
from services.response_time.status import status_event
from shared.response_time import ResponseTimeFigures
from shared.wire import utcnow


def figures(*, compliant: bool, at_risk: bool) -> ResponseTimeFigures:
    return ResponseTimeFigures(
        average_response_time_in_hours=30.0 if not compliant else 10.0, responded_count=2, open_count=1,
        oldest_open_age_hours=5.0, projected_average_response_time_in_hours=30.0 if at_risk else 10.0,
        compliant=compliant, at_risk=at_risk, open_alert_near_limit=False)


def test_a_status_is_compliant_at_risk_or_noncompliant():
    assert metrics.status_of(figures(compliant=True, at_risk=False)) == "compliant"
    assert metrics.status_of(figures(compliant=True, at_risk=True)) == "at_risk"
    assert metrics.status_of(figures(compliant=False, at_risk=True)) == "noncompliant"
    before = REGISTRY.get_sample_value("csp_response_time_status_total", {"status": "at_risk"}) or 0
    metrics.count_status(figures(compliant=True, at_risk=True))
    assert REGISTRY.get_sample_value("csp_response_time_status_total", {"status": "at_risk"}) == before + 1


async def test_tenants_at_risk_are_those_whose_last_status_was_not_plainly_compliant(own_rt_pool):
    last = {"fine": figures(compliant=True, at_risk=False), "risky": figures(compliant=True, at_risk=True),
            "failing": figures(compliant=False, at_risk=True), "never-published": None}
    for tenant_id, published in last.items():
        async with own_rt_pool.acquire() as conn, conn.transaction():
            await store.lock_tenant(conn, tenant_id)  # the row every evaluated tenant has
            if published is not None:
                await store.record_published(conn, status_event(tenant_id, published, utcnow()), published)
    assert await metrics.tenants_at_risk(own_rt_pool) == 2
    # A tenant back to compliant leaves the count.
    async with own_rt_pool.acquire() as conn, conn.transaction():
        await store.lock_tenant(conn, "risky")
        fine = figures(compliant=True, at_risk=False)
        await store.record_published(conn, status_event("risky", fine, utcnow()), fine)
    assert await metrics.tenants_at_risk(own_rt_pool) == 1
