"""Who is calling, what they may do, and the record of what they changed (SPEC §6).

``Authorization: Bearer <key>``. A key belongs to one tenant, or to every tenant for an operator,
with a role: adminAgent (everything), securityAdministrator (read, update alerts, set the contact),
securityReader (read only). The operator key comes from ``OPERATOR_API_KEY``; other keys live in
PostgreSQL (``api_keys``: only a SHA-256 of each key is stored, beside a public key id) and are made,
listed and revoked with ``POST | GET | DELETE /v1/keys`` (write API, operators) or
``python -m shared.auth create-key | list-keys | revoke-key``.

A key may expire (401 "expired key" after), records when it was last used (written in the background
at most once per ``API_KEY_LAST_USED_INTERVAL_SECONDS`` per key and process) and is rate limited per
process (a token bucket per key: 429 with ``Retry-After``). A process caches a key for
``API_KEY_CACHE_SECONDS``, so a key revoked elsewhere stops within that time. Everything a process
remembers about keys is bounded (least recently used forgotten first): a flood of keys, bogus or not,
costs it no more memory than the bounds.

Every configuration change is written to the audit log (``record_audit``) in the transaction that
makes it, naming the user and the key (its id, ``operator`` or ``cli``) that made it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import getpass
import hashlib
import hmac
import json
import logging
import math
import os
import secrets
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import asyncpg
from cachetools import LRUCache, TTLCache

from shared.problems import Problem
from shared.settings import ApiKeySettings
from shared.wire import format_utc

log = logging.getLogger(__name__)

OPERATOR_KEY_ID = "operator"  # the key id the operator key (OPERATOR_API_KEY) acts with
CLI_KEY_ID = "cli"  # the key id of changes made with the command-line tools
MIN_RATE_PER_SECOND = 0.01  # a slower key would be told to retry after more than 100 s
# Database keys: the digest is looked up for every request not in the cache, and the id is public.
DB_KEY_COLUMNS = ("key_id, tenant_id, role, user_id, created_at, created_by, expires_at, last_used_at, "
                  "revoked_at, rate_per_second, rate_burst")


class Role(StrEnum):
    admin_agent = "adminAgent"
    security_administrator = "securityAdministrator"
    security_reader = "securityReader"


class Permission(StrEnum):
    read = "read"
    update_alerts = "update-alerts"
    set_contact = "set-contact"
    manage = "manage"  # signals, requirement status, channels, redelivery


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.admin_agent: frozenset(Permission),
    Role.security_administrator: frozenset({Permission.read, Permission.update_alerts, Permission.set_contact}),
    Role.security_reader: frozenset({Permission.read}),
}


@dataclass(frozen=True)
class Principal:
    user_id: str
    role: Role
    tenant_id: str | None  # None: every tenant (operator)
    key_id: str | None = None  # the key's public id; OPERATOR_KEY_ID for the operator key

    def can(self, permission: Permission, tenant_id: str) -> bool:
        return (self.tenant_id is None or self.tenant_id == tenant_id) and permission in ROLE_PERMISSIONS[self.role]

    @property
    def may_change_anything(self) -> bool:
        """Whether the role has any permission beyond reading."""
        return bool(ROLE_PERMISSIONS[self.role] - {Permission.read})

    @property
    def is_operator(self) -> bool:
        """adminAgent of every tenant: may manage the deployment itself (API keys, its audit log)."""
        return self.tenant_id is None and self.role is Role.admin_agent


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


# --- rate limit ------------------------------------------------------------------------------------


class TokenBucket:
    """``burst`` requests at once, then ``rate`` per second: pure, given monotonic times."""

    def __init__(self, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"a token bucket needs rate > 0 and burst >= 1, not {rate} and {burst}")
        self.rate, self.burst = float(rate), burst
        self._tokens = float(burst)
        self._at: float | None = None

    def _refill(self, now: float) -> None:
        if self._at is not None and now > self._at:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        # A clock going back adds nothing (and the time is not moved back, so it cannot add later).
        self._at = now if self._at is None else max(self._at, now)

    def take(self, now: float) -> float:
        """Take a token: 0.0 if there was one, else the seconds until there is (nothing is taken then)."""
        self._refill(now)
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self.rate


def retry_after_seconds(wait: float) -> int:
    """``Retry-After`` holds whole seconds: round up (a client retrying early is refused again), at least 1."""
    return max(1, math.ceil(wait - 1e-9))


# --- keys ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _KnownKey:
    """A key of the database as a process caches it."""

    principal: Principal
    expires_at: datetime | None
    rate_per_second: float | None
    rate_burst: int | None


class KeyStore:
    """Resolves bearer keys, caching database look-ups for ``ttl`` seconds (a revoked key stops within it),
    limits each key's requests to this process and records their last use in the background.

    Settings not given come from the environment (``ApiKeySettings``: every process's settings).
    Call ``close()`` before closing the pool: it ends the last-used writes still in flight.
    """

    # What one process remembers, each bounded, the least recently used forgotten first.
    MAX_KNOWN_KEYS = 10_000  # keys found in the database
    # Digests found in no row, kept apart so that bogus keys (anyone can send them) never evict a real
    # one; each bogus key still costs its one look-up, as a key just made elsewhere must be found.
    MAX_UNKNOWN_KEYS = 1_000
    MAX_BUCKETS = 10_000
    MAX_LAST_USED_MARKS = 10_000  # when each key's last use was last written
    MAX_LAST_USED_WRITES = 100  # last-used writes in flight at once (one per key at most)
    LAST_USED_WRITE_SECONDS = 2.0

    def __init__(
        self,
        operator_key: str,
        pool: asyncpg.Pool | None,
        ttl: float | None = None,
        *,
        settings: ApiKeySettings | None = None,
        clock=time.monotonic,
    ) -> None:
        settings = settings or ApiKeySettings()
        self._operator_digest = key_digest(operator_key)
        self._pool = pool
        ttl = settings.api_key_cache_seconds if ttl is None else ttl
        self._rate, self._burst = settings.api_key_rate_per_second, settings.api_key_rate_burst
        self._last_used_interval = settings.api_key_last_used_interval_seconds
        self._clock = clock
        # A ttl of 0 caches nothing: an entry is served only before its expiry, which is its making.
        self._known_keys: TTLCache[str, _KnownKey] = TTLCache(self.MAX_KNOWN_KEYS, ttl, timer=clock)
        self._unknown_keys: TTLCache[str, bool] = TTLCache(self.MAX_UNKNOWN_KEYS, ttl, timer=clock)
        # A bucket forgotten while not full comes back full: a key among more than MAX_BUCKETS keys in
        # use at once may get up to one burst more than its rate. Lenient, never wrong the other way.
        self._buckets: LRUCache[str, TokenBucket] = LRUCache(self.MAX_BUCKETS)
        # A mark forgotten costs that one key one more write, not every key's at once.
        self._last_used_marks: LRUCache[str, float] = LRUCache(self.MAX_LAST_USED_MARKS)
        self._last_used_writes: dict[str, asyncio.Task[None]] = {}
        self._last_used_failing = False  # log a failure once, not once per key while the database is away
        self._closed = False

    async def _known(self, digest: str) -> _KnownKey | None:
        if (known := self._known_keys.get(digest)) is not None:
            return known
        if digest in self._unknown_keys:
            return None
        assert self._pool is not None
        row = await self._pool.fetchrow(
            f"SELECT {DB_KEY_COLUMNS} FROM auth.api_keys WHERE key_digest = $1 AND revoked_at IS NULL", digest)
        if row is None:
            self._unknown_keys[digest] = True
            return None
        known = self._known_keys[digest] = _KnownKey(
            Principal(user_id=row["user_id"], role=Role(row["role"]), tenant_id=row["tenant_id"],
                      key_id=str(row["key_id"])),
            row["expires_at"], row["rate_per_second"], row["rate_burst"])
        return known

    async def principal(self, key: str) -> Principal | None:
        """Whose key this is; None if unknown, revoked or expired. No rate limit, no last-used time."""
        digest = key_digest(key)
        if hmac.compare_digest(digest, self._operator_digest):
            return Principal(user_id="operator", role=Role.admin_agent, tenant_id=None, key_id=OPERATOR_KEY_ID)
        if self._pool is None:
            return None
        known = await self._known(digest)
        if known is None or (known.expires_at is not None and known.expires_at <= datetime.now(UTC)):
            return None
        return known.principal

    async def authenticate(self, authorization: str | None) -> Principal:
        """The caller of one request: 401 without a valid key, 429 (``Retry-After``) over the key's rate."""
        if not authorization or not authorization.lower().startswith("bearer "):
            raise Problem(401, "Unauthorized", "send Authorization: Bearer <key>",
                          headers={"WWW-Authenticate": "Bearer"})
        digest = key_digest(authorization[7:].strip())
        if hmac.compare_digest(digest, self._operator_digest):
            # The deployment's own key: not limited (it is not handed to tenants).
            return Principal(user_id="operator", role=Role.admin_agent, tenant_id=None, key_id=OPERATOR_KEY_ID)
        known = None if self._pool is None else await self._known(digest)
        if known is None:
            raise Problem(401, "Unauthorized", "unknown or revoked key", headers={"WWW-Authenticate": "Bearer"})
        if known.expires_at is not None and known.expires_at <= datetime.now(UTC):
            raise Problem(401, "Unauthorized", f"expired key (since {format_utc(known.expires_at)})",
                          headers={"WWW-Authenticate": "Bearer"})
        self._limit(known)
        self._note_use(known.principal.key_id)
        return known.principal

    def _limit(self, known: _KnownKey) -> None:
        key_id = known.principal.key_id
        assert key_id is not None
        bucket = self._buckets.get(key_id)
        if bucket is None:
            bucket = self._buckets[key_id] = TokenBucket(
                known.rate_per_second or self._rate, known.rate_burst or self._burst)
        wait = bucket.take(self._clock())
        if wait > 0:
            retry = retry_after_seconds(wait)
            raise Problem(429, "Too many requests",
                          f"key {key_id} exceeds its rate of {bucket.rate:g} requests per second (burst "
                          f"{bucket.burst}) on this server; retry after {retry} s",
                          headers={"Retry-After": str(retry)})

    def _note_use(self, key_id: str | None) -> None:
        """Record the key's last use, at most once per interval per key in this process (not per request),
        in the background: a slow database delays no request for it (the time is informative)."""
        if key_id is None or self._pool is None or self._closed:
            return
        now = self._clock()
        written = self._last_used_marks.get(key_id)
        if written is not None and now - written < self._last_used_interval:
            return
        if key_id in self._last_used_writes or len(self._last_used_writes) >= self.MAX_LAST_USED_WRITES:
            return  # not marked: a later request writes it
        self._last_used_marks[key_id] = now
        task = asyncio.create_task(self._write_last_use(key_id), name=f"key-last-used-{key_id}")
        self._last_used_writes[key_id] = task
        task.add_done_callback(lambda _: self._last_used_writes.pop(key_id, None))

    async def _write_last_use(self, key_id: str) -> None:
        assert self._pool is not None
        try:
            async with asyncio.timeout(self.LAST_USED_WRITE_SECONDS):
                await self._pool.execute(
                    "UPDATE auth.api_keys SET last_used_at = greatest(last_used_at, now()) WHERE key_id = $1",
                    uuid.UUID(key_id))
        except Exception as exc:  # a background task's: nobody else would see it
            if not self._last_used_failing:
                log.warning("last use of key %s not recorded: %s: %s (further failures are not logged until "
                            "a write succeeds)", key_id, type(exc).__name__, exc,
                            exc_info=not isinstance(exc, OSError | TimeoutError | asyncpg.PostgresError
                                                    | asyncpg.InterfaceError))
            self._last_used_failing = True
            return
        if self._last_used_failing:
            self._last_used_failing = False
            log.info("last uses of keys are recorded again")

    async def close(self, grace_seconds: float = 1.0) -> None:
        """Write no more last-used times; those in flight get ``grace_seconds`` to finish, then are cancelled.
        Call before closing the pool."""
        self._closed = True
        writes = list(self._last_used_writes.values())
        if not writes:
            return
        _, unfinished = await asyncio.wait(writes, timeout=grace_seconds)
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*writes, return_exceptions=True)

    def forget(self, digest: str) -> None:
        """Drop a key from this process's cache (it was revoked here: it stops at once)."""
        self._known_keys.pop(digest, None)


