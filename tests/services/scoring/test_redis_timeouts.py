"""A Redis that hangs makes a score read answer 503 within the configured timeouts, never hang.

Two real endpoints on loopback that a Redis client cannot get an answer from: one accepts the
connection and never says a word (a hung server), one never completes the TCP handshake (its accept
queue is full, as a stalled host's is).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace

import pytest
import pytest_asyncio

from services.scoring.cache import ScoreCache, connect_redis
from services.scoring.config import Settings
from services.scoring.deps import read_tenant
from shared.http import Problem


@pytest_asyncio.fixture
async def silent_redis_url() -> AsyncIterator[str]:
    """A server that accepts every connection and never answers."""
    accepted: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"redis://127.0.0.1:{port}/0"
    for writer in accepted:
        writer.close()
    server.close()
    await server.wait_closed()


@pytest.fixture
def unconnectable_redis_url() -> Iterator[str]:
    """A listening socket whose accept queue is full: a new connection's handshake never completes."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    queued = []
    for _ in range(3):  # never accepted: they fill the queue
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        queued.append(filler)
    yield f"redis://127.0.0.1:{port}/0"
    for filler in queued:
        filler.close()
    listener.close()


def settings(redis_url: str, **timeouts: float) -> Settings:
    return Settings(environment="development", redis_url=redis_url, retry_after_seconds=3, **timeouts)


async def refused_within(settings: Settings, bound: float) -> Problem:
    """The read's answer, checked to come within ``bound`` seconds (a hang fails after 30 s)."""
    redis = connect_redis(settings)
    keeper = SimpleNamespace(request_rebuild=lambda: None)
    started = time.monotonic()
    try:
        with pytest.raises(Problem) as refused:
            await asyncio.wait_for(
                read_tenant("tenant-x", ScoreCache(redis, "x:"), keeper, settings.retry_after_seconds), 30)
    finally:
        await redis.aclose()
    assert time.monotonic() - started < bound
    return refused.value


async def test_a_redis_that_never_answers_makes_a_read_answer_503_within_the_command_timeout(
    silent_redis_url,
):
    refused = await refused_within(settings(silent_redis_url, redis_command_timeout_seconds=0.5), bound=3.0)
    assert refused.status == 503 and refused.headers == {"Retry-After": "3"}
    assert "TimeoutError" in refused.detail


async def test_a_redis_that_never_completes_the_connection_answers_503_within_the_connect_timeout(
    unconnectable_redis_url,
):
    refused = await refused_within(
        settings(unconnectable_redis_url, redis_connect_timeout_seconds=0.5), bound=3.0
    )
    assert refused.status == 503 and refused.headers == {"Retry-After": "3"}
    assert "TimeoutError" in refused.detail


def test_both_timeouts_have_defaults_whatever_the_redis_library_defaults_to():
    # redis-py before 8.0 waited forever by default; the pin allows 6 and 7.
    redis = connect_redis(settings("redis://127.0.0.1:6379/0"))
    assert redis.connection_pool.connection_kwargs["socket_connect_timeout"] == 2.0
    assert redis.connection_pool.connection_kwargs["socket_timeout"] == 2.0
    assert redis.connection_pool.connection_kwargs["decode_responses"] is True

