"""The one way a service that owns a database publishes: a transactional outbox.

A change and the events that tell of it must both happen or neither: publishing to Kafka while a
PostgreSQL transaction is open (a dual write) either publishes what then rolls back, or commits what
is never published. So a service writes its events as rows of its own ``outbox`` table, in the
transaction that makes the change (:func:`enqueue`), and an :class:`OutboxRelay` publishes committed
rows, in the order they were written, and deletes them once the broker acknowledged them.

- **Nothing lost**: a row leaves the table only after the broker stored its record (``acks=all``). A
  broker outage only delays: rows wait and go out once it is back.
- **Nothing doubled for consumers**: a relay killed between the publish and the delete publishes
  the row again with the same ``eventId``, which every consumer drops (its ledger or Redis script).
- **Order per key**: one relay per schema publishes at a time (a PostgreSQL advisory lock elects it),
  in ``id`` order, one batch after another, with an idempotent producer. Writers must enqueue
  after taking the lock that orders changes of the same key (the row they update), so the later
  change gets the larger id.
- **Latency**: the enqueueing transaction notifies ``outbox_<schema>`` (delivered at commit); the
  relay LISTENs, so it publishes within milliseconds, and polls every ``poll_seconds`` besides.
- **Tombstones** (#18, offboarding): a row with no value (:func:`enqueue_tombstones`) is published
  as a record with a null value, which deletes its key from a compacted topic once compacted;
  consumers skip it (``shared.kafka.is_tombstone``).
- **Traces** (#16): with tracing on (``shared.tracing``), an event's row carries the W3C trace context
  (``traceparent``) of the code that wrote it among its headers, so its consumers continue that trace
  (the webhook's, say) although the relay publishes it later, from another task.

Each owning service's migration creates its table with :data:`OUTBOX_DDL` (copied, not imported:
a migration is frozen once applied).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import asyncpg
from aiokafka import AIOKafkaProducer
from pydantic_core import from_json

from shared.db import application_name
from shared.events import EVENT_TYPE_HEADER, Event, Topic
from shared.kafka import event_headers, topic_name
from shared.metrics import OUTBOX_OLDEST_AGE, OUTBOX_WAITING, on_scrape
from shared.settings import CommonSettings
from shared.tracing import trace_headers
from shared.wire import json_text

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger(__name__)

OUTBOX_DDL = """
-- Events waiting to be published (shared/outbox.py): written in the transaction of the change,
-- deleted by the relay once the broker has them.
CREATE TABLE outbox (
    id         bigserial   PRIMARY KEY,
    topic      text        NOT NULL,            -- logical topic (shared.events.Topic), without prefix
    key        bytea       NOT NULL,
    value      bytea,                               -- NULL: a tombstone (enqueue_tombstones)
    headers    jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);
"""

_INSERT = """
WITH written AS (
    INSERT INTO outbox (topic, key, value, headers)
    SELECT t, k, v, h::jsonb FROM unnest($1::text[], $2::bytea[], $3::bytea[], $4::text[]) AS u(t, k, v, h)
)
SELECT pg_notify('outbox_' || current_schema(), '')
"""


# The relay's one statement per round: the rows the broker acknowledged ($1) deleted, the oldest others read.
# (The read's snapshot predates the delete, so it leaves out the deleted ids itself.)
_DELETE_AND_READ = """
WITH deleted AS (DELETE FROM outbox WHERE id = ANY($1::bigint[]))
SELECT id, topic, key, value, headers FROM outbox WHERE id <> ALL($1::bigint[]) ORDER BY id LIMIT $2
"""


# The eventType header of a tombstone: says what it is to whoever reads the topic by hand.
TOMBSTONE_EVENT_TYPE = "tombstone"


def event_value(event: Event) -> bytes:
    """The record's value of ``event``: its JSON. A writer that needs it before the row (its size checked,
    as the write API does) passes it to :func:`outbox_row` rather than have the event serialised twice."""
    return event.record_value()


def outbox_row(
    topic: Topic, event: Event, *, trace: Mapping[str, str] | None = None, value: bytes | None = None,
) -> tuple[str, bytes, bytes | None, str]:
    """The row that publishes ``event`` to ``topic``: (topic, key, value, headers as JSON), the
    outbox's columns, for a writer that inserts it within a statement of its own (see the write
    API's ``store.insert_new_alert``).

    With tracing on, the row carries the trace context (``traceparent``) of the code writing it, so its
    consumers continue that trace: ``trace`` (``shared.tracing.trace_headers()`` taken where the event
    was made, for a writer that inserts the rows of several requests together), else the current one.
    ``value``: :func:`event_value` of ``event``, if the writer has it already."""
    headers = {"content-type": "application/json", **event_headers(event),
               **(trace_headers() if trace is None else trace)}
    return topic.value, event.kafka_key(), event_value(event) if value is None else value, json_text(headers)


async def enqueue(conn: asyncpg.Connection, topic: Topic, event: Event) -> None:
    """Publish ``event`` to ``topic`` once the caller's transaction commits (call it inside one)."""
    await enqueue_many(conn, [(topic, event)])


