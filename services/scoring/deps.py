"""FastAPI dependency aliases of the read API: the state ``app.py`` wires, and the caller."""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import Depends, Header, Path, Request
from redis.asyncio import Redis

from services.scoring.config import Settings
from shared.auth import KeyStore, Permission, Principal, authorize


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _pool(request: Request) -> asyncpg.Pool:
    return request.app.state.pool


def _redis(request: Request) -> Redis:
    return request.app.state.redis


async def _reader(
    request: Request,
    tenant_id: Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$")],
    authorization: Annotated[str | None, Header()] = None,
) -> Principal:
    keys: KeyStore = request.app.state.keys
    return authorize(await keys.authenticate(authorization), Permission.read, tenant_id)


SettingsDep = Annotated[Settings, Depends(_settings)]
PoolDep = Annotated[asyncpg.Pool, Depends(_pool)]
RedisDep = Annotated[Redis, Depends(_redis)]
# The caller, already allowed to read the tenant named in the path.
ReaderDep = Annotated[Principal, Depends(_reader)]
