"""Fixtures of the signal tests (routes of the write API)."""

from __future__ import annotations

import asyncpg
import pytest_asyncio


@pytest_asyncio.fixture(scope="session")
async def db_pool(schema_pool) -> asyncpg.Pool:
    """The session database as the write API's pool sees it: the ingest schema alone."""
    return await schema_pool("ingest")
