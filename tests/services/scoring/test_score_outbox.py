"""The one way the scoring service publishes: its outbox (``shared.outbox``), on the real PostgreSQL and
broker. The change and its ``score-changed`` event commit together; a relay publishes; an upgrade keeps
the changes the old ``score_history`` outbox had not published yet; readiness shows a stuck outbox."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx

from shared.events import ScoreChanged
from shared.kafka import event_headers
from tests.services.scoring.conftest import isolated_env
from tests.support.polling import eventually

MIGRATIONS = Path(__file__).resolve().parents[3] / "services" / "scoring" / "migrations"
T0 = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)


async def test_an_upgrade_moves_the_unpublished_score_changes_to_the_outbox_in_their_order(own_database):
    schema = f"scoring_upgrade_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(own_database)

    async def migrate(name: str) -> None:
        async with conn.transaction():
            await conn.execute(f"SET LOCAL search_path TO {schema}")
            await conn.execute((MIGRATIONS / name).read_text())

    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
        await migrate("0030_scoring.sql")
        # As the previous version left it: one change published, two not yet (the old outbox).
        changes = [(uuid.uuid4(), T0 + timedelta(minutes=i), score, previous, published)
                   for i, (score, previous, published) in enumerate(
                       [(12.5, None, True), (37.5, 12.5, False), (62.5, 37.5, False)])]
        await conn.executemany(
            f"""INSERT INTO {schema}.score_history (tenant_id, event_id, created_at, score, projected_score,
                       previous_score, compliant_requirements_count, total_requirements_count, published_at)
                VALUES ('t1', $1, $2, $3, $3, $4, 2, 5, CASE WHEN $5 THEN now() END)""", changes)
        await migrate("0071_read_model.sql")
        await migrate("0072_outbox.sql")

        rows = await conn.fetch(f"SELECT topic, key, value, headers FROM {schema}.outbox ORDER BY id")
        events = [ScoreChanged.model_validate_json(bytes(row["value"])) for row in rows]
        assert [(e.event_id, e.occurred_date_time, e.tenant_id, e.current_score, e.projected_score, e.previous_score,
                 e.compliant_requirements_count, e.total_requirements_count) for e in events] == [
            (event_id, at, "t1", score, score, previous, 2, 5) for event_id, at, score, previous, _ in changes[1:]]
        for row, event in zip(rows, events, strict=True):
            assert (row["topic"], bytes(row["key"])) == ("score-changes", b"t1")
            assert json.loads(row["headers"]) == {"content-type": "application/json", **event_headers(event)}
        columns = await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2",
            schema, "score_history")
        assert "published_at" not in {c["column_name"] for c in columns}  # the history is only the history now
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()


async def test_readiness_shows_the_outbox_and_its_backlog_once_events_cannot_go_out(
    make_service, own_database, scoring_pool, redis_client
):
    process = make_service("scoring", **isolated_env(DATABASE_URL=own_database, OUTBOX_ALARM_SECONDS="1"))
    await asyncio.to_thread(process.start)
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            ready = await http.get(f"{process.url}/health/ready")
            assert ready.status_code == 200 and ready.json()["checks"]["outbox"] == "ok"
            # A record the relay cannot publish (a topic this version does not know) holds the outbox.
            await scoring_pool.execute("INSERT INTO outbox (topic, key, value) VALUES ('no-such-topic', 'k', 'v')")
            stuck = await eventually(lambda: http.get(f"{process.url}/health/ready"),
                                     lambda r: r.status_code == 503, within=30, what="readiness failing")
        outbox = stuck.json()["checks"]["outbox"]
        # It, and the score changes of the statuses this new consumer group reads from the beginning behind it.
        assert re.match(r"failing: RuntimeError: \d+ event\(s\) waiting, the oldest for \d+ s; ", outbox), outbox
        assert "this process's relay: " in outbox
        assert "last error: ValueError: 'no-such-topic' is not a valid Topic" in outbox
        assert stuck.json()["checks"]["kafka"] == "ok"  # the broker is there: the outbox alone is stuck
    finally:
        await asyncio.to_thread(process.stop)
        async for key in redis_client.scan_iter(match=f"{process.env['REDIS_KEY_PREFIX']}*", count=500):
            await redis_client.delete(key)
