"""``POST | GET /v1/keys``, ``GET | DELETE /v1/keys/{keyId}``: API keys, managed by operators.

Only an operator (adminAgent of every tenant: ``OPERATOR_API_KEY`` or such a key of the database)
may manage keys; any tenant's key is 403. A key is shown once, in the answer that creates it; after
that only its public ``keyId`` names it (its SHA-256 digest is never shown). Revoking stops the key at
once in this process and within ``API_KEY_CACHE_SECONDS`` in every other one. Each creation and
revocation is audited (``key-created``, ``key-revoked``) in its own transaction: under the key's
tenant, or the deployment's log (``GET /v1/audit``) for a key of every tenant. No key is made for an
offboarded tenant (410): its id is retired.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import Field, field_validator

from services.ingest.deps import CallerDep, KeysDep, PoolDep
from services.ingest.paging import NextLinkPage
from shared import auth, offboarding
from shared.auth import AuditActor, Role, authorize_operator
from shared.http import Problem
from shared.wire import (
    TENANT_ID_MAX_LENGTH,
    TENANT_ID_PATTERN,
    OptionalUtcDateTime,
    UtcDateTime,
    WireModel,
    format_utc,
    utcnow,
)

router = APIRouter(prefix="/v1/keys", tags=["api keys"])

KeyId = Annotated[uuid.UUID, Path(description="The key's public id (`keyId`).")]
IncludeRevoked = Annotated[bool, Query(alias="includeRevoked", description="Revoked keys too (with "
                                       "`revokedDateTime`); without it a revoked key is 404 as if deleted.")]
MAX_PAGE = 1000


class KeyIn(WireModel):
    tenant_id: str | None = Field(
        None, min_length=1, max_length=TENANT_ID_MAX_LENGTH, pattern=TENANT_ID_PATTERN,
        description="The tenant the key belongs to; null: every tenant (with adminAgent, an operator's key).",
    )
    role: Role = Field(description="adminAgent (everything), securityAdministrator (read, update alerts, set the "
                       "contact) or securityReader (read only).")
    user_id: str = Field(
        min_length=1, max_length=320, pattern=r"^[^\x00-\x1F\x7F-\x9F]+$",
        description="The user the key acts as: the actor of its alert updates and of its changes in the audit log. "
        "No control characters.",
    )
    expires_date_time: OptionalUtcDateTime = Field(
        None, description="When the key stops working (401 `expired key` after); in the future. Null: never.",
    )
    # Strict: a JSON true is not a number here (the schema says so; lax parsing took it for 1).
    rate_per_second: float | None = Field(
        None, ge=auth.MIN_RATE_PER_SECOND, le=100_000, strict=True,
        description="Requests per second the key may make to each server; null: `API_KEY_RATE_PER_SECOND`.",
    )
    rate_burst: int | None = Field(
        None, ge=1, le=1_000_000, strict=True,
        description="Requests the key may make at once beyond its rate; null: `API_KEY_RATE_BURST`.",
    )

    @field_validator("expires_date_time")
    @classmethod
    def _in_the_future(cls, value: datetime | None) -> datetime | None:
        if value is not None and value <= utcnow():
            raise ValueError("must be in the future")
        return value


class KeyOut(WireModel):
    key_id: str = Field(description="The key's public id: how it is listed, revoked and named in the audit log.")
    tenant_id: str | None = Field(description="The tenant it belongs to; null: every tenant.")
    role: Role
    user_id: str = Field(description="The user it acts as.")
    created_date_time: UtcDateTime
    created_by: str | None = Field(description="The user who made it (null for keys older than this field).")
    expires_date_time: OptionalUtcDateTime = Field(description="When it stops working; null: never.")
    last_used_date_time: OptionalUtcDateTime = Field(
        description="Its last authenticated request, written at most about once a minute per server "
        "(`API_KEY_LAST_USED_INTERVAL_SECONDS`); null: not used yet.",
    )
    revoked_date_time: OptionalUtcDateTime = Field(description="When it was revoked; null: it is not.")
    rate_per_second: float | None = Field(description="Its own rate limit; null: the deployment's default.")
    rate_burst: int | None = Field(description="Its own burst; null: the deployment's default.")


class KeyCreated(KeyOut):
    key: str = Field(description="The key itself, for `Authorization: Bearer <key>`. Shown this once: only a "
                     "digest of it is kept.")


class KeyPage(NextLinkPage):
    value: list[KeyOut]


def _out(row, cls: type[KeyOut] = KeyOut, **extra) -> KeyOut:
    return cls(
        key_id=str(row["key_id"]), tenant_id=row["tenant_id"], role=Role(row["role"]), user_id=row["user_id"],
        created_date_time=row["created_at"], created_by=row["created_by"], expires_date_time=row["expires_at"],
        last_used_date_time=row["last_used_at"], revoked_date_time=row["revoked_at"],
        rate_per_second=row["rate_per_second"], rate_burst=row["rate_burst"], **extra,
    )


# Declared here: what only these routes answer (the rest is documented by shared.http_openapi).
OPERATORS_ONLY = {403: {"description": "The key is not an operator's (adminAgent of every tenant)"}}


@router.post(
    "",
    status_code=201,
    response_model=KeyCreated,
    summary="Create an API key (operators); the key is in this answer only",
    responses={**OPERATORS_ONLY, 410: {"description": "The tenant was offboarded: it gets no more keys"}},
)
async def create_key(body: KeyIn, caller: CallerDep, pool: PoolDep, response: Response) -> KeyCreated:
    authorize_operator(caller, "create API keys")
    if body.tenant_id is not None and (gone_at := await offboarding.offboarded_at(pool, body.tenant_id)):
        raise Problem(410, "Tenant offboarded",
                      f"tenant {body.tenant_id} was offboarded at {format_utc(gone_at)}; it gets no more keys")
    key, row = await auth.add_key(
        pool, body.tenant_id, body.role, body.user_id, actor=AuditActor.of(caller),
        expires_at=body.expires_date_time, rate_per_second=body.rate_per_second, rate_burst=body.rate_burst,
    )
    response.headers["Location"] = f"/v1/keys/{row['key_id']}"
    return _out(row, KeyCreated, key=key)


@router.get(
    "",
    response_model=KeyPage,
    summary="API keys, newest first, in pages (operators); never the keys themselves",
    responses=OPERATORS_ONLY,
)
async def list_keys(
    caller: CallerDep,
    pool: PoolDep,
    request: Request,
    tenant_id: Annotated[str | None, Query(alias="tenantId", min_length=1, max_length=TENANT_ID_MAX_LENGTH,
                                           pattern=TENANT_ID_PATTERN, description="Only this tenant's keys.")] = None,
    include_revoked: IncludeRevoked = False,
    top: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size.")] = 100,
    skiptoken: Annotated[str | None, Query(max_length=512, description="Where the page starts; from "
                                           "`@odata.nextLink`, opaque.")] = None,
) -> KeyPage:
    authorize_operator(caller, "list API keys")
    rows = await auth.list_keys(pool, tenant_id=tenant_id, include_revoked=include_revoked, limit=top + 1,
                                after=auth.key_position(skiptoken) if skiptoken else None)
    next_link = None
    if len(rows) > top:
        # By position, not offset: keys made meanwhile do not shift the next page. Relative: the Host
        # header is the client's to write, never a link's origin.
        following = request.url.include_query_params(top=top, skiptoken=auth.key_position_token(rows[top - 1]))
        next_link = f"{following.path}?{following.query}"
    return KeyPage(value=[_out(r) for r in rows[:top]], next_link=next_link)


@router.get(
    "/{key_id}",
    response_model=KeyOut,
    summary="One API key (operators); never the key itself",
    responses={**OPERATORS_ONLY, 404: {"description": "No such key, or a revoked one (without `includeRevoked`)"}},
)
async def get_key(key_id: KeyId, caller: CallerDep, pool: PoolDep, include_revoked: IncludeRevoked = False) -> KeyOut:
    authorize_operator(caller, "read API keys")
    row = await auth.get_key(pool, key_id)
    if row is None:
        raise Problem(404, "Not found", f"no key {key_id}")
    if row["revoked_at"] is not None and not include_revoked:
        # Deleted (revoked) is gone, as after any DELETE; still there for whoever asks for revoked keys.
        raise Problem(404, "Not found", f"key {key_id} is revoked; ?includeRevoked=true shows it")
    return _out(row)


@router.delete(
    "/{key_id}",
    status_code=204,
    summary="Revoke an API key (operators): at once on this server, within API_KEY_CACHE_SECONDS on the others",
    responses={**OPERATORS_ONLY, 404: {"description": "No such key"}},
)
async def revoke_key(key_id: KeyId, caller: CallerDep, pool: PoolDep, keys: KeysDep) -> Response:
    authorize_operator(caller, "revoke API keys")
    done = await auth.revoke_key(pool, key_id, actor=AuditActor.of(caller))
    if done.row is None:
        raise Problem(404, "Not found", f"no key {key_id}")
    if done.digest is not None:
        keys.forget(done.digest)
    return Response(status_code=204)  # revoked now, or already: the same state either way