async def enqueue_many(conn: asyncpg.Connection, events: Sequence[tuple[Topic, Event]], *,
                       values: Sequence[bytes] | None = None) -> None:
    """Publish ``events`` in this order once the caller's transaction commits: one statement. ``values``:
    each event's :func:`event_value`, if the caller has them already."""
    if events:
        await _insert(conn, [outbox_row(topic, event, value=value)
                             for (topic, event), value in zip(events, values or [None] * len(events), strict=True)])


async def enqueue_record(
    conn: asyncpg.Connection, topic: Topic, *, key: bytes, value: bytes, headers: Mapping[str, str]
) -> None:
    """Publish a record that is not an :class:`Event` (a dead letter) once the transaction commits."""
    await _insert(conn, [(topic.value, key, value, json.dumps(dict(headers)))])


async def enqueue_tombstones(conn: asyncpg.Connection, topic: Topic, keys: Sequence[bytes]) -> None:
    """Delete ``keys`` from the compacted ``topic`` once the caller's transaction commits: a record
    with a null value for each, in this order, after what the outbox already holds. One statement."""
    if keys:
        header = json.dumps({EVENT_TYPE_HEADER: TOMBSTONE_EVENT_TYPE})
        await _insert(conn, [(topic.value, key, None, header) for key in keys])


async def _insert(conn: asyncpg.Connection, records: list[tuple[str, bytes, bytes | None, str]]) -> None:
    topics, keys, values, headers = (list(column) for column in zip(*records, strict=True))
    await conn.execute(_INSERT, topics, keys, values, headers)


async def backlog(conn: asyncpg.Connection | asyncpg.Pool) -> tuple[int, float | None]:
    """Rows waiting, and the age in seconds of the oldest (None when empty)."""
    row = await conn.fetchrow(
        "SELECT count(*) AS n, extract(epoch FROM now() - min(created_at))::float8 AS age FROM outbox")
    return row["n"], row["age"]


def watch_backlog(app: FastAPI, service: str, pool: Callable[[], asyncpg.Pool | None]) -> None:
    """``csp_outbox_waiting`` and ``csp_outbox_oldest_age_seconds`` of ``service``'s outbox, read at each
    scrape of ``app``'s ``/metrics`` (one query; ``pool`` gives the service's pool once it has one)."""

    async def refresh() -> None:
        if (current := pool()) is None:
            return
        waiting, oldest_age = await backlog(current)
        OUTBOX_WAITING.labels(service).set(waiting)
        OUTBOX_OLDEST_AGE.labels(service).set(oldest_age or 0.0)

    on_scrape(app, refresh)


RELAY_BATCH_BYTES = 512 * 1024


