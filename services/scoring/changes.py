"""What changed for a tenant, told through Redis pub/sub to every read API process's open streams
(``GET /changes``, ``routes_changes.py``), whichever process applied the change.

A handler or the keeper publishes after the change is committed (and, for the score, merged into the
Redis cache), so a client that reads on a change reads it. A change is a hint to read again, not
data: publishing is best effort. ``publish`` only queues the hint; one task per process sends the
queue to Redis, so a handler never waits on Redis (the read model needs only PostgreSQL, and a Redis
that hangs must not slow its consumers). Redis failing to take a hint is logged; a full queue drops
the newest hints (the change itself is committed; a client that misses the hint sees the change on
its next read or reconnection). An event applied before (a redelivery) publishes nothing.

Redis pub/sub channels are global to the server, across its databases, so a channel's name starts
with the service's key prefix (``REDIS_KEY_PREFIX``): two deployments on one Redis hear only their own.

On a Redis Cluster (``REDIS_CLUSTER``) the same classic pub/sub works: a node passes each PUBLISH to
every other node over the cluster bus, so a subscriber on any node hears a hint published on any
other. A cluster client refuses PUBLISH in a pipeline (its commands are split by slot, and PUBLISH
names no key), so there a batch of hints goes as one script with no keys (``_PUBLISH_ALL``: one round
trip to one primary). A single server takes the same script: one command of many arguments costs the
client far less than a pipeline of one PUBLISH per hint, each packed on its own (#15). Hints alike in a
batch go once: each says "read again", and every change they follow is committed already.
Sharded pub/sub (SPUBLISH, a channel's messages kept on its slot's nodes) would spare the bus the
broadcast, at the cost of a subscription per node a tenant's channels land on: not worth it for small
hints.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from enum import StrEnum
from typing import Any

import anyio
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster

from shared.wire import json_text

log = logging.getLogger(__name__)

# Most seconds a subscription's clean-up may take (it runs shielded from the stream's cancellation).
_CLOSE_TIMEOUT_SECONDS = 2.0
# Hints waiting for Redis; beyond, new ones are dropped (a Redis that hangs holds at most this many).
QUEUE_SIZE = 1000
# Most hints sent in one script call.
HINTS_PER_CALL = 500

# A batch of hints: ARGV channel, message, channel, message... No KEYS: on a cluster it runs on any
# primary (PUBLISH touches no key; the cluster bus takes each message to every node).
_PUBLISH_ALL = """
for i = 1, #ARGV, 2 do redis.call('PUBLISH', ARGV[i], ARGV[i + 1]) end
return #ARGV / 2
"""


class ChangeKind(StrEnum):
    score = "score"  # the score or a requirement's status (a preview requirement activating included)
    alert = "alert"  # an alert created or updated, its response time, its sync, its triage
    delivery = "delivery"
    customer_mfa = "customer-mfa"


class Changes:
    """Publish a tenant's changes, and subscribe to them."""

    def __init__(self, redis: Redis | RedisCluster, prefix: str, queue_size: int = QUEUE_SIZE) -> None:
        self.redis = redis
        self.prefix = prefix
        self._publish_all = redis.register_script(_PUBLISH_ALL)
        self._queue: asyncio.Queue[tuple[str, str, str]] = asyncio.Queue(maxsize=queue_size)
        self._sender: asyncio.Task | None = None
        self.dropped = 0

    def channel(self, tenant_id: str) -> str:
        return f"{self.prefix}changes:{tenant_id}"

    def start(self) -> None:
        self._sender = asyncio.create_task(self._send_forever(), name="change-hints")

    async def stop(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
            self._sender = None

    async def publish(self, tenant_id: str, kind: ChangeKind, alert_id: str | None = None) -> None:
        """Queue a hint for the tenant's streams; never waits on Redis, never raises (see the module's text)."""
        change: dict[str, Any] = {"kind": kind.value}
        if alert_id is not None:
            change["alertId"] = alert_id
        try:
            self._queue.put_nowait((tenant_id, self.channel(tenant_id), json_text(change)))
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped % QUEUE_SIZE == 1:
                log.warning("%d change hint(s) dropped so far: Redis takes them slower than they come",
                            self.dropped)

    async def _send_forever(self) -> None:
        # Whatever waits goes in one script call: one round trip for a batch's hints, not one per hint
        # (one PUBLISH at a time fell behind a pipeline of a few hundred alerts a second, and hints dropped).
        while True:
            waiting = [await self._queue.get()]
            while not self._queue.empty() and len(waiting) < HINTS_PER_CALL:
                waiting.append(self._queue.get_nowait())
            hints = dict.fromkeys((channel, change) for _tenant_id, channel, change in waiting)  # alike: once
            try:
                await self._publish_all(keys=[], args=[part for hint in hints for part in hint])
            except Exception as exc:  # noqa: BLE001 - a hint lost must never stop the sender
                log.warning("could not publish the %s change of tenant %s (and %d other hint(s) with it): %s: %s",
                            json.loads(waiting[0][2])["kind"], waiting[0][0], len(waiting) - 1,
                            type(exc).__name__, exc)

    async def subscribe(self, tenant_id: str) -> Subscription:
        """Subscribed once this returns: every change published from then on is in it. Close it."""
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        try:
            if isinstance(self.redis, RedisCluster):
                # A cluster's pubsub picks its node from the slots the client knows: known once initialized.
                await self.redis.initialize()
            await pubsub.subscribe(self.channel(tenant_id))
        except BaseException:
            await _close(pubsub)
            raise
        return Subscription(pubsub)


class Subscription:
    """One tenant's changes as they are published (JSON objects), until closed."""

    def __init__(self, pubsub: PubSub) -> None:
        self._pubsub = pubsub

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        async for message in self._pubsub.listen():
            if message.get("type") == "message":
                yield json.loads(message["data"])

    async def close(self) -> None:
        """Unsubscribe and give the connection back; idempotent, and safe while being cancelled."""
        await _close(self._pubsub)


async def _close(pubsub: PubSub) -> None:
    with anyio.move_on_after(_CLOSE_TIMEOUT_SECONDS, shield=True), contextlib.suppress(Exception):
        await pubsub.aclose()
