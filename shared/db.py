"""PostgreSQL: the connection pool every service uses, and the versioned migrations.

Migrations are plain SQL files ``infra/migrations/NNNN_name.sql``, applied in order, each in its own
transaction, recorded in ``schema_migrations``; an advisory lock lets several processes start at
once. ``python -m shared.db migrate`` applies them (``make run`` and the tests do).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(os.environ.get("MIGRATIONS_DIR", Path(__file__).resolve().parent.parent / "infra" / "migrations"))
_MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 7_242_901  # any constant: one advisory lock for "migrating this database"


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    return await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, command_timeout=30)


def migration_files(directory: Path = MIGRATIONS_DIR) -> list[tuple[int, str, Path]]:
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


async def apply_migrations(dsn: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply every migration not applied yet; returns the names applied now."""
    conn = await asyncpg.connect(dsn)
    applied_now: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, name, path in migration_files(directory):
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(path.read_text())
                await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name)
            applied_now.append(f"{version:04d}_{name}")
            log.info("applied migration %04d_%s", version, name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
        await conn.close()
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
    while True:
        try:
            removed = await prune_processed_events(pool)
            if removed:
                log.info("pruned %d processed-event ids older than %d days", removed, PROCESSED_EVENTS_KEEP_DAYS)
        except Exception as exc:  # the database being away now is no reason to stop trying later
            log.warning("pruning processed events failed: %s", exc)
        await asyncio.sleep(every_seconds)
