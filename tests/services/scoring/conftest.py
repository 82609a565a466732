"""Fixtures of the scoring tests: a scoring process of their own, and how to feed it events (status
events, and the events of the read model's topics)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio

from shared.db import create_pool
from shared.events import EVENT_TYPE_HEADER, Event, Topic
from shared.kafka import event_headers
from tests.conftest import AUTH, RUN_ID
from tests.support.databases import migrated_database
from tests.support.kafka import produce
from tests.support.polling import eventually
from tests.support.processes import ServiceProcess

# A Redis database no other test run uses, so the flush tests may FLUSHDB it.
FLUSHABLE_REDIS_DB = 13


def scoring_topic_prefix() -> str:
    """The topics of the scoring tests alone (the run's prefix, set by ``test_env``, + ``scoring-``)."""
    return f"{os.environ['KAFKA_TOPIC_PREFIX']}scoring-"


# Set by ``scoring_database`` for ``isolated_env``.
_DATABASE_URL_VARIABLE = "SCORING_TESTS_DATABASE_URL"


@pytest_asyncio.fixture(scope="session")
async def scoring_database(test_env: dict[str, str]) -> AsyncIterator[str]:
    """A database of the scoring tests alone. With topics of their own (``topic_prefix``), the scoring
    processes of these tests share nothing with the ``system`` fixture's services: on the run's topics
    its notifier and write API would add deliveries and sync states to these tests' alerts, and in the
    session database its read API would relay these processes' outbox to the run's topics."""
    async with migrated_database(test_env["DATABASE_URL"], f"csp_test_{RUN_ID}_scoring") as url:
        os.environ[_DATABASE_URL_VARIABLE] = url
        yield url
        os.environ.pop(_DATABASE_URL_VARIABLE, None)


@pytest.fixture(scope="session")
def topic_prefix(test_env: dict[str, str], scoring_database: str) -> str:
    """Overrides the run's: the scoring tests' own topics (``scoring_topic_prefix``), created here (and
    their own database, which every scoring process of these tests uses)."""
    prefix = scoring_topic_prefix()
    subprocess.run(
        [sys.executable, "-m", "shared.kafka", "ensure-topics",
         "--bootstrap-servers", test_env["KAFKA_BOOTSTRAP_SERVERS"], "--prefix", prefix],
        check=True, capture_output=True,
    )
    return prefix


def isolated_env(**extra: str) -> dict[str, str]:
    """A consumer group and Redis key prefix of its own, on the scoring tests' topics and database: the
    process sees every event of these tests and only its own keys. (Its tests ask for ``topic_prefix``,
    which makes both.)"""
    name = uuid.uuid4().hex[:8]
    return {"CONSUMER_GROUP": f"scoring-test-{name}", "REDIS_KEY_PREFIX": f"scoring-test-{name}:",
            "KAFKA_TOPIC_PREFIX": scoring_topic_prefix(), "DATABASE_URL": os.environ[_DATABASE_URL_VARIABLE],
            **extra}


@pytest_asyncio.fixture(scope="session")
async def scoring(make_service, redis_client, topic_prefix) -> AsyncIterator[ServiceProcess]:
    process = make_service("scoring", **isolated_env())
    await asyncio.to_thread(process.start)
    yield process
    await asyncio.to_thread(process.stop)
    prefix = process.env["REDIS_KEY_PREFIX"]
    async for key in redis_client.scan_iter(match=f"{prefix}*", count=500):
        await redis_client.delete(key)


def status_event(
    tenant_id: str, requirement_type: str, compliance_status: str, observed: datetime | str, **extra: Any
) -> dict[str, Any]:
    """A requirement-status event as it travels on the wire (camelCase JSON)."""
    return {
        "eventId": str(uuid.uuid4()),
        "eventType": "requirement-status-observed",
        "schemaVersion": 1,
        "occurredDateTime": "2026-11-27T00:00:00Z",
        "tenantId": tenant_id,
        "requirementType": requirement_type,
        "complianceStatus": compliance_status,
        "observedDateTime": observed if isinstance(observed, str) else observed.isoformat(),
        "source": "test",
        "insights": {},
        **extra,
    }


@pytest.fixture
def send_status(kafka_bootstrap, topic_prefix) -> Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]:
    import json

    async def send(event: dict[str, Any]) -> dict[str, Any]:
        await produce(
            kafka_bootstrap,
            f"{topic_prefix}requirement-status",
            json.dumps(event).encode(),
            key=f"{event['tenantId']}:{event['requirementType']}".encode(),
            headers={
                EVENT_TYPE_HEADER: event["eventType"],
                "eventId": event["eventId"],
                "tenantId": event["tenantId"],
            },
        )
        return event

    return send


@pytest_asyncio.fixture(scope="session")
async def db_pool(scoring_database: str) -> AsyncIterator[asyncpg.Pool]:
    """The scoring tests' database as the scoring service's pool sees it: the scoring schema alone (where
    the ``scoring`` process of these tests keeps its statuses, read model and ledger)."""
    pool = await create_pool(scoring_database, schema="scoring")
    yield pool
    await pool.close()


@pytest_asyncio.fixture
async def scoring_pool(own_database) -> AsyncIterator[asyncpg.Pool]:
    """A pool on ``own_database`` seeing the scoring schema alone, as the service's own pool does (no
    scoring process runs on that database, so no relay takes its outbox rows away)."""
    pool = await create_pool(own_database, schema="scoring")
    yield pool
    await pool.close()


@pytest.fixture
def send_event(kafka_bootstrap, topic_prefix) -> Callable[[Topic, Event], Awaitable[Event]]:
    """Publish ``event`` to ``topic`` as its owner does: its JSON, its key, its ``eventType`` header."""

    async def send(topic: Topic, event: Event) -> Event:
        await produce(kafka_bootstrap, f"{topic_prefix}{topic.value}", event.model_dump_json().encode(),
                      key=event.kafka_key(), headers=event_headers(event))
        return event

    return send


async def read_api(process: ServiceProcess, tenant_id: str, path: str = "") -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.get(f"{process.url}/v1/tenants/{tenant_id}/security-score{path}", headers=AUTH)


async def score_of(process: ServiceProcess, tenant_id: str) -> dict[str, Any] | None:
    response = await read_api(process, tenant_id)
    return response.json() if response.status_code == 200 else None


async def wait_for_score(
    process: ServiceProcess, tenant_id: str, current: float, **others: Any
) -> dict[str, Any]:
    def reached(score: dict[str, Any] | None) -> bool:
        return (
            score is not None
            and score["currentScore"] == current
            and all(score[k] == v for k, v in others.items())
        )

    return await eventually(lambda: score_of(process, tenant_id), reached, within=30)


async def event_applied(db_pool, event: dict[str, Any]) -> None:
    """Wait until a scoring consumer has applied (or dropped as stale) ``event``."""
    await eventually(
        lambda: db_pool.fetchval(
            "SELECT count(*) FROM processed_events WHERE consumer = 'scoring' AND event_id = $1",
            uuid.UUID(event["eventId"]),
        ),
        lambda n: n == 1,
        within=30,
    )


async def read_model_applied(db_pool, event: Event) -> None:
    """Wait until the read model's consumer has taken ``event`` (applied it, or kept a newer state)."""
    await eventually(
        lambda: db_pool.fetchval(
            "SELECT count(*) FROM processed_events WHERE consumer = 'scoring-read-model' AND event_id = $1",
            event.event_id,
        ),
        lambda n: n == 1,
        within=30,
    )
