"""How many statements recording an alert costs (#15): a new alert posted alone, the commonest post by
far (one webhook per alert), is recorded with its event in one statement, its own transaction; any
other post still takes the locked path. Real PostgreSQL and Kafka, ``record_alerts`` in-process (the events
read from the topic: a relay of the session may publish the outbox's rows at any time)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import asyncpg
import pytest_asyncio

from services.ingest.config import get_settings
from services.ingest.domain import event_id_for
from services.ingest.recording import record_alerts
from shared import tracing
from shared.alerts import Alert
from shared.db import create_pool
from tests.services.ingest.support import alert_records, running_ingest


@pytest_asyncio.fixture
async def logged_pool(test_env) -> AsyncIterator[tuple[asyncpg.Pool, list[str]]]:
    """A pool of one connection, as the write API's, that notes every statement it sends."""
    statements: list[str] = []
    pool = await create_pool(test_env["DATABASE_URL"], schema="ingest", max_size=1)
    async with pool.acquire() as conn:
        conn.add_query_logger(lambda record: statements.append(" ".join(record.query.split())))
    yield pool, statements
    await pool.close()


# What asyncpg sends by itself: the pool's reset, the introspection of a type the first time it is used.
_OWN = ("SELECT pg_advisory_unlock_all()", "WITH RECURSIVE typeinfo_tree", "SELECT set_config('jit'",
        "SELECT current_setting('jit')")


def _sent(statements: list[str]) -> list[str]:
    return [s for s in statements if not s.startswith(_OWN)]


async def test_a_new_alert_posted_alone_is_recorded_with_its_event_in_one_statement(
    test_env, tenant_id, db_pool, logged_pool, kafka_bootstrap, topic_prefix
):
    pool, statements = logged_pool
    settings = get_settings()
    created = await record_alerts(pool, settings, tenant_id, [Alert.model_validate({"id": "a1", "severity": "low"})])
    assert [e.event_type for e in created] == ["alert-created"]
    assert len(_sent(statements)) == 1, _sent(statements)
    state = await db_pool.fetchrow(
        "SELECT alert, version FROM ingest_alert_state WHERE tenant_id = $1 AND alert_id = 'a1'", tenant_id)
    assert state["version"] == 1
    assert json.loads(state["alert"])["status"] == "active"  # the created state, status defaulted

    # The same alert again, changed: it is known, so the locked path decides it (an update after the creation).
    statements.clear()
    updated = await record_alerts(pool, settings, tenant_id, [Alert.model_validate({"id": "a1", "severity": "high"})])
    assert [e.event_type for e in updated] == ["alert-updated"]
    assert any("FOR UPDATE" in s for s in _sent(statements))

    # Posted again unchanged: a duplicate, nothing enqueued.
    again = [Alert.model_validate({"id": "a1", "severity": "high"})]
    assert await record_alerts(pool, settings, tenant_id, again) == []

    async with running_ingest():  # a relay (this one, or the session's leader) publishes the outbox
        records = await alert_records(kafka_bootstrap, topic_prefix, tenant_id, at_least=2)
    ordered = sorted(records, key=lambda r: r["offset"])
    assert [(r["key"], r["headers"]["eventType"], r["value"]["eventType"], r["value"]["alert"]["severity"])
            for r in ordered] == [(f"{tenant_id}:a1", "alert-created", "alert-created", "low"),
                                  (f"{tenant_id}:a1", "alert-updated", "alert-updated", "high")]
    assert ordered[0]["value"]["eventId"] == str(created[0].event_id)
    assert ordered[0]["value"]["alert"]["status"] == "active"


