"""``GET /v1/tenants/{t}/changes``: the read API's server-sent events, on running scoring processes with
the real broker, PostgreSQL and Redis: ``ready`` first, then a ``change`` within about a second of the
event that made it being applied; keys checked as for every read; the stream ends when the client
leaves and when the process stops."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest_asyncio
from redis.asyncio import Redis

from services.scoring.changes import ChangeKind, Changes
from shared.alerts import Alert
from shared.auth import Role, create_key
from shared.events import AlertCreated, Topic
from tests.conftest import AUTH
from tests.services.scoring.conftest import isolated_env, status_event
from tests.services.scoring.read_model_events import alert_response_time, customer_mfa, delivery_changed
from tests.support.polling import eventually

# A change is visible within a second of its event's commit; the rest is slack for a busy machine.
VISIBLE_WITHIN_SECONDS = 2.0


class Stream:
    """The events of an open stream: (event, data) pairs, and comments as ("", text)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self, timeout: float = 30) -> tuple[str, str]:
        async def read() -> tuple[str, str]:
            event, data = "message", []
            async for line in self._lines:
                if line.startswith(":"):
                    return "", line[1:].strip()
                if line == "":
                    if data:
                        return event, "\n".join(data)
                    continue
                field, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if field == "event":
                    event = value
                elif field == "data":
                    data.append(value)
            raise EOFError("the stream ended")

        return await asyncio.wait_for(read(), timeout)

    async def next_change(self, timeout: float = 30) -> tuple[dict, float]:
        """The next ``change`` (pings skipped) and when it arrived (wall clock)."""
        deadline = time.monotonic() + timeout
        while True:
            event, data = await self.next(max(0.1, deadline - time.monotonic()))
            if event == "change":
                return json.loads(data), time.time()


@asynccontextmanager
async def stream(process, tenant_id: str, headers: dict[str, str]) -> AsyncIterator[Stream]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=60)) as http, \
            http.stream("GET", f"{process.url}/v1/tenants/{tenant_id}/changes", headers=headers) as response:
        yield Stream(response)


@pytest_asyncio.fixture
async def reader(scoring_database, tenant_id) -> dict[str, str]:
    key = await create_key(scoring_database, tenant_id, Role.security_reader, "rita@partner.example")
    return {"Authorization": f"Bearer {key}"}


async def committed_at(db_pool, event_id: uuid.UUID, consumer: str) -> float:
    """When the consumer's transaction that applied the event began (its claim's time)."""
    at = await eventually(
        lambda: db_pool.fetchval("SELECT processed_at FROM processed_events WHERE consumer = $1 AND event_id = $2",
                                 consumer, event_id),
        lambda found: found is not None, within=30)
    return at.timestamp()


async def test_ready_then_a_change_of_the_score_and_of_an_alert(scoring, reader, tenant_id, send_status,
                                                                send_event, db_pool):
    async with stream(scoring, tenant_id, reader) as changes:
        assert changes.response.status_code == 200
        assert changes.response.headers["content-type"].startswith("text/event-stream")
        assert await changes.next() == ("ready", json.dumps({"tenantId": tenant_id}))

        sent = await send_status(status_event(tenant_id, "mfaEnforcedForAdmins", "compliant", datetime.now(UTC)))
        change, arrived = await changes.next_change()
        assert change == {"kind": "score"}
        applied = await committed_at(db_pool, uuid.UUID(sent["eventId"]), "scoring")
        assert arrived - applied < VISIBLE_WITHIN_SECONDS

        now = datetime.now(UTC)
        event = await send_event(Topic.alert_response_times,
                                 alert_response_time(tenant_id, "a-1", now - timedelta(hours=1)))
        change, arrived = await changes.next_change()
        assert change == {"kind": "alert", "alertId": "a-1"}
        applied = await committed_at(db_pool, event.event_id, "scoring-read-model")
        assert arrived - applied < VISIBLE_WITHIN_SECONDS

        created = await send_event(Topic.alerts, AlertCreated(tenant_id=tenant_id, alert=Alert(
            id="a-2", severity="high", detected_date_time=now)))
        change, arrived = await changes.next_change()
        assert change == {"kind": "alert", "alertId": "a-2"}
        applied = await committed_at(db_pool, created.event_id, "scoring-read-model")
        assert arrived - applied < VISIBLE_WITHIN_SECONDS

        await send_event(Topic.deliveries, delivery_changed(tenant_id, uuid.uuid4(), now, alert_id="a-2"))
        assert (await changes.next_change())[0] == {"kind": "delivery", "alertId": "a-2"}
        await send_event(Topic.customer_mfa, customer_mfa(tenant_id, "c-1", "Fabrikam", now))
        assert (await changes.next_change())[0] == {"kind": "customer-mfa"}


