"""Publishes the events of each request atomically, in Kafka transactions, with group commit.

Every event of a request is in one Kafka transaction: all of them become visible to
``read_committed`` consumers or none does, and the request is answered only after that
transaction committed (acks=all, idempotent producer). Alert events go to the ``alerts`` topic; a
security contact change puts its status observation and its contact event, on two topics, in one
transaction (``publish_together``).

A transaction costs several round trips to the broker whatever its size, so requests arriving
together share one (group commit): a worker takes every request waiting, up to a bound, publishes
their events in one transaction and answers each of them with its outcome. A failed transaction
fails every request in it (none of their events is visible), each then answered 503.

``ALERT_PRODUCERS`` workers run at once, each with its own transactional producer and stable
transactional id. A producer that failed or timed out is thrown away; its replacement re-registers
the same transactional id, which makes the broker abort whatever the old one left open.

The worker alone decides a request's outcome, within the request's deadline
(``PUBLISH_TIMEOUT_SECONDS``): a request that waited too long is failed before anything of it is
sent, and a transaction that outlives the earliest deadline in it is abandoned (so aborted). A
request is therefore never told 503 for events that a committed transaction holds, except when the
commit itself is cut off midway, which no client can tell apart; then the deterministic event ids
(see ``domain.event_id_for``) let consumers drop the copy a retry publishes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer

from services.ingest.config import Settings
from shared.events import Event, Topic
from shared.kafka import event_headers, topic_name

log = logging.getLogger(__name__)

Record = tuple[str, bytes, bytes, list[tuple[str, bytes]]]  # topic, key, value, headers

# Bounds of one shared transaction: requests in it, and records in it.
MAX_REQUESTS_PER_TRANSACTION = 64
MAX_RECORDS_PER_TRANSACTION = 2000


class PublishFailed(Exception):
    """The broker did not store the events (unreachable, timed out, or refused): none is visible."""


class EventTooLarge(Exception):
    """An event exceeds what one Kafka record may hold; retrying cannot help (the input is too large)."""

    def __init__(self, index: int, size: int, limit: int) -> None:
        super().__init__(f"event {index} is {size} bytes; at most {limit}")
        self.index, self.size, self.limit = index, size, limit


@dataclass
class _Request:
    records: list[Record]
    deadline: float
    outcome: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    def settle(self, error: BaseException | None = None) -> None:
        if not self.outcome.done():
            if error is None:
                self.outcome.set_result(None)
            else:
                self.outcome.set_exception(error)


class EventPublisher:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._waiting: asyncio.Queue[_Request] = asyncio.Queue()
        self._producers: list[AIOKafkaProducer | None] = [None] * settings.alert_producers
        self._workers: list[asyncio.Task] = []
        self._closing: set[asyncio.Task] = set()

    def _transactional_id(self, index: int) -> str:
        return f"{self._settings.kafka_topic_prefix}ingest-{self._settings.instance_id}-{index}"

    async def _new_producer(self, index: int) -> AIOKafkaProducer:
        timeout_ms = max(1000, int(self._settings.publish_timeout_seconds * 1000))
        producer = AIOKafkaProducer(
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            client_id=f"ingest-events-{index}",
            transactional_id=self._transactional_id(index),
            transaction_timeout_ms=self._settings.transaction_timeout_ms,
            enable_idempotence=True,
            acks="all",
            request_timeout_ms=timeout_ms,
            max_request_size=max(1_048_576, self._settings.max_event_bytes + 65_536),
            linger_ms=0,
        )
        try:
            await producer.start()
            # An empty transaction registers the transactional id with the broker now, aborting
            # whatever a previous producer of this id left open.
            await producer.begin_transaction()
            await producer.abort_transaction()
        except BaseException:
            self._discard(producer)
            raise
        return producer

    async def start(self) -> None:
        """Start the producers (those that cannot start now are retried on use) and the workers."""

        async def start_one(index: int) -> None:
            try:
                async with asyncio.timeout(self._settings.publish_timeout_seconds):
                    self._producers[index] = await self._new_producer(index)
            except Exception as exc:
                log.warning("event producer %d not started yet: %s", index, exc)

        await asyncio.gather(*(start_one(i) for i in range(len(self._producers))))
        loop = asyncio.get_running_loop()
        self._workers = [
            loop.create_task(self._work(i), name=f"event-publisher-{i}") for i in range(len(self._producers))
        ]

    async def publish(self, events: Sequence[Event]) -> None:
        """Publish alert ``events`` to the alerts topic in one transaction (see ``publish_together``)."""
        await self.publish_together([(Topic.alerts, event) for event in events])

    async def publish_together(self, events: Sequence[tuple[Topic, Event]]) -> None:
        """Publish ``events``, each to its topic, in one transaction; returns once the broker committed it.

        Raises :class:`EventTooLarge` before publishing anything if one event cannot be a record,
        :class:`PublishFailed` if the broker did not commit within ``PUBLISH_TIMEOUT_SECONDS``
        (then none of the events is visible to ``read_committed`` consumers).
        """
        if not events:
            return
        records: list[Record] = [
            (
                topic_name(self._settings, topic),
                event.kafka_key(),
                event.model_dump_json().encode(),
                [
                    (k, v.encode())
                    for k, v in {"content-type": "application/json", **event_headers(event)}.items()
                ],
            )
            for topic, event in events
        ]
        limit = self._settings.max_event_bytes
        for position, (_, _, value, _) in enumerate(records):
            if len(value) > limit:
                raise EventTooLarge(position, len(value), limit)
        if not self._workers:
            raise PublishFailed("the publisher is not running")
        timeout = self._settings.publish_timeout_seconds
        request = _Request(records, asyncio.get_running_loop().time() + timeout)
        self._waiting.put_nowait(request)
        # The worker settles every request by its deadline; the margin only guards against a bug.
        try:
            await asyncio.wait_for(asyncio.shield(request.outcome), timeout + 10)
        except TimeoutError:
            raise PublishFailed("no outcome from the publisher in time") from None
        except asyncio.CancelledError:
            # If no worker has taken the request yet, it now never will (a worker skips a done
            # outcome). A worker may already have it in flight, though: its records may still be
            # committed to the broker after the caller went away (the caller's database transaction
            # rolls back, so a retry republishes the same states with the same event ids and
            # consumers drop the copies).
            request.outcome.cancel()
            raise

    def _next_group(self, first: _Request) -> tuple[list[_Request], _Request | None]:
        """The waiting requests to publish together, and one taken that did not fit (or None)."""
        group, size = [first], len(first.records)
        while len(group) < MAX_REQUESTS_PER_TRANSACTION and not self._waiting.empty():
            following = self._waiting.get_nowait()
            if size + len(following.records) > MAX_RECORDS_PER_TRANSACTION:
                return group, following
            group.append(following)
            size += len(following.records)
        return group, None

    async def _work(self, index: int) -> None:
        loop = asyncio.get_running_loop()
        carried: _Request | None = None
        while True:
            group, carried = self._next_group(carried or await self._waiting.get())
            try:
                await self._publish_group(index, group, loop.time())
            except asyncio.CancelledError:
                for request in [*group, *([carried] if carried else [])]:
                    request.settle(PublishFailed("the publisher is shutting down"))
                raise

    async def _publish_group(self, index: int, group: list[_Request], now: float) -> None:
        live = []
        for request in group:
            if request.deadline <= now:
                request.settle(PublishFailed("waited too long for a producer (the broker is slow or away)"))
            elif not request.outcome.done():  # done: the caller went away
                live.append(request)
        if not live:
            return
        try:
            async with asyncio.timeout_at(min(r.deadline for r in live)):
                producer = self._producers[index]
                if producer is None:
                    producer = self._producers[index] = await self._new_producer(index)
                await self._transaction(producer, [record for r in live for record in r.records])
        except BaseException as exc:
            failed, self._producers[index] = self._producers[index], None
            if failed is not None:
                self._discard(failed)
            error = PublishFailed(f"{type(exc).__name__}: {exc}")
            for request in live:
                request.settle(error)
            if not isinstance(exc, Exception):
                raise  # cancelled: shutting down
        else:
            for request in live:
                request.settle()

    async def _transaction(self, producer: AIOKafkaProducer, records: list[Record]) -> None:
        await producer.begin_transaction()
        sent = [
            await producer.send(topic, value, key=key, headers=headers)
            for topic, key, value, headers in records
        ]
        # Every record acknowledged (acks=all) before the commit marker is written. On any failure
        # the worker discards this producer, aborting what it left open.
        await asyncio.gather(*sent)
        await producer.commit_transaction()

    def _discard(self, producer: AIOKafkaProducer) -> None:
        """Close a producer in the background: with the broker away, closing can take a while."""

        async def close() -> None:
            try:
                # Aborting now frees read_committed consumers at once; if the broker is away, the
                # next producer of this transactional id (or the transaction timeout) aborts it.
                await asyncio.wait_for(producer.abort_transaction(), 2)
            except BaseException as exc:  # noqa: BLE001 - best effort
                log.debug("discarded producer could not abort its transaction: %s", exc)
            try:
                await asyncio.wait_for(producer.stop(), 10)
            except BaseException as exc:  # noqa: BLE001 - a producer being thrown away may fail any way
                log.debug("discarded producer did not close cleanly: %s", exc)

        task = asyncio.get_running_loop().create_task(close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        while not self._waiting.empty():
            self._waiting.get_nowait().settle(PublishFailed("the publisher is shutting down"))
        for index, producer in enumerate(self._producers):
            if producer is not None:
                self._discard(producer)
            self._producers[index] = None
        if self._closing:
            await asyncio.wait(list(self._closing), timeout=12)
