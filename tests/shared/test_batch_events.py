"""``shared.kafka.batch_events`` lets the process's other work run while it parses a long batch (#15): no
I/O (records built here; none is poison, so the broker is never asked)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from shared.kafka import YIELD_EVERY_RECORDS, batch_events
from tests.support.kafka import Pinged


def _record(n: int) -> SimpleNamespace:
    event = Pinged(tenant_id="t1", n=n)
    return SimpleNamespace(topic="pings", partition=0, offset=n, key=b"t1", headers=[("eventType", b"pinged")],
                           value=event.model_dump_json().encode())


async def test_a_long_batch_lets_other_tasks_run_while_it_is_parsed_and_keeps_every_event_in_order() -> None:
    count = 10 * YIELD_EVERY_RECORDS + 3
    turns: list[int] = []  # how many events were parsed when the other task ran

    async def other_work() -> None:
        while True:
            turns.append(1)
            await asyncio.sleep(0)

    other = asyncio.create_task(other_work())
    await asyncio.sleep(0)  # started
    before = len(turns)
    events = await batch_events([_record(n) for n in range(count)], {"pinged": Pinged}, broker=None,
                                dead_letter_topic="dead-letters", consumer="test")
    ran_meanwhile = len(turns) - before
    other.cancel()
    assert [e.n for e in events] == list(range(count))
    # Once per YIELD_EVERY_RECORDS records (not once per record: each turn costs a trip through the loop).
    assert ran_meanwhile == count // YIELD_EVERY_RECORDS


async def test_a_short_batch_is_parsed_in_one_go() -> None:
    turns = 0

    async def other_work() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    other = asyncio.create_task(other_work())
    await asyncio.sleep(0)
    before = turns
    events = await batch_events([_record(n) for n in range(YIELD_EVERY_RECORDS)], {"pinged": Pinged}, broker=None,
                                dead_letter_topic="dead-letters", consumer="test")
    assert turns == before and len(events) == YIELD_EVERY_RECORDS
    other.cancel()
