"""The broker away: a write is still accepted (202) once its events are committed to the outbox, and
they reach the topic once the broker is back, in order per alert, none lost and none twice; ingest
stays ready meanwhile and its readiness shows the waiting events.

Runs against a private Kafka of its own (the shared broker is never stopped) and a database of its own
(so no other ingest relays its outbox), with ingest as a process.
"""

from __future__ import annotations

import httpx
import pytest

from shared.kafka import ensure_topics
from tests.conftest import AUTH
from tests.services.ingest.support import PrivateKafka, alert_records
from tests.support.polling import eventually


@pytest.fixture
def private_kafka(tmp_path):
    kafka = PrivateKafka(tmp_path).format().start()
    yield kafka
    kafka.kill()


async def test_broker_stopped_writes_are_accepted_and_published_in_order_once_back(
    private_kafka, make_service, topic_prefix, tenant_id, own_database
):
    await ensure_topics(private_kafka.bootstrap, topic_prefix)
    ingest = make_service("ingest", KAFKA_BOOTSTRAP_SERVERS=private_kafka.bootstrap, DATABASE_URL=own_database).start()
    url = f"{ingest.url}/v1/tenants/{tenant_id}/alerts"
    async with httpx.AsyncClient(timeout=60) as client:
        before = await client.post(url, json={"id": "before", "severity": "high"}, headers=AUTH)
        assert before.status_code == 202, before.text
        await alert_records(private_kafka.bootstrap, topic_prefix, tenant_id, at_least=1)

        private_kafka.kill()
        during = await client.post(url, json={"id": "during", "severity": "high"}, headers=AUTH)
        assert during.status_code == 202, during.text
        assert during.json()["events"] == [{"alertId": "during", "eventType": "alert-created"}]
        listed = await client.post(url, json={"value": [{"id": "list-1"}, {"id": "list-2"}]}, headers=AUTH)
        assert listed.status_code == 202 and listed.json()["accepted"] == 2
        patched = await client.patch(f"{url}/before", json={"status": "investigating"}, headers=AUTH)
        assert patched.status_code == 202, patched.text
        resolved = await client.patch(f"{url}/before", json={"status": "resolved"}, headers=AUTH)
        assert resolved.status_code == 202, resolved.text
        # The state is stored: the same alert again is a duplicate, at once.
        again = await client.post(url, json={"id": "during", "severity": "high"}, headers=AUTH)
        assert again.json() == {"accepted": 0, "duplicates": 1, "events": []}

        ready = await client.get(f"{ingest.url}/health/ready")
        assert ready.status_code == 200, ready.text  # writes are durable: ingest stays ready
        assert ready.json()["checks"] == {"postgres": "ok"}
        assert ready.json()["outbox"]["backlog"] == 5, ready.json()
        assert ready.json()["kafka"].startswith("failing"), ready.json()

        private_kafka.start()
        records = await alert_records(private_kafka.bootstrap, topic_prefix, tenant_id, at_least=6, within=90)
        drained = await eventually(lambda: client.get(f"{ingest.url}/health/ready"),
                                   lambda r: r.json()["outbox"]["backlog"] == 0, what="the outbox drained")
        assert drained.json()["kafka"] == "ok" and drained.json()["outbox"]["lastError"] is None

    by_key = {}
    for record in sorted(records, key=lambda r: (r["partition"], r["offset"])):
        by_key.setdefault(record["key"].split(":", 1)[1], []).append(record["value"])
    assert sorted(by_key) == ["before", "during", "list-1", "list-2"]
    assert [(e["eventType"], e["alert"]["status"]) for e in by_key["before"]] == [
        ("alert-created", "active"), ("alert-updated", "investigating"), ("alert-updated", "resolved")]
    assert all([e["eventType"] for e in by_key[k]] == ["alert-created"] for k in ("during", "list-1", "list-2"))
    assert len({e["eventId"] for events in by_key.values() for e in events}) == 6  # none twice
    ingest.stop()
