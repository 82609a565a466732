"""Alert events leave through the outbox, written in the transaction that records the alerts' new
states: what is refused or rolled back is never published, what commits is, once. Real PostgreSQL and
Kafka, the write API in-process."""

from __future__ import annotations

from services.ingest.store import AlertStates
from tests.conftest import AUTH
from tests.services.ingest.support import alert_records, running_ingest
from tests.support.polling import eventually


async def waiting_rows(db_pool, tenant_id: str) -> int:
    return await db_pool.fetchval(
        "SELECT count(*) FROM ingest.outbox WHERE convert_from(key, 'UTF8') LIKE $1 || ':%'", tenant_id)


async def test_an_alert_whose_event_could_never_be_a_record_is_413_and_nothing_is_stored(
    test_env, tenant_id, db_pool, kafka_bootstrap, topic_prefix, monkeypatch
):
    monkeypatch.setenv("MAX_EVENT_BYTES", "10000")
    url = f"/v1/tenants/{tenant_id}/alerts"
    async with running_ingest() as client:
        refused = await client.post(url, json={"value": [{"id": "small"}, {"id": "huge", "description": "x" * 20_000}]},
                                    headers=AUTH)
        assert refused.status_code == 413, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["alertId"] == "huge"
        assert await waiting_rows(db_pool, tenant_id) == 0
        # Nothing of the refused list was stored: the small alert is still new.
        accepted = await client.post(url, json={"id": "small"}, headers=AUTH)
        assert accepted.json()["events"] == [{"alertId": "small", "eventType": "alert-created"}]
        records = await alert_records(kafka_bootstrap, topic_prefix, tenant_id, at_least=1)
    assert [r["key"] for r in records] == [f"{tenant_id}:small"]


async def test_a_post_that_rolls_back_publishes_nothing_and_its_retry_publishes_once(
    test_env, tenant_id, db_pool, kafka_bootstrap, topic_prefix, monkeypatch
):
    url = f"/v1/tenants/{tenant_id}/alerts"

    async def save_fails(self, changed):
        raise ConnectionError("injected: the database went away while recording the new states")

    async with running_ingest() as client:
        assert (await client.post(url, json={"id": "a1", "severity": "low"}, headers=AUTH)).status_code == 202
        await eventually(lambda: waiting_rows(db_pool, tenant_id), lambda n: n == 0, what="a1 created, published")
        with monkeypatch.context() as patch:
            patch.setattr(AlertStates, "save", save_fails)
            failed = await client.post(url, json={"value": [{"id": "a1", "severity": "high"}, {"id": "a2"}]},
                                       headers=AUTH)
        assert failed.status_code == 503, failed.text
        assert await waiting_rows(db_pool, tenant_id) == 0
        retried = await client.post(url, json={"value": [{"id": "a1", "severity": "high"}, {"id": "a2"}]},
                                    headers=AUTH)
        assert retried.json()["events"] == [{"alertId": "a1", "eventType": "alert-updated"},
                                            {"alertId": "a2", "eventType": "alert-created"}]
        records = await alert_records(kafka_bootstrap, topic_prefix, tenant_id, at_least=3)
    ordered = sorted(records, key=lambda r: (r["key"], r["offset"]))
    assert [(r["key"].split(":", 1)[1], r["value"]["eventType"]) for r in ordered] == [
        ("a1", "alert-created"), ("a1", "alert-updated"), ("a2", "alert-created")]
    assert ordered[1]["value"]["alert"]["severity"] == "high"
