"""The Redis score cache of the scoring service: derived state only, rebuilt from PostgreSQL.

Per tenant one hash with each requirement's winning status and two timestamps, merged by a Lua
script that keeps the newest observation, so concurrent or repeated syncs (events, rebuilds, several
instances) never regress it. A marker key says the cache is complete; when Redis loses its data the
marker goes with it and the service rebuilds from PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from services.scoring import domain
from services.scoring.config import Settings
from services.scoring.store import TenantSnapshot
from shared.events import ComplianceStatus

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(microseconds=1)


def from_micros(value: int | str) -> datetime:
    return _EPOCH + timedelta(microseconds=int(value))


# The service's client: one server, or a Redis Cluster (``REDIS_CLUSTER``). Both take the same commands
# here; where they differ (the server run, the hook on new connections, pub/sub) the code says so.
AnyRedis = Redis | RedisCluster

# A cluster client retries a command that failed on a connection error or a timeout once, after reading
# the topology again: enough to ride through a failover (a primary gone, its replica promoted). Its default
# (three retries, backoff up to 10 s) would hold a read on a hung node for four timeouts and more.
CLUSTER_RETRIES = 1


def connect_redis(settings: Settings) -> AnyRedis:
    """The service's Redis client, every connection attempt and every command bounded.

    A Redis that hangs then makes a score read answer 503 within about these timeouts (a redis
    ``TimeoutError``; on a cluster within about twice: one retry), and the keeper's checks fail and
    try again, rather than waiting forever (redis-py before 8.0 has no timeout by default).
    With ``REDIS_CLUSTER``, ``REDIS_URL`` names any one node of a Redis Cluster: the client reads the
    others and the slots from it (``RedisCluster``; database 0 only, which the settings check).
    """
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_connect_timeout": settings.redis_connect_timeout_seconds,
        "socket_timeout": settings.redis_command_timeout_seconds,
    }
    if settings.redis_cluster:
        retry = Retry(ExponentialWithJitterBackoff(cap=0.5, base=0.05), CLUSTER_RETRIES)
        return RedisCluster.from_url(settings.redis_url, retry=retry, **options)
    return Redis.from_url(settings.redis_url, **options)


# KEYS[1] the ready marker, KEYS[2] a tenant's hash: both in one reply (one server only: on a cluster
# the two keys are in different slots).
_READ_TENANT = """
return {redis.call('GET', KEYS[1]), redis.call('HGETALL', KEYS[2])}
"""

# KEYS[1] the tenant's hash. ARGV[1] refreshed (µs or ""), ARGV[2] score updated (µs or ""), then
# groups of four: field, observed µs, event id, status JSON. Timestamps only move forward; a status
# replaces the stored one only when its (observed, event id) is larger, as domain.supersedes says.
_MERGE_TENANT = """
local h = KEYS[1]
local function forward(field, value)
  if value == '' then return end
  local stored = redis.call('HGET', h, field)
  if (not stored) or tonumber(stored) < tonumber(value) then redis.call('HSET', h, field, value) end
end
forward('refreshed', ARGV[1])
forward('scoreUpdated', ARGV[2])
local replaced = 0
for i = 3, #ARGV, 4 do
  local field, observed, event_id = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  local stored = redis.call('HGET', h, field)
  local newer = true
  if stored then
    local s = cjson.decode(stored)
    if s.o > observed or (s.o == observed and s.e >= event_id) then newer = false end
  end
  if newer then
    redis.call('HSET', h, field, ARGV[i + 3])
    replaced = replaced + 1
  end
end
return replaced
"""

# KEYS[1] the rebuild epoch, KEYS[2] the ready marker; ARGV[1] the epoch token, ARGV[2] the Redis
# server's run_id (on a cluster every primary's: ScoreCache.server_run_id). The marker is set only if
# the epoch this rebuild began under still exists: a flush during the rebuild leaves the cache not ready.
# The marker holds the run_id: a restart (a new run_id) may have lost the last writes (AOF fsync every
# second) while keeping the marker, so a marker of another run means "not ready" and the cache is rebuilt.
_FINISH_REBUILD = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[2])
  return 1
end
return 0
"""

_STATUS_FIELD = "s:"

# How long a read trusts the server run it last read (INFO), connections unchanged; a server restarted
# behind a proxy that kept the connections is noticed within this.
RUN_ID_FRESH_SECONDS = 1.0


@dataclass(frozen=True)
class CachedTenant:
    ready: bool
    statuses: dict[str, domain.Observation]
    score_updated_at: datetime | None
    refreshed_at: datetime | None


