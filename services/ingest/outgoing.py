"""The events of a write leave through the outbox (``shared/outbox.py``), in the write's transaction.

Each route writes its change and enqueues the events that tell of it in one PostgreSQL transaction,
and answers once that transaction committed: the change and its events are then durable together, and
the outbox relay publishes the events (in the order they were enqueued) whenever the broker takes
them. Nothing is published while a transaction is open, so nothing is published that then rolls back,
and a broker outage delays events without refusing writes.

An event larger than one Kafka record may be (``MAX_EVENT_BYTES``) could never be published: it is
refused before anything is written, so the request gets a 4xx instead of a row the relay could never send.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from shared import outbox
from shared.events import Event, Topic


class EventTooLarge(Exception):
    """An event exceeds what one Kafka record may hold; retrying cannot help (the input is too large)."""

    def __init__(self, index: int, size: int, limit: int) -> None:
        super().__init__(f"event {index} is {size} bytes; at most {limit}")
        self.index, self.size, self.limit = index, size, limit


def checked_values(events: Sequence[Event], max_event_bytes: int) -> list[bytes]:
    """Each event's record value (its JSON, ``shared.outbox.event_value``), serialised once for the size check
    and the outbox row both; :class:`EventTooLarge` for the first that exceeds ``max_event_bytes``."""
    values = []
    for index, event in enumerate(events):
        value = outbox.event_value(event)
        if len(value) > max_event_bytes:
            raise EventTooLarge(index, len(value), max_event_bytes)
        values.append(value)
    return values


async def enqueue(conn: asyncpg.Connection, events: Sequence[tuple[Topic, Event]], *, max_event_bytes: int) -> None:
    """Publish ``events`` in this order once the caller's transaction commits; nothing if one is too large."""
    values = checked_values([event for _, event in events], max_event_bytes)
    await outbox.enqueue_many(conn, events, values=values)