def authorize(principal: Principal, permission: Permission, tenant_id: str) -> Principal:
    if not principal.can(permission, tenant_id):
        raise Problem(403, "Forbidden", f"role {principal.role.value} of "
                      f"{'every tenant' if principal.tenant_id is None else 'tenant ' + principal.tenant_id} "
                      f"may not {permission.value} for tenant {tenant_id}")
    return principal


def authorize_operator(principal: Principal, what: str) -> Principal:
    """403 unless the caller is an operator (adminAgent of every tenant)."""
    if not principal.is_operator:
        raise Problem(403, "Forbidden", f"only an operator key (adminAgent of every tenant) may {what}; "
                      f"this key is {principal.role.value} of "
                      f"{'every tenant' if principal.tenant_id is None else 'tenant ' + principal.tenant_id}")
    return principal


# --- audit -----------------------------------------------------------------------------------------


class AuditAction(StrEnum):
    security_contact_set = "security-contact-set"
    security_contact_cleared = "security-contact-cleared"
    channel_created = "channel-created"
    channel_replaced = "channel-replaced"
    channel_deleted = "channel-deleted"
    key_created = "key-created"
    key_revoked = "key-revoked"
    webhook_secret_added = "webhook-secret-added"
    webhook_secret_revoked = "webhook-secret-revoked"
    graph_connection_created = "graph-connection-created"
    graph_connection_replaced = "graph-connection-replaced"
    graph_connection_deleted = "graph-connection-deleted"
    escalation_chain_set = "escalation-chain-set"
    escalation_chain_cleared = "escalation-chain-cleared"
    # In the deployment's log (tenant null, target tenants/{tenantId}): the tenant's own log goes with it.
    tenant_offboarded = "tenant-offboarded"