def _status_json(o: domain.Observation) -> str:
    return json.dumps(
        {
            "o": to_micros(o.observed_at),
            "e": o.event_id,
            "c": o.compliance_status.value,
            "src": o.source,
            "ins": o.insights,
            "app": to_micros(o.applied_at) if o.applied_at else None,
        },
        separators=(",", ":"),
    )


def _status_from_json(requirement_type: str, text: str) -> domain.Observation:
    data: dict[str, Any] = json.loads(text)
    return domain.Observation(
        requirement_type=requirement_type,
        compliance_status=ComplianceStatus(data["c"]),
        observed_at=from_micros(data["o"]),
        event_id=data["e"],
        source=data.get("src", ""),
        insights=data.get("ins") or {},
        applied_at=from_micros(data["app"]) if data.get("app") is not None else None,
    )


# Redis Cluster runs a script only if all its KEYS are in one slot, and a key's slot is the hash of its
# hash tag (the text between its first `{` and the next `}`) when it has one. So every key a script
# touches shares one tag: a tenant's hash is tagged with the tenant (`<prefix>{t:<tenantId>}`: tenants
# spread over the slots, and any later key of a tenant's joins its slot), and the two keys of a rebuild
# (its epoch, the ready marker, both in _FINISH_REBUILD) with `{cache}`. Until this layout the keys were
# `<prefix>t:<tenantId>`, `<prefix>ready`, `<prefix>epoch`: a service of this version finds no marker
# under its name and rebuilds the cache from PostgreSQL (docs/scoring.md, "Redis keys").
CACHE_TAG = "{cache}"


def tenant_key(prefix: str, tenant_id: str) -> str:
    return f"{prefix}{{t:{tenant_id}}}"


def ready_key(prefix: str) -> str:
    return f"{prefix}{CACHE_TAG}:ready"


def epoch_key(prefix: str) -> str:
    return f"{prefix}{CACHE_TAG}:epoch"


class ScoreCache:
    """The Redis side: merge a tenant's state in, read it back, and the ready marker of rebuilds."""

    def __init__(self, redis: AnyRedis, prefix: str) -> None:
        if "{" in prefix or "}" in prefix:
            # The prefix's braces would be the keys' hash tag (or make it empty): keys that must share
            # a slot could land apart on Redis Cluster.
            raise ValueError(f"REDIS_KEY_PREFIX {prefix!r} must not contain {{ or }} (Redis Cluster hash tags)")
        self.redis = redis
        self.prefix = prefix
        self.ready_key = ready_key(prefix)
        self.epoch_key = epoch_key(prefix)
        self._merge = redis.register_script(_MERGE_TENANT)
        self._finish = redis.register_script(_FINISH_REBUILD)
        self._read = redis.register_script(_READ_TENANT)
        # The server run a read compares the marker with, read with INFO (a large reply to parse) at most
        # every RUN_ID_FRESH_SECONDS rather than on each read, and again after any new connection: a
        # restarted server is reached only through new connections.
        self._run_id: str | None = None
        self._run_id_read_at = 0.0
        _forget_run_on_every_connection(redis, self)

    def forget_run_id(self) -> None:
        self._run_id = None

    async def _current_run_id(self) -> str:
        run_id = self._run_id
        if run_id is None or time.monotonic() - self._run_id_read_at > RUN_ID_FRESH_SECONDS:
            read_at = time.monotonic()
            run_id = await self.server_run_id()
            self._run_id, self._run_id_read_at = run_id, read_at
        return run_id

    def tenant_key(self, tenant_id: str) -> str:
        return tenant_key(self.prefix, tenant_id)

    async def forget(self, tenant_id: str) -> None:
        """Delete the tenant's hash, its only key here (an offboarded tenant: ``offboarding.py``)."""
        await self.redis.delete(self.tenant_key(tenant_id))

    async def merge(self, snapshot: TenantSnapshot) -> int:
        args: list[Any] = [
            to_micros(snapshot.refreshed_at) if snapshot.refreshed_at else "",
            to_micros(snapshot.score_updated_at) if snapshot.score_updated_at else "",
        ]
        for observation in snapshot.statuses.values():
            args += [
                _STATUS_FIELD + observation.requirement_type,
                to_micros(observation.observed_at),
                observation.event_id,
                _status_json(observation),
            ]
        return int(await self._merge(keys=[self.tenant_key(snapshot.tenant_id)], args=args))

    async def read(self, tenant_id: str) -> CachedTenant:
        if isinstance(self.redis, RedisCluster):
            # The marker and the tenant's hash live in different slots: one pipeline, a command each.
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.get(self.ready_key)
                pipe.hgetall(self.tenant_key(tenant_id))
                marker, fields = await pipe.execute()
        else:
            # One command (EVALSHA) rather than a pipeline of two: the read API's busiest path (#15).
            marker, flat = await self._read(keys=[self.ready_key, self.tenant_key(tenant_id)])
            fields = dict(zip(flat[::2], flat[1::2], strict=True))
        # Read after the reply: a reconnection on the way (a restarted server) has forgotten the run.
        ready = await self._marks_this_run(marker)
        statuses = {
            name[len(_STATUS_FIELD) :]: _status_from_json(name[len(_STATUS_FIELD) :], value)
            for name, value in fields.items()
            if name.startswith(_STATUS_FIELD)
        }
        return CachedTenant(
            ready=bool(ready),
            statuses=statuses,
            score_updated_at=from_micros(fields["scoreUpdated"]) if "scoreUpdated" in fields else None,
            refreshed_at=from_micros(fields["refreshed"]) if "refreshed" in fields else None,
        )

    async def is_ready(self) -> bool:
        """Complete: rebuilt (or kept up) since this Redis server started, not merely marked once."""
        return await self._marks_this_run(await self.redis.get(self.ready_key))

    async def _marks_this_run(self, marker: str | bytes | None) -> bool:
        if isinstance(marker, bytes):
            marker = marker.decode()
        return marker is not None and marker == await self._current_run_id()

    async def server_run_id(self) -> str:
        """The run the ready marker names: the server's ``run_id``, on a cluster every primary's."""
        if isinstance(self.redis, RedisCluster):
            return await _cluster_run(self.redis)
        return str((await self.redis.info("server"))["run_id"])

    async def begin_rebuild(self) -> str:
        """The epoch this rebuild runs under (shared with any other instance rebuilding now)."""
        token = uuid.uuid4().hex
        if await self.redis.set(self.epoch_key, token, nx=True):
            return token
        return await self.redis.get(self.epoch_key) or token

    async def finish_rebuild(self, token: str, run_id: str | None = None) -> bool:
        """Mark the cache complete for ``run_id``: the server run the rebuild began under (read it
        before ``begin_rebuild``; a restart meanwhile leaves the marker naming the old run)."""
        run_id = run_id or await self.server_run_id()
        return bool(await self._finish(keys=[self.epoch_key, self.ready_key], args=[token, run_id]))


