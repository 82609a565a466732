"""The broker away: 503 with Retry-After, never a 202 for an event not stored; nothing lost once back.

Runs against a private Kafka of its own (the shared broker is never stopped), with ingest as a process.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from shared.kafka import ensure_topics
from tests.conftest import AUTH
from tests.services.ingest.support import PrivateKafka, alert_records


@pytest.fixture
def private_kafka(tmp_path):
    kafka = PrivateKafka(tmp_path).format().start()
    yield kafka
    kafka.kill()


async def post_until_accepted(
    client: httpx.AsyncClient, url: str, body, within: float = 90
) -> httpx.Response:
    """Retry as a sender honouring Retry-After would, until the broker (back) takes the events."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        response = await client.post(url, json=body, headers=AUTH)
        if response.status_code != 503 or loop.time() > deadline:
            return response
        await asyncio.sleep(1)


async def test_broker_stopped_gives_503_and_nothing_is_lost_once_back(
    private_kafka, make_service, topic_prefix, tenant_id
):
    await ensure_topics(private_kafka.bootstrap, topic_prefix)
    ingest = make_service(
        "ingest",
        KAFKA_BOOTSTRAP_SERVERS=private_kafka.bootstrap,
        PUBLISH_TIMEOUT_SECONDS="3",
        INGEST_INSTANCE_ID=f"outage-{tenant_id}",
    ).start()
    url = f"{ingest.url}/v1/tenants/{tenant_id}/alerts"
    async with httpx.AsyncClient(timeout=60) as client:
        before = await client.post(url, json={"id": "before", "severity": "high"}, headers=AUTH)
        assert before.status_code == 202, before.text

        private_kafka.kill()
        during = await client.post(url, json={"id": "during", "severity": "high"}, headers=AUTH)
        assert during.status_code == 503, during.text
        assert int(during.headers["retry-after"]) >= 1
        assert during.headers["content-type"] == "application/problem+json"
        listed = await client.post(url, json={"value": [{"id": "list-1"}, {"id": "list-2"}]}, headers=AUTH)
        assert listed.status_code == 503

        private_kafka.start()
        retried = await post_until_accepted(client, url, {"id": "during", "severity": "high"})
        assert retried.status_code == 202, retried.text
        assert retried.json()["events"] == [{"alertId": "during", "eventType": "alert-created"}]
        relisted = await post_until_accepted(client, url, {"value": [{"id": "list-1"}, {"id": "list-2"}]})
        assert relisted.json()["accepted"] == 2
        # The state from before the outage survived: the same alert again is a duplicate.
        again = await client.post(url, json={"id": "before", "severity": "high"}, headers=AUTH)
        assert again.json() == {"accepted": 0, "duplicates": 1, "events": []}

    records = await alert_records(private_kafka.bootstrap, topic_prefix, tenant_id, at_least=4, within=60)
    assert sorted(r["key"].split(":", 1)[1] for r in records) == ["before", "during", "list-1", "list-2"]
    assert all(r["value"]["eventType"] == "alert-created" for r in records)
    ingest.stop()
