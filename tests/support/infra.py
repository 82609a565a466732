"""Finds the real Kafka, PostgreSQL and Redis the integration tests run against.

Order: the environment (``KAFKA_BOOTSTRAP_SERVERS``, ``DATABASE_URL``, ``REDIS_URL``: what
``make test`` and CI set), then testcontainers where a Docker engine exists. A service that
cannot be reached fails the test run: never a silent skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from urllib.parse import urlparse


@dataclass(frozen=True)
class Infra:
    kafka_bootstrap_servers: str
    database_url: str  # the server's admin database; tests create their own database on it
    redis_url: str


def _reachable(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


def _docker_engine() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0


_containers: list = []


def _from_testcontainers() -> Infra:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer
    from testcontainers.redis import RedisContainer

    kafka = KafkaContainer("apache/kafka:4.1.1").with_kraft()
    postgres = PostgresContainer("postgres:16-alpine", username="csp", password="csp", dbname="csp_triage")
    redis = RedisContainer("redis:7-alpine")
    for container in (kafka, postgres, redis):
        container.start()
        _containers.append(container)
    return Infra(
        kafka_bootstrap_servers=kafka.get_bootstrap_server(),
        database_url=postgres.get_connection_url(driver=None),
        redis_url=f"redis://{redis.get_container_host_ip()}:{redis.get_exposed_port(6379)}/0",
    )


def stop_containers() -> None:
    while _containers:
        _containers.pop().stop()


def find_infra() -> Infra:
    env = {k: os.environ.get(k) for k in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "REDIS_URL")}
    if all(env.values()):
        infra = Infra(env["KAFKA_BOOTSTRAP_SERVERS"], env["DATABASE_URL"], env["REDIS_URL"])
    elif _docker_engine():
        infra = _from_testcontainers()
    else:
        raise RuntimeError(
            "integration tests need Kafka, PostgreSQL and Redis: run `make test` (it starts them), set "
            "KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL and REDIS_URL, or install a Docker engine for testcontainers"
        )
    missing = []
    host, _, port = infra.kafka_bootstrap_servers.split(",")[0].rpartition(":")
    if not _reachable(host, int(port)):
        missing.append(f"Kafka at {infra.kafka_bootstrap_servers}")
    for name, url, default in (("PostgreSQL", infra.database_url, 5432), ("Redis", infra.redis_url, 6379)):
        parsed = urlparse(url)
        if not _reachable(parsed.hostname or "127.0.0.1", parsed.port or default):
            missing.append(f"{name} at {parsed.hostname}:{parsed.port or default}")
    if missing:
        raise RuntimeError(f"not reachable: {', '.join(missing)} (run `make test`, which starts them)")
    return infra
