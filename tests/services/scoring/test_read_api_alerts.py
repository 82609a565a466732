"""The read API's response-time routes (GET /response-time, GET /alerts[/{id}]) over its read model, on
the real PostgreSQL: the routes mounted alone in-process, with the state the scoring app wires, and the
read model filled as its consumer fills it (``read_model.apply_alert_response_times``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from services.scoring import read_model, routes_alerts, routes_response_time
from shared.auth import KeyStore
from shared.http import install_problem_handlers
from tests.conftest import AUTH
from tests.services.scoring.read_model_events import alert_response_time

H = timedelta(hours=1)


@pytest_asyncio.fixture
async def read_api(db_pool):
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(routes_response_time.router)
    app.include_router(routes_alerts.router)
    app.state.pool = db_pool
    app.state.keys = KeyStore("dev-admin-key", db_pool)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://read-api") as client:
        yield client


async def known(db_pool, tenant_id: str, alert_id: str, clock_started_at: datetime, **fields) -> None:
    """The read model's consumer applies the response-time service's event of this alert."""
    assert await read_model.apply_alert_response_times(
        db_pool, [alert_response_time(tenant_id, alert_id, clock_started_at, **fields)])


async def test_response_time_figures(read_api, db_pool, tenant_id):
    now = datetime.now(UTC)
    await known(db_pool, tenant_id, "answered", now - 30 * H, responded_at=now - 10 * H, status="investigating")
    await known(db_pool, tenant_id, "open", now - 5 * H)
    response = await read_api.get(f"/v1/tenants/{tenant_id}/response-time", headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {
        "averageResponseTimeInHours",
        "windowDays",
        "respondedCount",
        "openCount",
        "oldestOpenAgeHours",
        "projectedAverageResponseTimeInHours",
        "compliant",
        "atRisk",
        "openAlertNearLimit",
    }
    assert (
        body["averageResponseTimeInHours"],
        body["windowDays"],
        body["respondedCount"],
        body["openCount"],
    ) == (20.0, 30, 1, 1)
    assert 5.0 <= body["oldestOpenAgeHours"] < 6.0
    assert 12.5 <= body["projectedAverageResponseTimeInHours"] < 13.5
    assert body["compliant"] is True and body["atRisk"] is False


async def test_empty_tenant_is_compliant_with_null_average(read_api, tenant_id):
    body = (await read_api.get(f"/v1/tenants/{tenant_id}/response-time", headers=AUTH)).json()
    assert (
        body["averageResponseTimeInHours"] is None
        and body["compliant"] is True
        and body["respondedCount"] == 0
    )


async def test_response_time_needs_a_key(read_api, tenant_id):
    response = await read_api.get(f"/v1/tenants/{tenant_id}/response-time")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_alerts_list_latency_filter_and_paging(read_api, db_pool, tenant_id):
    now = datetime.now(UTC).replace(microsecond=0)
    for i in range(5):
        if i == 1:
            await known(db_pool, tenant_id, "a1", now - 9 * H, responded_at=now - 6 * H, status="resolved")
        else:
            await known(db_pool, tenant_id, f"a{i}", now - (10 - i) * H)

    listed = (await read_api.get(f"/v1/tenants/{tenant_id}/alerts", headers=AUTH)).json()["value"]
    assert [a["id"] for a in listed] == ["a4", "a3", "a2", "a1", "a0"]  # newest first
    answered = next(a for a in listed if a["id"] == "a1")
    assert answered["status"] == "resolved" and answered["latencyHours"] == 3.0
    assert answered["respondedBy"] == "ana@partner.example" and answered["openAgeHours"] is None
    assert answered["respondedDateTime"] == (now - 6 * H).isoformat().replace("+00:00", "Z")
    assert answered["clockStartedDateTime"] == (now - 9 * H).isoformat().replace("+00:00", "Z")
    still_open = next(a for a in listed if a["id"] == "a0")
    assert still_open["latencyHours"] is None and still_open["openAgeHours"] >= 10.0

    resolved = (await read_api.get(f"/v1/tenants/{tenant_id}/alerts?status=resolved", headers=AUTH)).json()
    assert [a["id"] for a in resolved["value"]] == ["a1"]
    unanswered = (await read_api.get(f"/v1/tenants/{tenant_id}/alerts?responded=false", headers=AUTH)).json()
    assert [a["id"] for a in unanswered["value"]] == ["a4", "a3", "a2", "a0"]

    page = (await read_api.get(f"/v1/tenants/{tenant_id}/alerts?top=2", headers=AUTH)).json()
    assert [a["id"] for a in page["value"]] == ["a4", "a3"]
    next_page = (await read_api.get(page["@odata.nextLink"], headers=AUTH)).json()
    assert [a["id"] for a in next_page["value"]] == ["a2", "a1"]
    last = (await read_api.get(next_page["@odata.nextLink"], headers=AUTH)).json()
    assert [a["id"] for a in last["value"]] == ["a0"] and "@odata.nextLink" not in last


async def test_pages_follow_positions_so_new_alerts_and_ties_never_shift_them(read_api, db_pool, tenant_id):
    now = datetime.now(UTC).replace(microsecond=0)
    for alert_id, hours_ago in (("b", 3), ("c", 3), ("a", 5), ("d", 1)):  # b and c start together
        await known(db_pool, tenant_id, alert_id, now - hours_ago * H)
    url = f"/v1/tenants/{tenant_id}/alerts?top=2"
    first = (await read_api.get(url, headers=AUTH)).json()
    assert [a["id"] for a in first["value"]] == ["d", "c"]  # ties: by id, descending
    assert "skip=" not in first["@odata.nextLink"] and "skiptoken=" in first["@odata.nextLink"]
    # A newer alert arrives between two pages: an offset would show "c" again; a position does not.
    await known(db_pool, tenant_id, "e", now)
    second = (await read_api.get(first["@odata.nextLink"], headers=AUTH)).json()
    assert [a["id"] for a in second["value"]] == ["b", "a"] and "@odata.nextLink" not in second
    # An offset still works, and counts from the position when both are given.
    assert [a["id"] for a in (await read_api.get(f"{url}&skip=1", headers=AUTH)).json()["value"]] == ["d", "c"]
    token = first["@odata.nextLink"].split("skiptoken=")[1]
    after_b = await read_api.get(f"{url}&skiptoken={token}&skip=1", headers=AUTH)
    assert [a["id"] for a in after_b.json()["value"]] == ["a"]


@pytest.mark.parametrize("token", ["nonsense", "bm90LWpzb24", "WzEsMl0", "WyIyMDI2LTExLTI3VDEwOjAwOjAwIiwgImEiXQ"])
async def test_a_skiptoken_not_from_this_api_is_a_422_naming_it(read_api, tenant_id, token):
    # garbage, base64 of non-JSON, [1, 2], and a position without a time zone
    response = await read_api.get(f"/v1/tenants/{tenant_id}/alerts?skiptoken={token}", headers=AUTH)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "query.skiptoken"


async def test_bad_status_filter_is_a_422_naming_the_field(read_api, tenant_id):
    response = await read_api.get(f"/v1/tenants/{tenant_id}/alerts?status=closed", headers=AUTH)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "query.status"


async def test_one_alert_and_unknown_alert(read_api, db_pool, tenant_id):
    now = datetime.now(UTC)
    await known(db_pool, tenant_id, "x", now - 2 * H, responded_at=now - H, status="investigating")
    one = await read_api.get(f"/v1/tenants/{tenant_id}/alerts/x", headers=AUTH)
    assert one.status_code == 200 and one.json()["latencyHours"] == 1.0
    missing = await read_api.get(f"/v1/tenants/{tenant_id}/alerts/nope", headers=AUTH)
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")


async def test_a_closed_unanswered_alert_is_listed_as_neither_open_nor_counted(read_api, db_pool, tenant_id):
    now = datetime.now(UTC)
    await known(db_pool, tenant_id, "auto", now - 5 * H, status="resolved")  # resolved by the system
    one = (await read_api.get(f"/v1/tenants/{tenant_id}/alerts/auto", headers=AUTH)).json()
    assert (one["status"], one["respondedDateTime"], one["openAgeHours"]) == ("resolved", None, None)
    assert one["countsTowardResponseTime"] is False
    figures = (await read_api.get(f"/v1/tenants/{tenant_id}/response-time", headers=AUTH)).json()
    assert (figures["openCount"], figures["respondedCount"], figures["oldestOpenAgeHours"]) == (0, 0, None)


async def test_severity_and_customer_filters(read_api, db_pool, tenant_id):
    now = datetime.now(UTC).replace(microsecond=0)
    await known(db_pool, tenant_id, "h1", now - 3 * H, severity="high", customerTenantId="cust-a")
    await known(db_pool, tenant_id, "l1", now - 2 * H, severity="low", customerTenantId="cust-a")
    await known(db_pool, tenant_id, "h2", now - 1 * H, severity="high", customerTenantId="cust-b")

    async def ids(query: str) -> list[str]:
        response = await read_api.get(f"/v1/tenants/{tenant_id}/alerts?{query}", headers=AUTH)
        assert response.status_code == 200, response.text
        return [a["id"] for a in response.json()["value"]]

    assert await ids("severity=high") == ["h2", "h1"]
    assert await ids("customerTenantId=cust-a") == ["l1", "h1"]
    assert await ids("severity=high&customerTenantId=cust-a") == ["h1"]
    assert await ids("customerTenantId=CUST-A") == []  # exact
    assert await ids("severity=medium") == []
    bad = await read_api.get(f"/v1/tenants/{tenant_id}/alerts?severity=severe", headers=AUTH)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.severity"


async def test_time_left_and_the_open_alerts_least_time_left_first(read_api, db_pool, tenant_id):
    now = datetime.now(UTC).replace(microsecond=0)
    await known(db_pool, tenant_id, "young", now - 2 * H)
    await known(db_pool, tenant_id, "old", now - 23 * H)
    await known(db_pool, tenant_id, "late", now - 30 * H)
    await known(db_pool, tenant_id, "tie-b", now - 10 * H)
    await known(db_pool, tenant_id, "tie-a", now - 10 * H)
    await known(db_pool, tenant_id, "answered", now - 40 * H, responded_at=now - 39 * H, status="investigating")
    await known(db_pool, tenant_id, "closed", now - 50 * H, status="resolved")  # closed unanswered
    await known(db_pool, tenant_id, "test", now - 60 * H, is_test=True)  # no clock that counts

    listed = {a["id"]: a for a in (await read_api.get(f"/v1/tenants/{tenant_id}/alerts",
                                                      headers=AUTH)).json()["value"]}
    assert 21.9 < listed["young"]["timeLeftHours"] <= 22.0
    assert 0.9 < listed["old"]["timeLeftHours"] <= 1.0
    assert -6.1 < listed["late"]["timeLeftHours"] <= -6.0  # past the 24 hours: negative
    assert listed["answered"]["timeLeftHours"] is None and listed["closed"]["timeLeftHours"] is None
    one = (await read_api.get(f"/v1/tenants/{tenant_id}/alerts/old", headers=AUTH)).json()
    assert 0.9 < one["timeLeftHours"] <= 1.0

    url = f"/v1/tenants/{tenant_id}/alerts?orderby=timeLeft&top=2"
    pages, page = [], (await read_api.get(url, headers=AUTH)).json()
    while True:
        pages.append([a["id"] for a in page["value"]])
        if "@odata.nextLink" not in page:
            break
        assert "orderby=timeLeft" in page["@odata.nextLink"]
        page = (await read_api.get(page["@odata.nextLink"], headers=AUTH)).json()
    # open alerts only, the clock started first (least time left) first; ties by id
    assert pages == [["late", "old"], ["tie-a", "tie-b"], ["young"]]
    # a newer open alert arriving between two pages does not shift them
    first = (await read_api.get(url, headers=AUTH)).json()
    await known(db_pool, tenant_id, "older-still", now - 35 * H)
    second = (await read_api.get(first["@odata.nextLink"], headers=AUTH)).json()
    assert [a["id"] for a in second["value"]] == ["tie-a", "tie-b"]
    with_filter = (await read_api.get(f"{url}&severity=high&top=10", headers=AUTH)).json()["value"]
    assert [a["id"] for a in with_filter] == ["older-still", "late", "old", "tie-a", "tie-b", "young"]
    bad = await read_api.get(f"/v1/tenants/{tenant_id}/alerts?orderby=severity", headers=AUTH)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.orderby"


async def test_the_response_time_trend(read_api, db_pool, tenant_id):
    now = datetime.now(UTC)
    today = now.date()
    # Answered 45 days ago: outside today's window, inside the windows of the trend's first days.
    await known(db_pool, tenant_id, "long-ago", now - 45 * 24 * H - 6 * H, responded_at=now - 45 * 24 * H,
                status="resolved")
    await known(db_pool, tenant_id, "recent", now - 3 * H, responded_at=now - 1 * H, status="investigating")
    await known(db_pool, tenant_id, "test", now - 30 * H, responded_at=now - 2 * H, is_test=True,
                status="resolved")
    await known(db_pool, tenant_id, "open", now - 5 * H)

    response = await read_api.get(f"/v1/tenants/{tenant_id}/response-time/trend", headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["limitHours"], body["goalHours"], body["windowDays"]) == (24.0, 1.0, 30)
    points = body["value"]
    assert len(points) == 30 and points[-1]["date"] == today.isoformat()
    assert points[0]["date"] == (today - timedelta(days=29)).isoformat()
    assert set(points[0]) == {"date", "averageResponseTimeInHours", "respondedCount"}
    assert (points[0]["averageResponseTimeInHours"], points[0]["respondedCount"]) == (6.0, 1)
    assert (points[-1]["averageResponseTimeInHours"], points[-1]["respondedCount"]) == (2.0, 1)
    now_figures = (await read_api.get(f"/v1/tenants/{tenant_id}/response-time", headers=AUTH)).json()
    assert now_figures["averageResponseTimeInHours"] == points[-1]["averageResponseTimeInHours"]

    week = (await read_api.get(f"/v1/tenants/{tenant_id}/response-time/trend?days=7", headers=AUTH)).json()
    assert [p["date"] for p in week["value"]] == [(today - timedelta(days=6 - i)).isoformat() for i in range(7)]
    for days in (0, 91, "x"):
        bad = await read_api.get(f"/v1/tenants/{tenant_id}/response-time/trend?days={days}", headers=AUTH)
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.days"
    assert (await read_api.get(f"/v1/tenants/{tenant_id}/response-time/trend")).status_code == 401
