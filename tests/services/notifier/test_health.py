"""The notifier's readiness tells of its outbox: events that wait too long make it fail, saying why."""

from __future__ import annotations

import uuid

import httpx

from shared.db import create_pool
from shared.kafka import ensure_topics
from tests.support.polling import eventually


async def readiness(url: str) -> tuple[int, dict]:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(f"{url}/health/ready")
    return response.status_code, response.json()


async def test_an_outbox_that_cannot_publish_makes_the_notifier_not_ready_until_it_flows_again(
    start_notifier, own_database, kafka_bootstrap, topic_prefix
):
    # A database of its own: the row below stops its relay (rows go out in order) for as long as it is
    # there. Topics of its own: nothing else is consumed, so nothing else waits in its outbox.
    prefix = f"{topic_prefix}health-{uuid.uuid4().hex[:6]}-"
    await ensure_topics(kafka_bootstrap, prefix)
    notifier = start_notifier(DATABASE_URL=own_database, KAFKA_TOPIC_PREFIX=prefix, OUTBOX_ALARM_SECONDS="1")
    pool = await create_pool(own_database, schema="notifier")
    try:
        await pool.execute("INSERT INTO outbox (topic, key, value) VALUES ('no-such-topic', 'k', 'v')")
        status, body = await eventually(lambda: readiness(notifier.url), lambda answer: answer[0] == 503,
                                        what="the notifier not ready")
        check = body["checks"]["outbox"]
        assert check.startswith("failing: RuntimeError: 1 event(s) waiting, the oldest for "), check
        assert "last error: ValueError" in check  # the relay says what stops it
        assert {name: state for name, state in body["checks"].items() if name != "outbox"} == {
            "postgres": "ok", "kafka": "ok", "worker": "ok"}

        await pool.execute("DELETE FROM outbox WHERE topic = 'no-such-topic'")
        await eventually(lambda: readiness(notifier.url), lambda answer: answer[0] == 200, what="ready again")
    finally:
        await pool.close()
