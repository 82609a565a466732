"""PostgreSQL: the connection pool every service uses, and the versioned migrations.

Each component owns a schema of its own in the one database (``auth``: the key store and audit log of
``shared/auth.py``; then one per service). Its migrations are plain SQL files ``NNNN_name.sql`` beside
its code (``shared/migrations/auth/``, ``services/<service>/migrations/``), applied component by
component in ``COMPONENTS`` order, each file in its own transaction with the component's schema as
its only ``search_path``, and recorded in ``<schema>.schema_migrations``; an advisory lock lets
several processes start at once. ``python -m shared.db migrate`` applies them (``make run`` and the
tests do). A service's pool (``create_pool(dsn, schema=...)``) sees only its own schema, so its SQL
stays unqualified and cannot name another component's table.

A database of the single-schema layout (every table in ``public``, one ledger
``public.schema_migrations``) is upgraded in place: each component first takes over the legacy
versions of its own files into its ledger, the legacy files it still lacks run against the tables
where they are, and its ``0070_own_schema`` moves its tables (with their rows) into its schema and
copies its consumer's entries of the shared ``public.processed_events``. Once every component is
done, that shared ledger is dropped and ``public.schema_migrations`` is kept, renamed
``schema_migrations_before_schemas``, as history.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

_ROOT = Path(__file__).resolve().parent.parent
_MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_LOCK_KEY = 7_242_901  # any constant: one advisory lock for "migrating this database"
# The version of every component's migration that moves its tables out of public (in-place upgrade);
# the versions below it are those of the single-schema layout.
OWN_SCHEMA_VERSION = 70
LEGACY_LEDGER = "public.schema_migrations"
LEGACY_LEDGER_KEPT_AS = "schema_migrations_before_schemas"


@dataclass(frozen=True)
class Component:
    """A part of the system that owns a schema: its name is the schema's, its migrations a directory."""

    schema: str
    migrations: Path

    def __post_init__(self) -> None:
        if not _SCHEMA_NAME.match(self.schema):  # it is written into SQL as an identifier
            raise ValueError(f"not a plain schema name: {self.schema!r}")


# Found by path, never by import: shared/ imports no service (import-linter checks it).
COMPONENTS: tuple[Component, ...] = (
    Component("auth", _ROOT / "shared" / "migrations" / "auth"),
    *(Component(service, _ROOT / "services" / service / "migrations")
      for service in ("ingest", "response_time", "scoring", "notifier")),
)


