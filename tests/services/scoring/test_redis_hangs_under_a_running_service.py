"""A running scoring service whose Redis hangs answers 503 quickly, and the score once Redis is back.

A proxy in front of the real Redis stops passing bytes on, then passes them again: a Redis that
hangs for a while under a running service (the service builds its client with ``connect_redis``).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

from tests.services.scoring.conftest import isolated_env, read_api, status_event, wait_for_score


class HangingProxy:
    """A TCP proxy to the real Redis that can hang: while hung it passes no byte either way (new
    connections are accepted and left silent); once released, new connections work again."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self.target_host, self.target_port, self.path = parts.hostname, parts.port or 6379, parts.path
        self.passing = asyncio.Event()
        self.passing.set()
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return f"redis://127.0.0.1:{self.server.sockets[0].getsockname()[1]}{self.path}"

    def hang(self) -> None:
        self.passing.clear()

    def release(self) -> None:
        self.passing.set()

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.writers.append(client_writer)
        await self.passing.wait()
        upstream_reader, upstream_writer = await asyncio.open_connection(self.target_host, self.target_port)
        self.writers.append(upstream_writer)
        await asyncio.gather(
            self._pump(client_reader, upstream_writer), self._pump(upstream_reader, client_writer)
        )

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self.passing.wait()  # hung: the bytes wait here
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        self.passing.set()
        for writer in self.writers:
            writer.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def test_a_running_service_answers_503_while_redis_hangs_and_the_score_once_it_answers_again(
    make_service, send_status, tenant_id, test_env
):
    proxy = HangingProxy(test_env["REDIS_URL"])
    process = make_service(
        "scoring", **isolated_env(REDIS_URL=await proxy.start(), REDIS_COMMAND_TIMEOUT_SECONDS="0.5")
    )
    await asyncio.to_thread(process.start)
    try:
        await send_status(
            status_event(tenant_id, "mfaEnforcedForAdmins", "compliant", datetime(2026, 11, 27, tzinfo=UTC))
        )
        await wait_for_score(process, tenant_id, 37.5)

        proxy.hang()
        for path in ("", "/requirements"):
            started = time.monotonic()
            refused = await read_api(process, tenant_id, path)  # the client gives up after 10 s
            assert time.monotonic() - started < 3.0, f"{path or '/'} took {time.monotonic() - started:.1f} s"
            assert refused.status_code == 503, refused.text
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert refused.headers["retry-after"] == "1"

        proxy.release()
        await wait_for_score(process, tenant_id, 37.5)
    finally:
        await proxy.close()
        await asyncio.to_thread(process.stop)
