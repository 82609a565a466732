"""The Partner Center connector's two loops in a write API process (``GRAPH_SYNC_ENABLED``).

The poller takes due connections one at a time, the write-back worker due write-backs one at a time;
each sleeps a moment when nothing is due. Leases in PostgreSQL share the work among instances. A
failing database or Graph never ends a loop: it logs, waits and tries again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid

import asyncpg
import httpx

from services.ingest.graph.clients import GraphClients
from services.ingest.graph.poller import Poller
from services.ingest.graph.writeback import WritebackWorker

log = logging.getLogger(__name__)

# How long a loop sleeps when nothing is due (a new connection or response waits at most this long).
IDLE_SECONDS = 1.0


class GraphSync:
    def __init__(self, pool: asyncpg.Pool, settings) -> None:
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._http = httpx.AsyncClient(timeout=settings.graph_request_timeout_seconds)
        clients = GraphClients(settings, self._http)
        self._poller = Poller(pool, settings, clients, owner=self.owner)
        self._writer = WritebackWorker(pool, settings, clients)
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._loop("poll", self._poller.run_once), name="graph-poll"),
            asyncio.create_task(self._loop("write-back", self._writer.run_once), name="graph-write-back"),
        ]
        log.info("Partner Center sync started (instance %s)", self.owner)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._http.aclose()

    @staticmethod
    async def _loop(name: str, step) -> None:
        while True:
            try:
                busy = await step()
            except asyncio.CancelledError:
                raise
            except Exception:
                # A database away, a bug on one record: logged, and the loop goes on after a pause.
                log.exception("Partner Center %s step failed; retrying", name)
                busy = False
            if not busy:
                await asyncio.sleep(IDLE_SECONDS)