async def create_pool(dsn: str, *, schema: str, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose sessions see ``schema`` alone (their ``search_path``): a component's own tables.

    A connection given back is reset by asyncpg's own first step only (a transaction left open rolled
    back, listeners dropped), not by its reset query (``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL``), a round trip on every release, PostgreSQL's time too (#15). Nothing here leaves session
    state on a pooled connection: its advisory locks are all transaction-scoped (``*_xact_lock``), no
    cursor is held past its transaction, nothing is SET for a session; what takes a session lock or
    LISTENs (the migrations, the outbox relay) has a connection of its own.
    """
    session = {"search_path": schema, "application_name": application_name(schema)}
    return await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, command_timeout=30,
                                     server_settings=session, reset=_keep_session)


def application_name(schema: str, role: str = "") -> str:
    """What a session of ``schema``'s component tells PostgreSQL it is (``pg_stat_activity.application_name``,
    the server's logs with ``%a``): an operator sees which service holds a session, a lock or a slow query.
    ``role``: a connection of its own beside the pool (e.g. ``outbox-relay``)."""
    return f"csp-{schema.replace('_', '-')}" + (f" {role}" if role else "")


async def _keep_session(connection: asyncpg.Connection) -> None:
    """No reset query (see :func:`create_pool`)."""


def migration_files(directory: Path) -> list[tuple[int, str, Path]]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION_FILE.match(path.name)
        if not match:
            raise ValueError(f"migration file name not of the form NNNN_name.sql: {path.name}")
        found.append((int(match.group(1)), match.group(2), path))
    versions = [v for v, _, _ in found]
    if len(versions) != len(set(versions)):
        raise ValueError(f"two migrations share a version number in {directory}")
    return found


async def apply_migrations(dsn: str, components: tuple[Component, ...] = COMPONENTS) -> list[str]:
    """Apply every migration not applied yet, component by component; returns those applied now
    (``<schema>/NNNN_name``)."""
    conn = await asyncpg.connect(dsn)
    applied_now: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        upgrading = await conn.fetchval("SELECT to_regclass($1)", LEGACY_LEDGER) is not None
        if upgrading:
            log.info("upgrading the single-schema layout in place: a schema per component")
        for component in components:
            applied_now += await _apply_component(conn, component, upgrading)
        if upgrading:
            async with conn.transaction():
                await conn.execute("DROP TABLE IF EXISTS public.processed_events")
                await conn.execute(f"ALTER TABLE {LEGACY_LEDGER} RENAME TO {LEGACY_LEDGER_KEPT_AS}")
            log.info("single-schema layout upgraded; its ledger is kept as public.%s", LEGACY_LEDGER_KEPT_AS)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
        await conn.close()
    return applied_now


async def _apply_component(conn: asyncpg.Connection, component: Component, upgrading: bool) -> list[str]:
    schema = component.schema
    files = migration_files(component.migrations)
    await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    await conn.execute(
        f"""CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
               version integer PRIMARY KEY,
               name text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now())"""
    )
    if upgrading:
        # A legacy version applied in public is this component's file of that version already applied
        # (a file split by owner kept its version in each owner's directory).
        await conn.execute(
            f"""INSERT INTO {schema}.schema_migrations (version, name, applied_at)
                SELECT legacy.version, mine.name, legacy.applied_at
                FROM {LEGACY_LEDGER} legacy JOIN unnest($1::integer[], $2::text[]) AS mine (version, name)
                     USING (version)
                ON CONFLICT (version) DO NOTHING""",
            [v for v, _, _ in files], [n for _, n, _ in files])
    done = {row["version"] for row in await conn.fetch(f"SELECT version FROM {schema}.schema_migrations")}
    applied_now = []
    for version, name, path in files:
        if version in done:
            continue
        # While upgrading, a legacy file the old layout had not applied yet alters tables still in
        # public (its own 0070 moves them): it sees public after its schema, where it creates.
        search_path = f"{schema}, public" if upgrading and version < OWN_SCHEMA_VERSION else schema
        async with conn.transaction():
            await conn.execute(f"SET LOCAL search_path TO {search_path}")
            await conn.execute(path.read_text())
            await conn.execute(f"INSERT INTO {schema}.schema_migrations (version, name) VALUES ($1, $2)",
                               version, name)
        applied_now.append(f"{schema}/{version:04d}_{name}")
        log.info("applied migration %s/%04d_%s", schema, version, name)
    return applied_now


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m shared.db")
    parser.add_argument("command", choices=["migrate"])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL",
                        "postgresql://csp:csp@127.0.0.1:5432/csp_triage"))
    args = parser.parse_args()
    applied = asyncio.run(apply_migrations(args.database_url))
    detail = f" ({', '.join(applied)})" if applied else ", schema up to date"
    print(f"    migrations: {len(applied)} applied{detail}")


if __name__ == "__main__":
    main()


async def claim_event(conn: asyncpg.Connection, consumer: str, event_id) -> bool:
    """Record that ``consumer`` applies ``event_id``; False if it already did (drop the event).

    Call inside the transaction that applies the event, so the record and the effect commit together.
    """
    status = await conn.execute(
        "INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING", consumer, event_id)
    return status.endswith(" 1")


# A record can be redelivered only while Kafka still holds it: the alerts topic keeps 35 days
# (shared.kafka.TOPIC_SPECS), so older ledger entries can never be needed again.
PROCESSED_EVENTS_KEEP_DAYS = 35


async def prune_processed_events(pool: asyncpg.Pool, keep_days: int = PROCESSED_EVENTS_KEEP_DAYS) -> int:
    """Delete ledger entries older than ``keep_days``; returns how many went."""
    status = await pool.execute(
        "DELETE FROM processed_events WHERE processed_at < now() - make_interval(days => $1)", keep_days)
    return int(status.split()[-1])


async def prune_processed_events_forever(pool: asyncpg.Pool, every_seconds: float = 3600) -> None:
    """Background task of each consumer service: keeps the ledger from growing without bound."""
    await prune_forever(partial(prune_processed_events, pool), f"processed-event ids older than "
                        f"{PROCESSED_EVENTS_KEEP_DAYS} days", every_seconds)


async def prune_forever(prune: Callable[[], Awaitable[int]], what: str, every_seconds: float = 3600) -> None:
    """Run ``prune`` (it deletes some of ``what``, returning how many) every ``every_seconds``, again at
    once while it finds any (a prune may delete in bounded batches); a failure is logged, never fatal."""
    while True:
        try:
            while removed := await prune():
                log.info("pruned %d %s", removed, what)
        except Exception as exc:  # the database being away now is no reason to stop trying later
            log.warning("pruning %s failed: %s", what, exc)
        await asyncio.sleep(every_seconds)
