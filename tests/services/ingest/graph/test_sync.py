"""The poller and the write-back worker in-process, on the real PostgreSQL (a database of each test's
own: no other poller takes its connections) and the Graph emulator (a real HTTP server)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest_asyncio

from services.ingest.config import Settings
from services.ingest.graph import store
from services.ingest.graph.clients import GraphClients
from services.ingest.graph.credentials import GraphCredentials, to_sealable
from services.ingest.graph.poller import Poller
from services.ingest.graph.writeback import WritebackWorker, queue_writebacks
from services.ingest.recording import record_alerts
from shared.alerts import Alert
from shared.db import create_pool
from shared.events import Actor, ActorType
from shared.sealed import seal
from tests.support.polling import eventually

TENANT = "tenant-graph"


@pytest_asyncio.fixture
async def pool(own_database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(own_database, schema="ingest")
    yield pool
    await pool.close()


@pytest_asyncio.fixture
async def graph(graph_emulator, pool) -> AsyncIterator[dict]:
    """A connection of ``TENANT`` to a directory of its own in the emulator, the poller and the worker."""
    settings = Settings(
        graph_base_url=graph_emulator.base_url,
        graph_login_base_url=graph_emulator.base_url,
        graph_poll_interval=3600,
        graph_writeback_max_backoff_seconds=1,
    )
    directory_id, client_id, secret = str(uuid.uuid4()), str(uuid.uuid4()), uuid.uuid4().hex
    graph_emulator.register_app(directory_id, client_id, secret=secret)
    sealed = seal(
        to_sealable(GraphCredentials(directory_id, client_id, client_secret=secret)), settings.sealing_key_list
    )
    await store.put_connection(
        pool,
        TENANT,
        directory_id=directory_id,
        client_id=client_id,
        credential_type="clientSecret",
        sealed_credentials=sealed,
        certificate_thumbprint=None,
    )
    async with httpx.AsyncClient(timeout=10) as http:
        clients = GraphClients(settings, http)
        yield {
            "directory": directory_id,
            "client_id": client_id,
            "settings": settings,
            "poller": Poller(pool, settings, clients, owner="test"),
            "worker": WritebackWorker(pool, settings, clients),
        }


async def alert_events(pool) -> list[dict]:
    rows = await pool.fetch(
        "SELECT convert_from(value, 'UTF8') AS value FROM outbox WHERE topic = 'alerts' ORDER BY id"
    )
    return [json.loads(r["value"]) for r in rows]


async def respond(pool, settings, alert_id: str, status: str, reason: str | None = None) -> None:
    """A response through the write API's path (as PATCH /alerts/{id} records it)."""
    from services.ingest.domain import patched
    from shared.alerts import AlertStatus, ResolvedReason

    actor = Actor(type=ActorType.user, id="ann@partner.example")

    def apply(previous: Alert, now):
        return patched(
            previous,
            status=AlertStatus(status),
            resolved_reason=ResolvedReason(reason) if reason else None,
            fields={"status", "resolved_reason"} if reason else {"status"},
            actor=actor,
            now=now,
        )

    await record_alerts(
        pool, settings, TENANT, [Alert(id=alert_id)], api_actor=actor, patch=apply, after=queue_writebacks
    )


async def test_a_poll_reads_every_page_through_the_webhook_path_and_a_second_poll_only_changes(
    graph, graph_emulator, pool
):
    directory = graph["directory"]
    graph_emulator.set_page_size(directory, 2)
    alerts = [graph_emulator.add_alert(directory, displayName=f"alert {n}") for n in range(5)]

    assert await graph["poller"].run_once() is True
    created = [e for e in await alert_events(pool) if e["eventType"] == "alert-created"]
    assert sorted(e["alert"]["id"] for e in created) == sorted(a["id"] for a in alerts)
    listing = [r for r in graph_emulator.requests(directory) if r["method"] == "GET"]
    assert len(listing) == 3 and "$filter" not in listing[0]["query"]  # the first poll reads all, 3 pages
    state = await store.get_connection(pool, TENANT)
    assert state.last_success_at is not None and state.last_error is None and state.alerts_seen == 5
    assert await graph["poller"].run_once() is False  # not due again before GRAPH_POLL_INTERVAL

    # Due again: only open alerts and those resolved lately are asked for; unchanged ones are duplicates.
    await pool.execute("UPDATE graph_connections SET next_poll_at = now()")
    graph_emulator.change_in_partner_center(
        directory, alerts[0]["id"], status="investigating", by="carol@partner.example"
    )
    assert await graph["poller"].run_once() is True
    second = [r for r in graph_emulator.requests(directory) if r["method"] == "GET"][len(listing) :]
    assert "status ne 'resolved'" in second[0]["query"]["$filter"]
    updates = [e for e in await alert_events(pool) if e["eventType"] == "alert-updated"]
    assert [(u["alertId"], u["statusChanges"][0]["actor"]["id"]) for u in updates] == [
        (alerts[0]["id"], "carol@partner.example")
    ]


