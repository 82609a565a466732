"""``shared.kafka.Context``: a handler's context parameters resolved on the event loop, not in a worker
thread each (FastDepends' way with a synchronous custom field). FastStream's in-memory test broker: one
handler, no I/O."""

from __future__ import annotations

import threading

import fast_depends.utils
from faststream import Context as FastStreamContext
from faststream.kafka import KafkaBroker, TestKafkaBroker

from shared.kafka import Context


async def test_a_context_parameter_is_the_broker_contexts_value_taken_without_a_thread(monkeypatch):
    hops: list[object] = []
    to_thread = fast_depends.utils.run_in_threadpool

    async def counted(func, *args, **kwargs):
        hops.append(func)
        return await to_thread(func, *args, **kwargs)

    monkeypatch.setattr(fast_depends.utils, "run_in_threadpool", counted)
    broker = KafkaBroker()
    seen: list[tuple[str, object, object, bool]] = []

    @broker.subscriber("events")
    async def handle(body: str, pool=Context("pool"), missing=Context("nothing", default=None)) -> None:
        seen.append((body, pool, missing, threading.current_thread() is threading.main_thread()))

    @broker.subscriber("others")
    async def handle_the_old_way(body: str, pool=FastStreamContext("pool")) -> None:
        seen.append((body, pool, None, True))

    pool = object()
    broker.context.set_global("pool", pool)
    async with TestKafkaBroker(broker) as test_broker:
        await test_broker.publish("one", "events")
        assert seen == [("one", pool, None, True)]
        assert hops == []
        await test_broker.publish("two", "others")  # what it spares: FastStream's own goes to a thread
        assert seen[-1][:2] == ("two", pool) and len(hops) == 1
