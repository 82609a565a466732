"""FastAPI dependency aliases of the read API: the state ``app.py`` wires, and the caller."""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import Depends, Header, Request
from redis.asyncio import Redis

from services.scoring.cache import ScoreCache
from services.scoring.config import Settings
from services.scoring.keeper import ScoreKeeper
from shared.auth import Permission, Principal, authorize
from shared.catalogue import Catalogue
from shared.http import TenantIdPath
from shared.http_guards import authenticated_caller, authenticates


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _pool(request: Request) -> asyncpg.Pool:
    return request.app.state.pool


async def _redis(request: Request) -> Redis:
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
RedisDep = Annotated[Redis, Depends(_redis)]
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
