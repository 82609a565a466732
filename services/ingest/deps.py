"""FastAPI dependency aliases of the write API: the state ``app.py`` wires, and the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import asyncpg
from fastapi import Depends, Header, Request

from services.ingest.config import Settings
from services.ingest.webhook_auth import WebhookSecrets
from shared.auth import KeyStore, Permission, Principal, authorize
from shared.catalogue import Catalogue
from shared.http import TenantIdPath
from shared.http_guards import authenticated_caller, authenticates


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _pool(request: Request) -> asyncpg.Pool:
    return request.app.state.pool


# Routes given the key store authenticate with it (the alert routes: a key or a signed webhook).
@authenticates
async def _keys(request: Request) -> KeyStore:
    return request.app.state.keys


async def _webhook_secrets(request: Request) -> WebhookSecrets:
    return request.app.state.webhook_secrets


@authenticates
async def _principal(request: Request, authorization: Annotated[str | None, Header()] = None) -> Principal:
    # Authenticated once per request: by the request guard before a body is read, else here.
    return await authenticated_caller(request, authorization)


async def _catalogue(request: Request) -> Catalogue:
    return request.app.state.catalogue


# (async def: FastAPI would run plain `def` dependencies in a worker thread on every request.)
SettingsDep = Annotated[Settings, Depends(_settings)]
PoolDep = Annotated[asyncpg.Pool, Depends(_pool)]
CallerDep = Annotated[Principal, Depends(_principal)]
KeysDep = Annotated[KeyStore, Depends(_keys)]
WebhookSecretsDep = Annotated[WebhookSecrets, Depends(_webhook_secrets)]
CatalogueDep = Annotated[Catalogue, Depends(_catalogue)]


async def _tenant_reader(tenant_id: TenantIdPath, caller: CallerDep) -> Principal:
    return authorize(caller, Permission.read, tenant_id)


async def _tenant_manager(tenant_id: TenantIdPath, caller: CallerDep) -> Principal:
    return authorize(caller, Permission.manage, tenant_id)


async def _alert_updater(tenant_id: TenantIdPath, caller: CallerDep) -> Principal:
    return authorize(caller, Permission.update_alerts, tenant_id)


# The caller, once allowed to read / manage the path's tenant: as dependencies, a caller who may not
# learns it before anything about the body.
TenantReaderDep = Annotated[Principal, Depends(_tenant_reader)]
TenantManagerDep = Annotated[Principal, Depends(_tenant_manager)]
# ...and to change its alerts (status, assignee, notes; as PATCH /alerts/{id} requires).
AlertUpdaterDep = Annotated[Principal, Depends(_alert_updater)]


def wake_relay(request: Request) -> None:
    """Once a write has committed: the outbox relay of this process looks at the table at once (it also
    hears the commit's NOTIFY; this saves the trip)."""
    request.app.state.relay.wake()


async def wake_relay_after_write(request: Request) -> AsyncIterator[None]:
    """A router's dependency: once a write route is done, its transaction committed, :func:`wake_relay`."""
    yield
    if request.method != "GET":
        wake_relay(request)
