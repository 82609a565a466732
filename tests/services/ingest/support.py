"""Helpers of the ingest tests: reading a tenant's alert events, a private Kafka broker to stop."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from tests.support.processes import REPO, free_port

KAFKA_HOME = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    / "csp-triage"
    / f"kafka-{os.environ.get('KAFKA_VERSION', '4.1.1')}"
)


async def alert_records(
    bootstrap: str, topic_prefix: str, tenant_id: str, *, at_least: int, within: float = 30
) -> list[dict]:
    """Every record of ``tenant_id`` on the alerts topic, read committed, once ``at_least`` arrived."""
    topic = f"{topic_prefix}alerts"
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"test-{uuid.uuid4()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    found: list[dict] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    if record.key and record.key.decode().startswith(f"{tenant_id}:"):
                        found.append(
                            {
                                "key": record.key.decode(),
                                "partition": record.partition,
                                "offset": record.offset,
                                "headers": {k: v.decode() for k, v in record.headers},
                                "value": json.loads(record.value),
                            }
                        )
            # Enough, and read to the end of the topic: extra (wrong) records would have been seen too.
            if len(found) >= at_least and not batch:
                break
    finally:
        await consumer.stop()
    return found


class PrivateKafka:
    """A single-node Kafka of one test, on free ports with its own log directory, that it may stop.

    The shared broker must never be stopped; a test about the broker being away uses this one.
    Formatted and started like ``infra/scripts/kafka.sh`` does, from the same jars.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port, self.controller_port = free_port(), free_port()
        self.log_path = directory / "kafka.log"
        self.proc: subprocess.Popen | None = None
        template = (REPO / "infra" / "kafka" / "server.properties.template").read_text()
        self.config = directory / "server.properties"
        self.config.write_text(
            template.replace("@KAFKA_PORT@", str(self.port))
            .replace("@CONTROLLER_PORT@", str(self.controller_port))
            .replace("@LOG_DIR@", str(directory / "data"))
        )

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _java(self, *args: str) -> list[str]:
        return [
            "java",
            "-Xms128m",
            "-Xmx512m",
            "-XX:+UseSerialGC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={REPO / 'infra' / 'kafka' / 'log4j2.yaml'}",
            "-cp",
            f"{KAFKA_HOME / 'libs'}/*",
            *args,
        ]

    def format(self) -> PrivateKafka:
        if not (KAFKA_HOME / "libs").is_dir():
            raise RuntimeError(f"no Kafka jars in {KAFKA_HOME}: run `make infra-up` once")
        cluster_id = (
            subprocess.run(
                self._java("kafka.tools.StorageTool", "random-uuid"),
                capture_output=True,
                text=True,
                check=True,
                timeout=120,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        subprocess.run(
            self._java(
                "kafka.tools.StorageTool", "format", "--standalone", "-t", cluster_id, "-c", str(self.config)
            ),
            capture_output=True,
            check=True,
            timeout=120,
        )
        return self

    def start(self, timeout: float = 120) -> PrivateKafka:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self._java("kafka.Kafka", str(self.config)),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"private Kafka exited with {self.proc.returncode}:\n{self.tail()}")
            with socket.socket() as probe:
                probe.settimeout(1)
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.3)
        raise TimeoutError(f"private Kafka not listening after {timeout} s:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL: the broker vanishes as in a crash or a network cut."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)

    def tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""