async def test_two_pollers_never_poll_one_connection_at_once(graph, graph_emulator, pool):
    import asyncio

    graph_emulator.add_alert(graph["directory"])
    other = Poller(pool, graph["settings"], GraphClients(graph["settings"], httpx.AsyncClient()), owner="other")
    results = await asyncio.gather(graph["poller"].run_once(), other.run_once())
    assert sorted(results) == [False, True]
    assert len([r for r in graph_emulator.requests(graph["directory"]) if r["method"] == "GET"]) == 1


async def test_a_response_is_written_back_once_and_its_echo_is_not_a_response(graph, graph_emulator, pool):
    directory = graph["directory"]
    alert = graph_emulator.add_alert(directory)
    await graph["poller"].run_once()
    await respond(pool, graph["settings"], alert["id"], "resolved", "legitimate")

    assert await graph["worker"].run_once() == 1
    assert [p["body"] for p in graph_emulator.patches(directory)] == [
        {"status": "resolved", "resolvedReason": "legitimate"}
    ]
    row = await pool.fetchrow("SELECT state FROM graph_alert_sync WHERE alert_id = $1", alert["id"])
    assert row["state"] == "synced"
    assert await graph["worker"].run_once() == 0

    # The next poll reads Partner Center's record of our PATCH: the system's, never a second response.
    await pool.execute("UPDATE graph_connections SET next_poll_at = now()")
    before = len(await alert_events(pool))
    await graph["poller"].run_once()
    for event in (await alert_events(pool))[before:]:
        assert all(change["actor"]["type"] == "system" for change in event.get("statusChanges", []))
    assert await graph["worker"].run_once() == 0
    assert len(graph_emulator.patches(directory)) == 1


async def test_partner_centers_newer_change_wins_over_a_waiting_response(graph, graph_emulator, pool):
    directory = graph["directory"]
    alert = graph_emulator.add_alert(directory)
    await graph["poller"].run_once()
    graph_emulator.set_down(directory, True)
    await respond(pool, graph["settings"], alert["id"], "investigating")
    assert await graph["worker"].run_once() == 1  # Graph down: stays pending
    row = await pool.fetchrow("SELECT state, last_error FROM graph_alert_sync WHERE alert_id = $1", alert["id"])
    assert row["state"] == "pending" and "503" in row["last_error"]

    graph_emulator.set_down(directory, False)
    graph_emulator.change_in_partner_center(
        directory, alert["id"], status="resolved", resolved_reason="fraud", by="carol@partner.example"
    )
    await eventually(graph["worker"].run_once, interval=0.5, within=20, what="the write-back retried")
    assert graph_emulator.patches(directory) == []  # Partner Center's later change won: nothing sent
    state = await pool.fetchval("SELECT alert ->> 'status' FROM ingest_alert_state WHERE alert_id = $1", alert["id"])
    assert state == "resolved"
    row = await pool.fetchrow("SELECT state FROM graph_alert_sync WHERE alert_id = $1", alert["id"])
    assert row["state"] == "synced"


async def test_a_poll_failure_is_the_connections_error_and_the_next_poll_comes_sooner(graph, graph_emulator, pool):
    graph_emulator.throttle(graph["directory"], times=1, retry_after=7)
    assert await graph["poller"].run_once() is True
    state = await store.get_connection(pool, TENANT)
    assert state.last_error and "429" in state.last_error and state.last_success_at is None
    wait = (state.next_poll_at - state.last_poll_at).total_seconds()
    assert 6 <= wait < 3600  # not before Retry-After, far before the healthy interval


