"""The write API's readiness: ready while PostgreSQL answers, whatever the broker does.

A write is durable once its transaction committed with its events in the outbox, so the broker being
away delays events and refuses nothing: ingest stays ready (without PostgreSQL it is not). Readiness
still shows the broker and the outbox (its relay's state; ``backlog``: events waiting;
``oldestAgeSeconds``: how long the oldest has waited), so an operator sees events piling up.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import asyncpg
from faststream.kafka import KafkaBroker

from shared import outbox
from shared.http import Health
from shared.outbox import OutboxRelay


@dataclass
class IngestHealth(Health):
    relay: OutboxRelay | None = None
    broker: KafkaBroker | None = None
    pool: asyncpg.Pool | None = None  # set once the lifespan made it

    async def report(self) -> tuple[bool, dict[str, Any]]:
        ready, body = await super().report()
        backlog, kafka = await asyncio.gather(self._backlog(), self._kafka())
        body["outbox"] = {**(self.relay.state() if self.relay else {}), **backlog}
        body["kafka"] = kafka
        return ready, body

    async def _backlog(self) -> dict[str, Any]:
        try:
            count, age = await asyncio.wait_for(outbox.backlog(self.pool), self.timeout)
        except Exception as exc:  # the database away: the postgres check already says so
            return {"backlog": None, "oldestAgeSeconds": None, "backlogError": type(exc).__name__}
        return {"backlog": count, "oldestAgeSeconds": None if age is None else round(age, 1)}

    async def _kafka(self) -> str:
        """`ok` or `failing: ...`: reported, never a reason to be unready."""
        try:
            if self.broker is None or not await self.broker.ping(timeout=self.timeout):
                raise ConnectionError("the Kafka broker does not answer")
            return "ok"
        except Exception as exc:
            return f"failing: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