async def _cluster_run(cluster: RedisCluster) -> str:
    """Every primary's ``run_id``, sorted, comma-separated: the run of a cluster as the marker names it.

    The marker is on one node (the one serving ``{cache}``), the tenants' hashes on all of them, and any
    primary that restarts (or a replica promoted in its place, a primary added) may have lost writes while
    the marker stays: so the marker names the run of every primary, and a change of any one of them leaves
    the cache not ready, and rebuilt. A FLUSHALL of the whole cluster (a cluster client's ``flushall``,
    ``redis-cli --cluster call <node> FLUSHALL``) deletes the marker too. What is not noticed, as a key
    deleted by hand on one server is not: a FLUSHALL sent to one primary alone that does not hold the
    marker (docs/scoring.md, "Redis keys": delete the marker after such a flush).
    """
    await cluster.initialize()  # the nodes, once (a no-op once known)
    infos = await asyncio.gather(*(cluster.info("server", target_nodes=node) for node in cluster.get_primaries()))
    return ",".join(sorted(str(info["run_id"]) for info in infos))


def _connection_settings(redis: AnyRedis) -> list[dict[str, Any]]:
    """Where ``redis`` keeps the settings of the connections it makes. One server: its pool's. A cluster:
    the client's (each node it finds later is made from them) and a copy in each node known now."""
    if isinstance(redis, RedisCluster):
        known = {**redis.nodes_manager.startup_nodes, **redis.nodes_manager.nodes_cache}
        return [redis.connection_kwargs, *(node.connection_kwargs for node in known.values())]
    return [redis.connection_pool.connection_kwargs]


def _forget_run_on_every_connection(redis: AnyRedis, cache: ScoreCache) -> None:
    """Make ``cache`` forget the server run it read on each connection ``redis`` makes from now on,
    before its first command: redis-py's ``redis_connect_func``, kept in the connection settings in place
    of its default handshake (on a cluster: of every node, so a restarted node is noticed as a restarted
    server is), installed once per client for all its caches (held weakly)."""
    every = _connection_settings(redis)
    hook = every[0].get("redis_connect_func")
    caches = getattr(hook, "score_caches", None)
    if caches is None:
        handshake = hook
        caches = weakref.WeakSet()

        async def connected(connection: AbstractConnection) -> None:
            for known in list(caches):
                known.forget_run_id()
            if handshake is None:
                await connection.on_connect()
            else:
                await handshake(connection)

        connected.score_caches = caches  # type: ignore[attr-defined]
        hook = connected
    for settings in every:
        settings["redis_connect_func"] = hook
    caches.add(cache)