async def test_a_response_recorded_before_the_first_poll_is_kept_and_written_back(graph, graph_emulator, pool):
    """Alerts that came through a webhook before the connection, answered here: Partner Center must get it."""
    directory = graph["directory"]
    alert = graph_emulator.add_alert(directory)
    await record_alerts(pool, graph["settings"], TENANT, [Alert.model_validate(alert)])
    await respond(pool, graph["settings"], alert["id"], "resolved", "fraud")

    await graph["poller"].run_once()
    local = await pool.fetchval("SELECT alert ->> 'status' FROM ingest_alert_state WHERE alert_id = $1", alert["id"])
    assert local == "resolved"  # Partner Center's older copy did not reopen it
    assert await graph["worker"].run_once() == 1
    assert [p["body"] for p in graph_emulator.patches(directory)] == [{"status": "resolved", "resolvedReason": "fraud"}]


async def test_a_page_read_before_a_write_back_landed_does_not_reopen_the_alert(graph, graph_emulator, pool):
    from services.ingest.graph.poller import apply_graph_alerts
    from shared.wire import utcnow

    directory = graph["directory"]
    alert = graph_emulator.add_alert(directory)
    await graph["poller"].run_once()
    stale_page, read_at = [graph_emulator.alert(directory, alert["id"])], utcnow()  # still active
    await respond(pool, graph["settings"], alert["id"], "resolved", "legitimate")
    assert await graph["worker"].run_once() == 1

    await apply_graph_alerts(pool, graph["settings"], TENANT, stale_page, client_id=graph["client_id"],
                             read_at=read_at)
    local = await pool.fetchval("SELECT alert ->> 'status' FROM ingest_alert_state WHERE alert_id = $1", alert["id"])
    assert local == "resolved"


async def test_credentials_that_no_key_opens_are_the_connections_error_and_a_write_back_waits(
    graph, graph_emulator, pool
):
    alert = graph_emulator.add_alert(graph["directory"])
    await graph["poller"].run_once()
    await respond(pool, graph["settings"], alert["id"], "investigating")
    await pool.execute("UPDATE graph_connections SET sealed_credentials = 'gAAAAA-not-sealed-by-us', "
                       "next_poll_at = now()")

    assert await graph["poller"].run_once() is True
    state = await store.get_connection(pool, TENANT)
    assert "cannot be opened" in state.last_error
    assert await graph["worker"].run_once() == 1
    row = await pool.fetchrow("SELECT state, last_error FROM graph_alert_sync WHERE alert_id = $1", alert["id"])
    assert row["state"] == "pending" and "cannot be opened" in row["last_error"]
    assert await graph["worker"].run_once() == 0  # it waits (backoff), no tight loop


async def test_a_filter_graph_refuses_falls_back_to_reading_every_alert(graph, graph_emulator, pool, monkeypatch):
    from services.ingest.graph import domain

    graph_emulator.add_alert(graph["directory"])
    await graph["poller"].run_once()
    await pool.execute("UPDATE graph_connections SET next_poll_at = now()")
    monkeypatch.setattr(domain, "poll_filter", lambda since: "severity has 'high'")  # not OData Graph takes
    assert await graph["poller"].run_once() is True
    state = await store.get_connection(pool, TENANT)
    assert state.last_error is None and state.last_poll_alerts == 1
    statuses = [r["status"] for r in graph_emulator.requests(graph["directory"]) if r["method"] == "GET"]
    assert statuses[-2:] == [400, 200]


async def test_an_alert_too_large_to_record_is_skipped_and_the_rest_recorded(graph, graph_emulator, pool):
    big = graph_emulator.add_alert(graph["directory"], description="x" * 20_000)
    small = graph_emulator.add_alert(graph["directory"])
    graph["poller"]._settings = graph["settings"].model_copy(update={"max_event_bytes": 10_000})
    assert await graph["poller"].run_once() is True
    created = {e["alert"]["id"] for e in await alert_events(pool) if e["eventType"] == "alert-created"}
    assert created == {small["id"]} and big["id"] not in created
    assert (await store.get_connection(pool, TENANT)).last_error is None
