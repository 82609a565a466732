"""Fixtures of the write API's tests."""

from __future__ import annotations

import asyncpg
import pytest_asyncio


@pytest_asyncio.fixture(scope="session")
async def db_pool(schema_pool) -> asyncpg.Pool:
    """The session database as the write API's pool sees it: the ingest schema alone (the key store's
    tables only by their qualified names, ``auth.api_keys``)."""
    return await schema_pool("ingest")
