"""Through the whole system: an alert posted to ingest, answered through the write API by a partner
user, is measured by the response-time service and shown by the read API and the requirement status."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx

from services.response_time.domain import REQUIREMENT_TYPE
from tests.conftest import AUTH
from tests.support.kafka import read_topic


async def poll(fetch, accept, within: float = 60.0):
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await fetch()
        if accept(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"last seen after {within} s: {value}")
        await asyncio.sleep(0.2)


async def test_partner_patch_stops_the_clock_and_the_figures_follow(
    system, tenant_id, kafka_bootstrap, topic_prefix
):
    detected = datetime.now(UTC) - timedelta(hours=3)
    alert = {
        "id": "rt-1",
        "displayName": "Unusual sign-in",
        "severity": "high",
        "detectedDateTime": detected.isoformat(),
    }
    write, read = system["ingest"].url, system["scoring"].url
    async with httpx.AsyncClient(timeout=10, headers=AUTH) as http:
        posted = await http.post(f"{write}/v1/tenants/{tenant_id}/alerts", json=alert)
        assert posted.status_code == 202, posted.text

        async def one_alert():
            return await http.get(f"{read}/v1/tenants/{tenant_id}/alerts/rt-1")

        opened = await poll(one_alert, lambda r: r.status_code == 200)
        assert opened.json()["respondedDateTime"] is None and opened.json()["openAgeHours"] >= 3.0
        figures = (await http.get(f"{read}/v1/tenants/{tenant_id}/response-time")).json()
        assert (figures["openCount"], figures["respondedCount"], figures["compliant"]) == (1, 0, True)

        patched = await http.patch(
            f"{write}/v1/tenants/{tenant_id}/alerts/rt-1", json={"status": "investigating"}
        )
        assert patched.status_code == 202, patched.text
        answered = (await poll(one_alert, lambda r: r.json()["respondedDateTime"] is not None)).json()
        assert answered["status"] == "investigating" and answered["respondedBy"]
        assert 3.0 <= answered["latencyHours"] < 4.0

        figures = (await http.get(f"{read}/v1/tenants/{tenant_id}/response-time")).json()
        assert (figures["openCount"], figures["respondedCount"]) == (0, 1)
        assert 3.0 <= figures["averageResponseTimeInHours"] < 4.0 and figures["compliant"]

    def answered_status(record) -> bool:
        return (
            record["key"] == f"{tenant_id}:{REQUIREMENT_TYPE}"
            and record["value"]["insights"]["respondedCount"] == 1
        )

    statuses = await read_topic(
        kafka_bootstrap, f"{topic_prefix}requirement-status", count=1, timeout=60, predicate=answered_status
    )
    assert statuses and statuses[0]["value"]["complianceStatus"] == "compliant"
    assert statuses[0]["value"]["source"] == "response-time"