async def test_new_alerts_posted_at_once_share_one_statement_and_a_repeat_among_them_is_an_update(
    test_env, tenant_id, db_pool, logged_pool
):
    # Group commit: the posts waiting while a statement runs go in the next one, each answered alone.
    pool, statements = logged_pool
    settings = get_settings()
    posts = [[Alert.model_validate({"id": f"a{i}", "severity": "low"})] for i in range(20)]
    posts.append([Alert.model_validate({"id": "a5", "severity": "high"})])  # a5 again, changed, meanwhile
    answers = await asyncio.gather(*(record_alerts(pool, settings, tenant_id, alerts) for alerts in posts))

    assert [[e.event_type for e in events] for events in answers] == [["alert-created"]] * 20 + [["alert-updated"]]
    batched = [s for s in _sent(statements) if s.startswith("WITH posted AS")]
    assert len(batched) == 1, batched
    states = {r["alert_id"]: (r["version"], json.loads(r["alert"])["severity"]) for r in await db_pool.fetch(
        "SELECT alert_id, alert, version FROM ingest_alert_state WHERE tenant_id = $1", tenant_id)}
    assert states == {f"a{i}": (2, "high") if i == 5 else (1, "low") for i in range(20)}


async def test_new_alerts_posted_at_once_each_carry_the_trace_of_their_own_request(
    test_env, tenant_id, logged_pool, spans, kafka_bootstrap, topic_prefix
):
    # The group's statement runs in the task of whichever post came first: each outbox row must still
    # carry the trace context of the request that made its event (#16), not that first one's.
    pool, statements = logged_pool
    settings = get_settings()

    async def post(n: int) -> str:
        with tracing.span(f"POST a{n}") as span:
            await record_alerts(pool, settings, tenant_id, [Alert.model_validate({"id": f"a{n}", "severity": "low"})])
            return f"{span.get_span_context().trace_id:032x}"

    traces = await asyncio.gather(*(post(n) for n in range(5)))
    assert len([s for s in _sent(statements) if s.startswith("WITH posted AS")]) < 5  # grouped
    async with running_ingest():  # a relay (this one, or the session's leader) publishes the outbox
        records = await alert_records(kafka_bootstrap, topic_prefix, tenant_id, at_least=5)
    carried = {r["key"]: r["headers"]["traceparent"].split("-")[1] for r in records}
    assert carried == {f"{tenant_id}:a{n}": traces[n] for n in range(5)}


async def test_each_new_alert_of_a_list_is_serialised_once_for_its_state_its_event_id_and_its_record(
    test_env, tenant_id, db_pool, monkeypatch
):
    # Three serialisations of each new alert were ~15% of the write API's time on lists (#15): the stored
    # state, the text its event's id hashes, and the outbox record are now one text.
    settings = get_settings()
    calls: list[str] = []
    dump = Alert.model_dump_json
    monkeypatch.setattr(Alert, "model_dump_json", lambda self, **kw: calls.append(self.id) or dump(self, **kw))
    alerts = [Alert.model_validate({"id": f"l{i}", "severity": "low"}) for i in range(3)]
    events = await record_alerts(db_pool, settings, tenant_id, alerts)
    monkeypatch.undo()

    assert [e.event_type for e in events] == ["alert-created"] * 3
    assert sorted(calls) == ["l0", "l1", "l2"]
    rows = {r["alert_id"]: r["alert"] for r in await db_pool.fetch(
        "SELECT alert_id, alert FROM ingest_alert_state WHERE tenant_id = $1", tenant_id)}
    values = {json.loads(r["value"])["alert"]["id"]: json.loads(r["value"]) for r in await db_pool.fetch(
        "SELECT value FROM outbox WHERE key LIKE $1::bytea", f"{tenant_id}:%".encode())}
    for event in events:
        stored = json.loads(rows[event.alert.id])
        assert stored == json.loads(event.alert.model_dump_json())
        assert event.event_id == event_id_for(tenant_id, event.alert.id, 1, event.alert)
        if event.alert.id in values:  # not yet published by a relay of the session
            assert values[event.alert.id]["alert"] == stored
            assert values[event.alert.id]["eventId"] == str(event.event_id)
