"""Fixtures of the notifier's integration tests: a real SMTP server, a real HTTP receiver, and a
database of their own (so a notifier started by another test of the run never takes these rows)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from shared.db import create_pool
from shared.events import Event, Topic
from tests.conftest import RUN_ID
from tests.support.databases import migrated_database
from tests.support.kafka import produce
from tests.support.peers import Smtp
from tests.support.processes import ServiceProcess

# --- topics and a database of the notifier tests' own ----------------------------------------------


@pytest.fixture(scope="session")
def topic_prefix(test_env: dict[str, str]) -> str:
    """Topics of the notifier tests alone (overrides the run's): channels and contacts now reach every
    notifier from compacted topics, so on the run's topics the ``system`` fixture's notifier would
    deliver these tests' alerts too, and their write and read APIs would share consumer groups with
    the system's (each getting half the partitions)."""
    prefix = f"{test_env['KAFKA_TOPIC_PREFIX']}notifier-"
    subprocess.run(
        [sys.executable, "-m", "shared.kafka", "ensure-topics",
         "--bootstrap-servers", test_env["KAFKA_BOOTSTRAP_SERVERS"], "--prefix", prefix],
        check=True, capture_output=True,
    )
    return prefix



@pytest_asyncio.fixture(scope="session")
async def notifier_db_url(test_env: dict[str, str]) -> AsyncIterator[str]:
    async with migrated_database(test_env["DATABASE_URL"], f"csp_test_{RUN_ID}_notifier") as url:
        yield url


@pytest_asyncio.fixture(scope="session")
async def notifier_pool(notifier_db_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the notifier's schema alone, as the notifier's own."""
    pool = await create_pool(notifier_db_url, schema="notifier")
    yield pool
    await pool.close()


# --- the notifier and events -------------------------------------------------------------------------

FAST = {
    "WORKER_POLL_SECONDS": "0.2",
    "RETRY_BASE_SECONDS": "0.2",
    "RETRY_MAX_SECONDS": "2",
    "MAX_ATTEMPTS": "3",
    "WEBHOOK_TIMEOUT_SECONDS": "4",
    "SMTP_TIMEOUT_SECONDS": "4",
    "DELIVERY_LEASE_SECONDS": "6",
    "PUBLIC_BASE_URL": "https://triage.example",
}


@pytest.fixture
def start_notifier(
    make_service, notifier_db_url: str, smtp_server: Smtp, topic_prefix: str
) -> Iterator[Callable[..., ServiceProcess]]:
    """Starts a notifier on the tests' database and SMTP server; settings override the fast defaults.

    Every notifier a test started is stopped when it ends: one left running would take the next
    test's deliveries from the shared tables.
    """
    group = f"notifier-test-{uuid.uuid4().hex[:8]}"
    started: list[ServiceProcess] = []

    def start(**settings: str) -> ServiceProcess:
        env = {
            **FAST,
            "DATABASE_URL": notifier_db_url,
            "KAFKA_TOPIC_PREFIX": topic_prefix,
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(smtp_server.port),
            "CONSUMER_GROUP": group,
            **settings,
        }
        started.append(make_service("notifier", **env))
        return started[-1].start()

    yield start
    for process in started:
        process.stop()


async def publish_event(bootstrap: str, prefix: str, topic: Topic, event: Event) -> None:
    """``event`` on ``topic`` of the topics named with ``prefix``, as its owner's outbox publishes it."""
    await produce(
        bootstrap,
        f"{prefix}{topic.value}",
        event.model_dump_json().encode(),
        key=event.kafka_key(),
        headers={"eventType": event.event_type, "eventId": str(event.event_id), "tenantId": event.tenant_id},
    )


@pytest.fixture
def publish(kafka_bootstrap: str, topic_prefix: str) -> Callable[[Topic, Event], Any]:
    async def send(topic: Topic, event: Event) -> None:
        await publish_event(kafka_bootstrap, topic_prefix, topic, event)

    return send
