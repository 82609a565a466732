"""The one set of fixtures every test shares.

Unit tests use none of the infrastructure fixtures and run anywhere. A test that uses ``test_env``
(directly or through another fixture) is marked ``integration`` and runs against the real Kafka,
PostgreSQL and Redis (see ``support/infra.py``), in a database and topics of its own test run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from aiokafka.admin import AIOKafkaAdminClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from redis.asyncio import Redis

from shared import tracing
from shared.db import COMPONENTS, create_pool
from shared.kafka import ensure_topics
from tests.support.databases import migrated_database, with_database
from tests.support.graph_emulator import GraphEmulator, run_graph_emulator
from tests.support.infra import Infra, find_infra, stop_containers
from tests.support.peers import Receiver, Smtp, run_receiver, run_smtp_server
from tests.support.processes import ServiceProcess

RUN_ID = uuid.uuid4().hex[:8]
# With pytest-xdist (`make test` runs two workers), each worker is a run of its own (RUN_ID: its own
# database and topics) and gets a Redis database of its own: the read API's Redis holds keys of no one
# tenant (its cache marker), which two runs must not share. (13 is the scoring tests' flushable one.)
WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
REDIS_DATABASES = ("15", "14")
INFRA_FIXTURES = {"infra", "test_env"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if INFRA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    found = find_infra()  # raises, never skips, when a service is missing
    yield found
    stop_containers()


@pytest_asyncio.fixture(scope="session")
async def test_env(infra: Infra) -> AsyncIterator[dict[str, str]]:
    """Environment of this test run: its own database, topic prefix and Redis database.

    Also applied to ``os.environ``, so settings built in-process see the same values as the
    service processes the end-to-end tests start.
    """
    async with migrated_database(infra.database_url, f"csp_test_{RUN_ID}") as database_url:
        prefix = f"test-{RUN_ID}-"
        await ensure_topics(infra.kafka_bootstrap_servers, prefix)
        env = {
            "ENVIRONMENT": "development",
            "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap_servers,
            "DATABASE_URL": database_url,
            "REDIS_URL": with_database(infra.redis_url,
                                       os.environ.get("TEST_REDIS_DB", REDIS_DATABASES[WORKER % len(REDIS_DATABASES)])),
            "KAFKA_TOPIC_PREFIX": prefix,
            # The tests' HTTP receivers listen on 127.0.0.1 (test_egress.py tests the guard itself).
            "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",
            # Only the write API of the `system` fixture polls Graph (the session's emulator); other
            # write API processes of a run leave its connections alone.
            "GRAPH_SYNC_ENABLED": "false",
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        yield {**os.environ, **env}
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        await _delete_topics(infra.kafka_bootstrap_servers, prefix)


async def _delete_topics(bootstrap: str, prefix: str) -> None:
    """Every topic of this run (its prefix starts every test topic's name), so a developer's
    broker does not collect thousands of partitions over many runs."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        ours = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if ours:
            await admin.delete_topics(ours)
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def topic_prefix(test_env: dict[str, str]) -> str:
    return test_env["KAFKA_TOPIC_PREFIX"]


@pytest.fixture(scope="session")
def kafka_bootstrap(test_env: dict[str, str]) -> str:
    return test_env["KAFKA_BOOTSTRAP_SERVERS"]


@pytest_asyncio.fixture(scope="session")
async def schema_pool(test_env: dict[str, str]) -> AsyncIterator[Callable[[str], Awaitable[asyncpg.Pool]]]:
    """``await schema_pool("ingest")``: a pool on the session database that sees that one schema, as the
    service's own pool does (its tables unqualified; another component's only by its qualified name).
    One pool per schema, shared by the session. A service's tests name theirs ``db_pool`` in their
    ``conftest.py``."""
    schemas = {component.schema for component in COMPONENTS}
    pools: dict[str, asyncpg.Pool] = {}

    async def pool_of(schema: str) -> asyncpg.Pool:
        if schema not in schemas:
            raise ValueError(f"no component owns a schema {schema!r}; known: {', '.join(sorted(schemas))}")
        if schema not in pools:
            pools[schema] = await create_pool(test_env["DATABASE_URL"], schema=schema)
        return pools[schema]

    yield pool_of
    for pool in pools.values():
        await pool.close()


@pytest_asyncio.fixture
async def own_database(test_env: dict[str, str]) -> AsyncIterator[str]:
    """URL of a migrated database of one test, dropped afterwards: for a service process whose tables
    no other process of the run may touch (the session's database is shared with the ``system``
    fixture's services, which would otherwise act on this test's rows too)."""
    _, _, current = test_env["DATABASE_URL"].rpartition("/")
    async with migrated_database(test_env["DATABASE_URL"], f"{current}_{uuid.uuid4().hex[:6]}") as url:
        yield url


@pytest_asyncio.fixture(scope="session")
async def redis_client(test_env: dict[str, str]) -> AsyncIterator[Redis]:
    # Never FLUSHDB here: other test runs may share this Redis database (tests use their own tenants).
    client = Redis.from_url(test_env["REDIS_URL"], decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
def tenant_id() -> str:
    """A tenant of this test alone, so tests never see each other's data."""
    return f"tenant-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def service_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("service-logs")


@pytest.fixture(scope="session")
def make_service(test_env: dict[str, str], service_logs: Path):
    """Factory of service processes with this test run's environment; stopped at the end."""
    started: list[ServiceProcess] = []

    def make(name: str, **extra_env: str) -> ServiceProcess:
        process = ServiceProcess(name, {**test_env, **extra_env}, service_logs)
        started.append(process)
        return process

    yield make
    for process in started:
        process.stop()


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[Smtp]:
    """A real SMTP server (aiosmtpd) on a free port, keeping every message it accepts."""
    yield from run_smtp_server()


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    """A real HTTP receiver (a ticketing system) on a free port, scriptable per path."""
    yield from run_receiver()


@pytest.fixture(scope="session")
def system_mail() -> Iterator[Smtp]:
    """The SMTP server of the ``system`` fixture's notifier: a server of its own, because that
    notifier also sees the events other tests publish on the run's topics."""
    yield from run_smtp_server()


@pytest.fixture(scope="session")
def graph_emulator() -> Iterator[GraphEmulator]:
    """The Microsoft identity platform and Graph's partner security alerts, emulated by a real HTTP
    server on a free port (``support/graph_emulator.py``); every test uses directories of its own."""
    yield from run_graph_emulator()


@pytest.fixture(scope="session")
def system(make_service, system_mail: Smtp, graph_emulator: GraphEmulator) -> dict[str, ServiceProcess]:
    """All four services running as processes (shared by the end-to-end tests of a run). The notifier
    sends its mail to ``system_mail``, with one-click links to this write API; the write API polls
    Partner Center at ``graph_emulator`` every second and writes responses back there; a storm's
    digest goes out 5 s after its first alert."""
    env = {
        # A storm's digest goes out 5 s after it opened (60 s by default): the end-to-end test of
        # storms waits for it.
        "notifier": {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(system_mail.port), "STORM_DIGEST_WAIT_SECONDS": "5"},
        "ingest": {"GRAPH_SYNC_ENABLED": "true", "GRAPH_BASE_URL": graph_emulator.base_url,
                   "GRAPH_LOGIN_BASE_URL": graph_emulator.base_url, "GRAPH_POLL_INTERVAL": "1",
                   "GRAPH_WRITEBACK_MAX_BACKOFF_SECONDS": "2"},
    }
    processes = {"response-time": make_service("response-time")}
    # The dashboard (read API) writes to this write API from the browser, which must name its origin.
    processes["scoring"] = make_service("scoring")
    processes["ingest"] = make_service("ingest", **env["ingest"], DASHBOARD_ORIGINS=processes["scoring"].url)
    processes["scoring"].env["WRITE_API_PUBLIC_URL"] = processes["ingest"].url
    # The notifier signs one-click links for the write API as people reach it: this run's.
    processes["notifier"] = make_service("notifier", **env["notifier"], WRITE_API_PUBLIC_URL=processes["ingest"].url)
    for process in processes.values():
        process.start(wait=False)
    for process in processes.values():
        process.wait_ready()
    return processes


OPERATOR_KEY = "dev-admin-key"  # the development operator key the test services run with
AUTH = {"Authorization": f"Bearer {OPERATOR_KEY}"}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on for this test (shared.tracing, #16): every finished span in memory; off again afterwards."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    previous = tracing.use_provider(provider)
    yield exporter
    tracing.use_provider(previous)
    provider.shutdown()
