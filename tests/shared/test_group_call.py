"""shared.group_call: concurrent requests share calls; no I/O."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from shared.group_call import GroupCall


class Recorder:
    """A call that records its groups and, while ``gate`` is closed, holds each call."""

    def __init__(self) -> None:
        self.groups: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_with: Exception | None = None

    async def __call__(self, items: Sequence[int]) -> list[int]:
        self.groups.append(list(items))
        await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        return [item * 10 for item in items]


async def test_a_request_alone_is_called_at_once_and_answered():
    recorder = Recorder()
    group = GroupCall(recorder, name="test")
    assert await group(1) == 10
    assert recorder.groups == [[1]]


async def test_requests_arriving_while_calls_run_go_together_in_the_next_call():
    recorder = Recorder()
    recorder.gate.clear()
    group = GroupCall(recorder, name="test", max_in_flight=1)
    first = asyncio.create_task(group(1))
    while not recorder.groups:  # noqa: ASYNC110 - until the first call has begun (it waits at the gate)
        await asyncio.sleep(0)
    rest = [asyncio.create_task(group(n)) for n in range(2, 7)]
    await asyncio.sleep(0)
    recorder.gate.set()
    assert await asyncio.gather(first, *rest) == [10, 20, 30, 40, 50, 60]
    assert recorder.groups == [[1], [2, 3, 4, 5, 6]]


async def test_a_group_holds_at_most_max_batch_items():
    recorder = Recorder()
    recorder.gate.clear()
    group = GroupCall(recorder, name="test", max_batch=2, max_in_flight=1)
    tasks = [asyncio.create_task(group(n)) for n in range(1, 6)]
    await asyncio.sleep(0)
    recorder.gate.set()
    assert await asyncio.gather(*tasks) == [10, 20, 30, 40, 50]
    assert recorder.groups == [[1, 2], [3, 4], [5]]


async def test_a_failed_call_fails_each_request_of_its_group_and_the_next_group_still_runs():
    recorder = Recorder()
    recorder.gate.clear()
    recorder.fail_with = ConnectionError("database away")
    group = GroupCall(recorder, name="test", max_in_flight=1)
    failing = [asyncio.create_task(group(n)) for n in (1, 2)]
    await asyncio.sleep(0)
    recorder.gate.set()
    for task in failing:
        with pytest.raises(ConnectionError, match="database away"):
            await task
    recorder.fail_with = None
    assert await group(3) == 30


async def test_a_caller_that_goes_away_leaves_the_others_answers_to_come():
    recorder = Recorder()
    recorder.gate.clear()
    group = GroupCall(recorder, name="test", max_in_flight=1)
    leaving, staying = asyncio.create_task(group(1)), asyncio.create_task(group(2))
    await asyncio.sleep(0)
    leaving.cancel()
    recorder.gate.set()
    assert await staying == 20
    assert leaving.cancelled()
    assert recorder.groups == [[1, 2]]
