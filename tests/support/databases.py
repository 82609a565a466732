"""Databases of a test run (or of one test) on the real PostgreSQL server: made, migrated, dropped."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from shared.db import apply_migrations


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` on the same server."""
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@asynccontextmanager
async def empty_database(server_url: str, name: str) -> AsyncIterator[str]:
    """Creates database ``name`` next to ``server_url``'s, with nothing in it, yields its URL, and drops
    it (even with connections still open) at the end."""
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield with_database(server_url, name)
    finally:
        admin = await asyncpg.connect(server_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@asynccontextmanager
async def migrated_database(server_url: str, name: str) -> AsyncIterator[str]:
    """Like ``empty_database``, with every migration applied."""
    async with empty_database(server_url, name) as url:
        await apply_migrations(url)
        yield url
