"""FastAPI dependency aliases of the read API: the state ``app.py`` wires, and the caller."""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import Depends, Header, Request
from redis.exceptions import RedisError

from services.scoring.cache import AnyRedis, CachedTenant, ScoreCache
from services.scoring.config import Settings
from services.scoring.keeper import ScoreKeeper
from shared.auth import Permission, Principal, authorize
from shared.catalogue import Catalogue
from shared.http import Problem, TenantIdPath
from shared.http_guards import authenticated_caller, authenticates


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _pool(request: Request) -> asyncpg.Pool:
    return request.app.state.pool


async def _redis(request: Request) -> AnyRedis:
    return request.app.state.redis


@authenticates
async def _reader(
    request: Request,
    tenant_id: TenantIdPath,
    authorization: Annotated[str | None, Header()] = None,
) -> Principal:
    return authorize(await authenticated_caller(request, authorization), Permission.read, tenant_id)


SettingsDep = Annotated[Settings, Depends(_settings)]
PoolDep = Annotated[asyncpg.Pool, Depends(_pool)]
RedisDep = Annotated[AnyRedis, Depends(_redis)]
# The caller, already allowed to read the tenant named in the path.
ReaderDep = Annotated[Principal, Depends(_reader)]


async def _catalogue(request: Request) -> Catalogue:
    return request.app.state.catalogue


async def _cache(request: Request) -> ScoreCache:
    return request.app.state.cache


async def _keeper(request: Request) -> ScoreKeeper:
    return request.app.state.keeper


CatalogueDep = Annotated[Catalogue, Depends(_catalogue)]
# The Redis score cache, and what keeps it (asked for a rebuild when a read finds the cache gone).
CacheDep = Annotated[ScoreCache, Depends(_cache)]
KeeperDep = Annotated[ScoreKeeper, Depends(_keeper)]


async def read_tenant(tenant_id: str, cache: ScoreCache, keeper: ScoreKeeper, retry_after_seconds: int) -> CachedTenant:
    """The tenant's cached statuses; 503 with ``Retry-After`` while Redis does not answer or the cache is
    being rebuilt (a rebuild asked for): never a score computed from partial data."""
    retry = {"Retry-After": str(retry_after_seconds)}
    try:
        found = await cache.read(tenant_id)
    except RedisError as exc:
        raise Problem(
            503, "Score unavailable", f"Redis does not answer ({type(exc).__name__})", headers=retry
        ) from None
    if not found.ready:
        keeper.request_rebuild()
        raise Problem(503, "Score being rebuilt", "the score cache is being rebuilt from the durable store",
                      headers=retry)
    return found


async def _cached_tenant(request: Request, tenant_id: TenantIdPath) -> CachedTenant:
    # One dependency, not four (cache, keeper, settings): each costs on every read of the busiest route.
    state = request.app.state
    return await read_tenant(tenant_id, state.cache, state.keeper, state.settings.retry_after_seconds)


# The path's tenant as the Redis cache holds it (declared after ReaderDep: read once the caller may).
CachedTenantDep = Annotated[CachedTenant, Depends(_cached_tenant)]


async def reader(request: Request, tenant_id: str) -> Principal:
    """What ``ReaderDep`` gives, for a route taking no dependency: the caller, allowed to read the tenant."""
    return authorize(await authenticated_caller(request, request.headers.get("authorization")), Permission.read,
                     tenant_id)


async def read_tenant_for_reader(request: Request, tenant_id: str) -> CachedTenant:
    """What ``ReaderDep`` and ``CachedTenantDep`` give, in one call: for a route taking no dependency."""
    await reader(request, tenant_id)
    state = request.app.state
    return await read_tenant(tenant_id, state.cache, state.keeper, state.settings.retry_after_seconds)