async def test_a_change_redis_does_not_take_is_logged_and_never_raises(caplog):
    unreachable = Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)  # nothing listens on port 1
    changes = Changes(unreachable, "scoring-test:")
    changes.start()
    try:
        await changes.publish("contoso", ChangeKind.score)
        await eventually(lambda: caplog.text, lambda text: "could not publish the score change of tenant contoso"
                         in text, within=10, what="the lost hint logged")
    finally:
        await changes.stop()
        await unreachable.aclose()


async def test_a_redis_that_hangs_never_holds_the_handler_that_tells_a_change(caplog):
    """A Redis that takes connections and never answers: telling a change still returns at once (the
    read model's consumers need only PostgreSQL); the hints wait, then are dropped beyond the queue."""
    silent = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    hanging = Redis(host="127.0.0.1", port=port, socket_connect_timeout=2, socket_timeout=2)
    changes = Changes(hanging, "scoring-test:", queue_size=3)
    changes.start()
    try:
        started = asyncio.get_running_loop().time()
        for n in range(10):
            await changes.publish("contoso", ChangeKind.alert, f"a-{n}")
        assert asyncio.get_running_loop().time() - started < 0.5
        assert changes.dropped >= 6  # the sender holds one, the queue three
        assert "change hint(s) dropped so far" in caplog.text
    finally:
        await changes.stop()
        await hanging.aclose()
        silent.close()


async def test_another_tenants_changes_are_not_sent(scoring, reader, tenant_id, send_status):
    other = f"other-{uuid.uuid4().hex[:8]}"
    async with stream(scoring, tenant_id, reader) as changes:
        assert (await changes.next())[0] == "ready"
        await send_status(status_event(other, "mfaEnforcedForAdmins", "compliant", datetime.now(UTC)))
        await send_status(status_event(tenant_id, "securityContactProvided", "compliant", datetime.now(UTC)))
        change, _ = await changes.next_change()  # the other tenant's, sent first, never comes
        assert change == {"kind": "score"}


async def test_keys_are_checked_as_for_every_read(scoring, scoring_database, tenant_id):
    url = f"{scoring.url}/v1/tenants/{tenant_id}/changes"
    async with httpx.AsyncClient(timeout=10) as http:
        for headers in ({}, {"Authorization": "Bearer not-a-key"}):
            refused = await http.get(url, headers=headers)
            assert refused.status_code == 401
            assert refused.headers["content-type"].startswith("application/problem+json")
        others = await create_key(scoring_database, f"other-{uuid.uuid4().hex[:8]}", Role.admin_agent, "o")
        refused = await http.get(url, headers={"Authorization": f"Bearer {others}"})
        assert refused.status_code == 403
        assert refused.headers["content-type"].startswith("application/problem+json")


async def test_the_subscription_ends_when_the_client_leaves(scoring, redis_client, tenant_id):
    channel = f"{scoring.env['REDIS_KEY_PREFIX']}changes:{tenant_id}"  # the service's key prefix in it

    async def subscribers() -> int:
        return dict(await redis_client.pubsub_numsub(channel)).get(channel, 0)

    async with stream(scoring, tenant_id, AUTH) as changes:
        assert (await changes.next())[0] == "ready"
        assert await subscribers() == 1
    await eventually(subscribers, lambda n: n == 0, within=5)


async def test_pings_then_the_stream_ends_when_the_process_stops(make_service, topic_prefix, tenant_id):
    process = make_service("scoring", **isolated_env(CHANGES_PING_SECONDS="0.5"))
    await asyncio.to_thread(process.start)
    try:
        async with stream(process, tenant_id, AUTH) as changes:
            assert (await changes.next())[0] == "ready"
            event, text = await changes.next(timeout=3)
            assert (event, text.split(" ")[0]) == ("", "ping")
            started = time.monotonic()
            stopping = asyncio.create_task(asyncio.to_thread(process.stop))
            while True:  # the stream ends (the server closes it), it does not hang until a timeout
                try:
                    await changes.next(timeout=10)
                except (EOFError, httpx.RemoteProtocolError):
                    break
            await stopping
            # Well within uvicorn's 10 s of graceful shutdown: the open stream did not hold it up.
            assert time.monotonic() - started < 5
            assert process.proc.returncode is not None
            assert "timeout graceful shutdown exceeded" not in process.tail()
    finally:
        await asyncio.to_thread(process.stop)
