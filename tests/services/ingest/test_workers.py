"""The write API as several processes on one port (``INGEST_WORKERS``, ``shared.service``, #15): each
worker takes requests, every alert posted through any of them is stored and published, a scrape answered
by any of them counts every worker's requests, a worker that dies is replaced, and the workers die with
their supervisor, even a supervisor killed outright, leaving the port free (and the next start removes
the metrics files it left).

Ingest as a real process (its supervisor and two workers) on the test run's Kafka and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from bench.tools.procstat import child_pids
from shared.service import STARTUP_SECONDS
from tests.conftest import AUTH
from tests.services.ingest.support import alert_records
from tests.support.polling import eventually
from tests.support.processes import free_port

WORKERS = 2
POSTS = 40
ROUTE = "/v1/tenants/{tenant_id}/alerts"


def _environment_of(pid: int) -> dict[str, str]:
    pairs = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(pair.decode(errors="replace").partition("=")[::2] for pair in pairs if b"=" in pair)


def _posts_counted(directory: Path, pid: int, scratch: Path) -> float:
    """POST 202s of the alerts route in the metrics files of one process (``pid``) of ``directory``, as a
    scrape would sum them (prometheus_client's own reader, over copies of that process's files alone)."""
    alone = scratch / str(pid)
    alone.mkdir()
    for file in directory.glob(f"*_{pid}.db"):
        shutil.copy(file, alone / file.name)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(alone))
    return sum(sample.value for metric in registry.collect() for sample in metric.samples
               if sample.name == "csp_http_requests_total" and sample.labels.get("route") == ROUTE
               and sample.labels.get("method") == "POST" and sample.labels.get("status") == "202")


def _scraped_posts(text: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("csp_http_requests_total{") and f'route="{ROUTE}"' in line
               and 'method="POST"' in line and 'status="202"' in line)


def _exists(path: Path) -> bool:
    return path.exists()


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.fixture
def ingest(make_service):
    return make_service("ingest", INGEST_WORKERS=str(WORKERS), INGEST_PORT=str(free_port())).start()


async def test_every_worker_serves_and_a_scrape_counts_them_all(ingest, tenant_id, test_env, topic_prefix,
                                                                 tmp_path):
    workers = sorted(child_pids(ingest.proc.pid))
    assert len(workers) == WORKERS, workers
    directory = Path(_environment_of(workers[0])["PROMETHEUS_MULTIPROC_DIR"])
    url = f"{ingest.url}/v1/tenants/{tenant_id}/alerts"
    for n in range(POSTS):
        # A connection each, as many webhook senders make: the kernel hands them to either worker.
        async with httpx.AsyncClient(timeout=30) as client:
            answer = await client.post(url, json={"id": f"a-{n}", "severity": "high"}, headers=AUTH)
            assert answer.status_code == 202, answer.text

    records = await alert_records(test_env["KAFKA_BOOTSTRAP_SERVERS"], topic_prefix, tenant_id, at_least=POSTS)
    assert sorted(r["value"]["alert"]["id"] for r in records) == sorted(f"a-{n}" for n in range(POSTS))
    by_worker = {pid: _posts_counted(directory, pid, tmp_path) for pid in workers}
    assert all(count > 0 for count in by_worker.values()), by_worker  # each worker answered some
    assert sum(by_worker.values()) == POSTS
    for _ in range(6):  # whichever worker answers the scrape, it tells every worker's count
        async with httpx.AsyncClient(timeout=30) as client:
            assert _scraped_posts((await client.get(f"{ingest.url}/metrics")).text) == POSTS


async def test_a_worker_that_dies_is_replaced_and_all_die_with_a_supervisor_killed_outright(ingest):
    workers = sorted(child_pids(ingest.proc.pid))
    assert len(workers) == WORKERS, workers
    await asyncio.sleep(STARTUP_SECONDS + 1)  # past it, a worker's end is no failure to start
    os.kill(workers[0], signal.SIGKILL)
    replaced = await eventually(lambda: child_pids(ingest.proc.pid),
                                lambda now: len(now) == WORKERS and workers[0] not in now, what="a new worker")
    assert ingest.proc.poll() is None
    async with httpx.AsyncClient(timeout=30) as client:
        assert (await eventually(lambda: client.get(f"{ingest.url}/health/ready"),
                                 lambda answer: answer.status_code == 200)).status_code == 200
    workers = replaced
    directory = Path(_environment_of(workers[0])["PROMETHEUS_MULTIPROC_DIR"])
    os.kill(ingest.proc.pid, signal.SIGKILL)  # the supervisor alone, not its process group
    ingest.proc.wait()

    def workers_left() -> list[int]:
        return [pid for pid in workers if Path(f"/proc/{pid}").exists()
                and (Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split() or ["Z"])[0] != "Z"]

    await eventually(workers_left, lambda left: left == [], within=10, what="the workers gone")
    await eventually(lambda: _port_is_free(ingest.port), within=10)
    assert _exists(directory)  # the killed supervisor could not remove its workers' metrics
    ingest.start()  # the same port, at once
    async with httpx.AsyncClient(timeout=30) as client:
        assert (await client.get(f"{ingest.url}/health/ready")).status_code == 200
    assert not _exists(directory)  # the next start removed them