class OutboxRelay:
    """Publishes one schema's outbox; start one in every process of the service, one of them leads.

    ``dsn`` is the service's database; the relay holds one connection of its own (the advisory lock
    and LISTEN live on it). ``max_record_bytes`` must cover the largest event the service writes.
    """

    def __init__(
        self,
        settings: CommonSettings,
        *,
        schema: str,
        client_id: str,
        batch_size: int = 1000,
        poll_seconds: float = 1.0,
        publish_timeout_seconds: float = 30.0,
        max_record_bytes: int = 1_048_576,
    ) -> None:
        self._settings = settings
        self._schema = schema
        self._client_id = client_id
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._publish_timeout = publish_timeout_seconds
        self._max_record_bytes = max_record_bytes
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.leader = False
        self.elections = 0  # attempts to take the lead, so a follower that spins shows
        self.published = 0
        self.last_error: str | None = None

    @property
    def channel(self) -> str:
        return f"outbox_{self._schema}"

    def wake(self) -> None:
        """Look at the table now (a writer of this process just committed)."""
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"outbox-relay-{self._schema}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def state(self) -> dict[str, Any]:
        return {"leader": self.leader, "published": self.published, "lastError": self.last_error}

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                await self._lead()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database or the broker away: try again, a little later each time
                self.leader = False
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("outbox relay of %s: %s; retrying in %.1f s", self._schema, self.last_error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            else:
                delay = 0.5

    async def _lead(self) -> None:
        # Its deletes need not wait for the disk (synchronous_commit off): one lost in a crash of the database
        # only publishes its rows again, which every consumer drops by event id.
        session = {"search_path": self._schema, "synchronous_commit": "off",
                   "application_name": application_name(self._schema, "outbox-relay")}
        conn = await asyncpg.connect(self._settings.database_url, command_timeout=30, server_settings=session)
        try:
            await conn.add_listener(self.channel, lambda *_: self._wake.set())
            while not await self._try_to_lead(conn):
                self.leader = False
                # Another process leads; try again every few seconds, deaf to commits' notices
                # (the leader's to act on: answering each with an election made followers spin).
                await asyncio.sleep(5.0)
            self.leader = True
            producer = self._producer()
            try:
                # Inside the try: a producer whose start failed (the broker away) is closed too, not
                # left for the garbage collector to report as unclosed.
                await producer.start()
                published: list[int] = []  # ids published, deleted with the next read
                while True:
                    self._wake.clear()  # before reading: a commit from now on wakes the next round
                    published = await self._publish_batch(conn, producer, published)
                    if not published:
                        await self._sleep(self._poll_seconds)
            finally:
                await asyncio.shield(self._stop(producer))
        finally:
            self.leader = False
            await asyncio.shield(self._close(conn))

    async def _try_to_lead(self, conn: asyncpg.Connection) -> bool:
        self.elections += 1
        return await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", self.channel)

    def _producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            client_id=self._client_id,
            enable_idempotence=True,
            acks="all",
            linger_ms=2,
            # A partition's batch may grow to this before send() waits for it to go: at the default 16 KiB a
            # relay batch of a thousand events went as dozens of small requests, one after another (#15).
            # Below the broker's largest batch (message.max.bytes, 1 MiB by default).
            max_batch_size=RELAY_BATCH_BYTES,
            request_timeout_ms=max(1000, int(self._publish_timeout * 1000)),
            max_request_size=self._max_record_bytes + 65_536,
        )

    async def _publish_batch(self, conn: asyncpg.Connection, producer: AIOKafkaProducer,
                             published: list[int]) -> list[int]:
        """Delete the rows ``published`` (the broker has them), publish the oldest others and return their
        ids, to be deleted with the next read; none: there were none (and ``published`` are gone)."""
        rows = await conn.fetch(_DELETE_AND_READ, published, self._batch_size)
        if not rows:
            return []
        async with asyncio.timeout(self._publish_timeout):
            # Sent without waiting for each ack (order per partition is kept by the idempotent
            # producer), then every ack awaited before anything is deleted.
            sent = [
                await producer.send(
                    topic_name(self._settings, Topic(row["topic"])),
                    None if row["value"] is None else bytes(row["value"]),  # None: a tombstone
                    key=bytes(row["key"]),
                    headers=[(k, v.encode()) for k, v in from_json(row["headers"]).items()])
                for row in rows
            ]
            await asyncio.gather(*sent)
        self.published += len(rows)
        self.last_error = None
        return [row["id"] for row in rows]

    async def _sleep(self, seconds: float) -> None:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that
        # arrives as its timeout fires, and close() would then wait forever.
        try:
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        except TimeoutError:
            pass

    @staticmethod
    async def _stop(producer: AIOKafkaProducer) -> None:
        try:
            await asyncio.wait_for(producer.stop(), 10)
        except BaseException as exc:  # noqa: BLE001 - a producer being thrown away may fail any way
            log.debug("outbox producer did not close cleanly: %s", exc)

    @staticmethod
    async def _close(conn: asyncpg.Connection) -> None:
        try:
            await asyncio.wait_for(conn.close(), 5)
        except BaseException:  # noqa: BLE001 - closing a connection to a database that is away
            conn.terminate()
