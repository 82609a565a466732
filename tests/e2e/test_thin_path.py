"""The first thin path end to end, on the real broker: write API -> Kafka -> response time -> read API."""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import AUTH
from tests.support.kafka import read_topic


async def test_posted_alert_is_published_stored_and_listed(system, tenant_id, kafka_bootstrap, topic_prefix):
    alert = {"id": "alert-1", "displayName": "Unusual activity", "severity": "high",
             "detectedDateTime": "2026-11-27T08:00:00+01:00", "isTest": "false"}
    async with httpx.AsyncClient(timeout=10) as http:
        posted = await http.post(f"{system['ingest'].url}/v1/tenants/{tenant_id}/alerts", json=alert, headers=AUTH)
        assert posted.status_code == 202, posted.text
        assert posted.json() == {"accepted": 1, "duplicates": 0,
                                 "events": [{"alertId": "alert-1", "eventType": "alert-created"}]}

        records = await read_topic(kafka_bootstrap, f"{topic_prefix}alerts", count=1,
                                   predicate=lambda r: r["key"] == f"{tenant_id}:alert-1")
        assert len(records) == 1
        event = records[0]["value"]
        assert records[0]["headers"]["eventType"] == "alert-created"
        assert event["eventType"] == "alert-created" and event["tenantId"] == tenant_id
        assert event["alert"]["detectedDateTime"] == "2026-11-27T07:00:00Z"

        listed: list = []
        for _ in range(50):
            response = await http.get(f"{system['scoring'].url}/v1/tenants/{tenant_id}/alerts", headers=AUTH)
            assert response.status_code == 200, response.text
            listed = response.json()["value"]
            if listed:
                break
            await asyncio.sleep(0.2)
        assert [a["id"] for a in listed] == ["alert-1"]
        assert listed[0]["severity"] == "high"
