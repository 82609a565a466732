"""Group calls: what concurrent callers ask while a call is running goes together in the next one.

The write API's hot paths each made one database round trip per request (insert the new alert, look
whether its tenant was offboarded). Under load, requests arrive while one is in flight: a
:class:`GroupCall` hands all of them to the next call of a function taking a list, so one statement
serves many requests. A request alone waits for nothing (the call starts at once); at most
``max_in_flight`` calls run at once, each with at most ``max_batch`` items.

A call that fails fails every request of its group with the same error: the function must treat a
group as one unit (one statement, one transaction), so a failure wrote nothing for any of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Answer = TypeVar("Answer")


class GroupCall(Generic[Item, Answer]):
    """``await group(item)`` answers ``call([..., item, ...])``'s answer for ``item``.

    ``call`` takes the items of a group in the order they came and returns one answer per item, in
    that order.
    """

    def __init__(self, call: Callable[[Sequence[Item]], Awaitable[Sequence[Answer]]], *, name: str,
                 max_batch: int = 200, max_in_flight: int = 2) -> None:
        self.call = call
        self.name = name
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self._waiting: list[tuple[Item, asyncio.Future[Answer]]] = []
        self._in_flight = 0
        self._tasks: set[asyncio.Task] = set()

    async def __call__(self, item: Item) -> Answer:
        answer: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        answer.add_done_callback(_retrieved)  # a caller gone: its answer's error is no unretrieved error
        self._waiting.append((item, answer))
        if self._in_flight < self.max_in_flight:
            self._in_flight += 1
            task = asyncio.create_task(self._run(), name=self.name)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # Shielded: a caller that goes away leaves its group, and the others' answers, to finish.
        return await asyncio.shield(answer)

    async def _run(self) -> None:
        try:
            while self._waiting:
                group, self._waiting = self._waiting[: self.max_batch], self._waiting[self.max_batch :]
                try:
                    answers = await self.call([item for item, _ in group])
                except Exception as exc:
                    for _, answer in group:
                        if not answer.done():
                            answer.set_exception(exc)
                    continue
                except BaseException:
                    for _, answer in group:
                        answer.cancel()
                    raise
                for (_, answer), value in zip(group, answers, strict=True):
                    if not answer.done():
                        answer.set_result(value)
        finally:
            self._in_flight -= 1
            if self._waiting and self._in_flight == 0:  # left behind by a cancelled run: fail, never hang
                for _, answer in self._waiting:
                    answer.cancel()
                self._waiting = []


def _retrieved(answer: asyncio.Future) -> None:
    if not answer.cancelled():
        answer.exception()