@dataclass(frozen=True)
class AuditActor:
    """Who made a change (a user id) and with which key (its id, ``operator`` or ``cli``)."""

    user_id: str
    key_id: str

    @classmethod
    def of(cls, principal: Principal) -> AuditActor:
        return cls(principal.user_id, principal.key_id or OPERATOR_KEY_ID)

    @classmethod
    def cli(cls, user_id: str | None = None) -> AuditActor:
        """A command-line tool run by ``user_id`` (default: the operating-system user)."""
        return cls(user_id or _os_user(), CLI_KEY_ID)


# Changes made by code that did not say who (test set-up, scripts): still recorded.
UNATTRIBUTED = AuditActor("unknown", "internal")


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return f"uid-{os.getuid()}"


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_utc(value)
    if isinstance(value, uuid.UUID | StrEnum):
        return str(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


async def record_audit(
    conn: asyncpg.Connection,
    *,
    tenant_id: str | None,
    actor: AuditActor,
    action: AuditAction,
    target: str,
    changes: dict[str, Any],
    occurred_at: datetime | None = None,
) -> None:
    """One audit entry, in ``conn``'s transaction (the change's own). ``changes`` summarises the change
    and must never hold a secret. ``tenant_id`` None: a change of the deployment (a key of every tenant)."""
    await conn.execute(
        """INSERT INTO auth.audit_log (tenant_id, occurred_at, user_id, key_id, action, target, changes)
           VALUES ($1, coalesce($2, clock_timestamp()), $3, $4, $5, $6, $7::jsonb)""",
        tenant_id, occurred_at, actor.user_id, actor.key_id, action.value, target,
        json.dumps(changes, default=_json_value),
    )


# --- managing keys (the write API's /v1/keys and the CLI) -------------------------------------------

Database = asyncpg.Pool | asyncpg.Connection


@asynccontextmanager
async def _transaction(db: Database) -> AsyncIterator[asyncpg.Connection]:
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn, conn.transaction():
            yield conn
    else:
        async with db.transaction():
            yield db


def _key_summary(row: asyncpg.Record) -> dict[str, Any]:
    return {"role": row["role"], "userId": row["user_id"], "expiresDateTime": row["expires_at"],
            "ratePerSecond": row["rate_per_second"], "rateBurst": row["rate_burst"]}


async def add_key(
    db: Database,
    tenant_id: str | None,
    role: Role,
    user_id: str,
    *,
    actor: AuditActor,
    expires_at: datetime | None = None,
    rate_per_second: float | None = None,
    rate_burst: int | None = None,
) -> tuple[str, asyncpg.Record]:
    """A new key (returned once: only its digest is kept) and its row, audited as made by ``actor``."""
    key = "csp_" + secrets.token_urlsafe(32)
    async with _transaction(db) as conn:
        row = await conn.fetchrow(
            f"""INSERT INTO auth.api_keys (key_digest, tenant_id, role, user_id, created_by, expires_at,
                                      rate_per_second, rate_burst)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {DB_KEY_COLUMNS}""",
            key_digest(key), tenant_id, role.value, user_id, actor.user_id, expires_at, rate_per_second,
            rate_burst)
        await record_audit(conn, tenant_id=tenant_id, actor=actor, action=AuditAction.key_created,
                           target=f"keys/{row['key_id']}", changes=_key_summary(row))
    return key, row


KeyPosition = tuple[datetime, uuid.UUID]


async def list_keys(
    db: Database,
    *,
    tenant_id: str | None = None,
    include_revoked: bool = False,
    limit: int = 100,
    after: KeyPosition | None = None,
) -> list[asyncpg.Record]:
    """Keys newest first (of one tenant if given), from after position ``after`` (created, key id)."""
    return await db.fetch(
        f"""SELECT {DB_KEY_COLUMNS} FROM auth.api_keys
            WHERE ($1::text IS NULL OR tenant_id = $1) AND ($2 OR revoked_at IS NULL)
              AND ($3::timestamptz IS NULL OR (created_at, key_id) < ($3, $4::uuid))
            ORDER BY created_at DESC, key_id DESC LIMIT $5""",
        tenant_id, include_revoked, after[0] if after else None, after[1] if after else None, limit)


async def get_key(db: Database, key_id: uuid.UUID) -> asyncpg.Record | None:
    return await db.fetchrow(f"SELECT {DB_KEY_COLUMNS} FROM auth.api_keys WHERE key_id = $1", key_id)


@dataclass(frozen=True)
class Revocation:
    row: asyncpg.Record | None  # None: no such key
    revoked_now: bool  # False: it was revoked already (nothing changed, nothing audited)
    digest: str | None


async def revoke_key(db: Database, key_id: uuid.UUID, *, actor: AuditActor) -> Revocation:
    """Revoke a key, audited as done by ``actor``; revoking a revoked key changes nothing."""
    async with _transaction(db) as conn:
        row = await conn.fetchrow(
            f"""UPDATE auth.api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL
                RETURNING key_digest, {DB_KEY_COLUMNS}""", key_id)
        if row is None:
            return Revocation(await get_key(conn, key_id), False, None)
        await record_audit(conn, tenant_id=row["tenant_id"], actor=actor, action=AuditAction.key_revoked,
                           target=f"keys/{key_id}", changes={"role": row["role"], "userId": row["user_id"]})
    return Revocation(row, True, row["key_digest"])


def key_position_token(row: asyncpg.Record) -> str:
    """The opaque position after ``row`` in ``list_keys``' order (a ``skiptoken``)."""
    position = json.dumps([row["created_at"].isoformat(), str(row["key_id"])]).encode()
    return base64.urlsafe_b64encode(position).decode().rstrip("=")


def key_position(token: str) -> KeyPosition:
    """The position a ``skiptoken`` names; 422 naming the parameter if it is not one of ours."""
    try:
        created, key_id = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        created = datetime.fromisoformat(created)
        if created.tzinfo is None:
            raise ValueError("not a position")
        position = created.astimezone(UTC), uuid.UUID(key_id)
    except (ValueError, TypeError, AttributeError, OverflowError, UnicodeDecodeError, binascii.Error):
        raise Problem(422, "Invalid request", "skiptoken: not a token of this API; follow @odata.nextLink",
                      errors=[{"field": "query.skiptoken", "message": "not a token of this API"}]) from None
    return position


async def create_key(
    dsn: str,
    tenant_id: str | None,
    role: Role,
    user_id: str,
    *,
    actor: AuditActor | None = None,
    expires_at: datetime | None = None,
    rate_per_second: float | None = None,
    rate_burst: int | None = None,
) -> str:
    """Make a key in the database at ``dsn`` and return it (shown once); audited as the CLI's by default."""
    conn = await asyncpg.connect(dsn)
    try:
        key, _ = await add_key(conn, tenant_id, role, user_id, actor=actor or AuditActor.cli(),
                               expires_at=expires_at, rate_per_second=rate_per_second, rate_burst=rate_burst)
    finally:
        await conn.close()
    return key


# --- command line ----------------------------------------------------------------------------------


def _cli_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date-time: {value!r}") from None
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if parsed <= datetime.now(UTC):
        raise argparse.ArgumentTypeError(f"{value} is not in the future")
    return parsed


def _cli_key_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a key id: {value!r}") from None


def _show(value: datetime | None) -> str:
    return "-" if value is None else format_utc(value.replace(microsecond=0))


async def _cli_create(dsn: str, args: argparse.Namespace) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        key, row = await add_key(conn, args.tenant, Role(args.role), args.user, actor=AuditActor.cli(args.actor),
                                 expires_at=args.expires, rate_per_second=args.rate_per_second,
                                 rate_burst=args.rate_burst)
    finally:
        await conn.close()
    print(f"key id: {row['key_id']}", file=sys.stderr)
    print(key)  # alone on stdout, so `KEY=$(python -m shared.auth create-key ...)` works


async def _cli_list(dsn: str, tenant_id: str | None, include_revoked: bool) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await list_keys(conn, tenant_id=tenant_id, include_revoked=include_revoked, limit=100_000)
    finally:
        await conn.close()
    print(f"{'KEY ID':36}  {'TENANT':24}  {'ROLE':21}  {'USER':28}  {'CREATED':20}  {'EXPIRES':20}  "
          f"{'LAST USED':20}  REVOKED")
    for r in rows:
        print(f"{str(r['key_id']):36}  {r['tenant_id'] or '(every tenant)':24}  {r['role']:21}  "
              f"{r['user_id']:28}  {_show(r['created_at']):20}  {_show(r['expires_at']):20}  "
              f"{_show(r['last_used_at']):20}  {_show(r['revoked_at'])}")


async def _cli_revoke(dsn: str, key_id: uuid.UUID, actor: AuditActor) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        done = await revoke_key(conn, key_id, actor=actor)
    finally:
        await conn.close()
    if done.row is None:
        print(f"no key {key_id}", file=sys.stderr)
        return 1
    print(f"revoked {key_id}" if done.revoked_now else f"{key_id} already revoked")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m shared.auth",
        description="Manage API keys (DATABASE_URL). Each change is audited as made by --actor with key id "
        "'cli'. A revoked key stops within API_KEY_CACHE_SECONDS in every running process.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create-key", help="create a key and print it (shown once; its id goes to stderr)")
    create.add_argument("--tenant", help="the tenant it belongs to; omit for every tenant")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--user", required=True, help="the user the key acts as (the actor of its changes)")
    create.add_argument("--expires", type=_cli_time, help="ISO 8601 date-time after which the key is refused")
    create.add_argument("--rate-per-second", type=float, help="its own rate limit (default API_KEY_RATE_PER_SECOND)")
    create.add_argument("--rate-burst", type=int, help="its own burst (default API_KEY_RATE_BURST)")
    listing = sub.add_parser("list-keys", help="list keys newest first (never the keys themselves)")
    listing.add_argument("--tenant", help="only this tenant's keys")
    listing.add_argument("--include-revoked", action="store_true")
    revoke = sub.add_parser("revoke-key", help="revoke a key by its id")
    revoke.add_argument("key_id", type=_cli_key_id)
    for command in (create, revoke):
        command.add_argument("--actor", help="who is making the change, for the audit log (default: OS user)")
    args = parser.parse_args()
    dsn = os.environ.get("DATABASE_URL", "postgresql://csp:csp@127.0.0.1:5432/csp_triage")
    if args.command == "list-keys":
        asyncio.run(_cli_list(dsn, args.tenant, args.include_revoked))
    elif args.command == "revoke-key":
        raise SystemExit(asyncio.run(_cli_revoke(dsn, args.key_id, AuditActor.cli(args.actor))))
    else:
        if (args.rate_per_second is not None and args.rate_per_second < MIN_RATE_PER_SECOND) or (
                args.rate_burst is not None and args.rate_burst < 1):
            parser.error(f"--rate-per-second must be >= {MIN_RATE_PER_SECOND} and --rate-burst >= 1")
        asyncio.run(_cli_create(dsn, args))


if __name__ == "__main__":
    main()
