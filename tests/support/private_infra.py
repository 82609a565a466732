"""Kafka, PostgreSQL and Redis of one test, on free loopback ports, that the test may stop, kill,
flush and restart.

The shared infrastructure (``make infra-up``) serves every test run and must never be stopped; a
test about a dependency being away uses one of these. Each has ``start``, ``stop`` (an orderly
shutdown), ``kill`` (gone at once, as in a crash or a network cut) and ``restart``; each keeps its
data between a stop and the next start, as a real server's disk does.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

from shared.db import apply_migrations
from tests.support.processes import REPO, free_port

KAFKA_HOME = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    / "csp-triage"
    / f"kafka-{os.environ.get('KAFKA_VERSION', '4.1.1')}"
)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _wait_listening(name: str, port: int, proc: subprocess.Popen | None, timeout: float, tail) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail()}")
        if _listening(port):
            return
        time.sleep(0.2)
    raise TimeoutError(f"{name} not listening on {port} after {timeout} s:\n{tail()}")


def _tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


def _end_group(proc: subprocess.Popen | None, sig: int, wait: float) -> None:
    """Send ``sig`` to the process group this module started (never anything else); SIGKILL after ``wait``."""
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, sig)
    try:
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)


# --- Kafka ----------------------------------------------------------------------------------------


class PrivateKafka:
    """A single-node Kafka (KRaft, broker and controller in one JVM) with its own log directory.

    Formatted and started like ``infra/scripts/kafka.sh`` does, from the same jars.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
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

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    def _java(self, *args: str) -> list[str]:
        return [
            "java",
            "-Xms128m",
            "-Xmx512m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",  # C1 only: the JVM starts faster, which is what a test waits for
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={REPO / 'infra' / 'kafka' / 'log4j2.yaml'}",
            "-cp",
            f"{KAFKA_HOME / 'libs'}/*",
            *args,
        ]

    @staticmethod
    def cluster_id() -> str:
        """What ``StorageTool random-uuid`` prints (base64url of 16 random bytes, never starting
        with '-'), without starting a JVM for it."""
        while True:
            text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            if not text.startswith("-"):
                return text

    def format(self) -> PrivateKafka:
        if not (KAFKA_HOME / "libs").is_dir():
            raise RuntimeError(f"no Kafka jars in {KAFKA_HOME}: run `make infra-up` once")
        subprocess.run(
            self._java(
                "kafka.tools.StorageTool", "format", "--standalone", "-t", self.cluster_id(), "-c", str(self.config)
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
        _wait_listening("private Kafka", self.port, self.proc, timeout, self.tail)
        return self

    def stop(self) -> None:
        """An orderly shutdown (SIGTERM: the broker closes its logs), as an operator's restart."""
        _end_group(self.proc, signal.SIGTERM, wait=30)

    def kill(self) -> None:
        """SIGKILL: the broker vanishes as in a crash or a network cut."""
        _end_group(self.proc, signal.SIGKILL, wait=30)

    def restart(self) -> PrivateKafka:
        self.stop()
        return self.start()

    def tail(self, chars: int = 3000) -> str:
        return _tail(self.log_path, chars)


# --- PostgreSQL ---------------------------------------------------------------------------------


def postgres_bindir() -> Path:
    """Debian's PostgreSQL binaries (as ``infra/scripts/postgres.sh`` finds them)."""
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise RuntimeError("no PostgreSQL binaries (initdb, pg_ctl): run `make infra-up` once, which installs them")


class PrivatePostgres:
    """A PostgreSQL cluster of one test: ``initdb`` in a directory of its own, one database, migrated.

    PostgreSQL refuses to run as root; as root its tools run as the ``postgres`` user (as
    ``infra/scripts/postgres.sh`` does), in a directory that user owns. Authentication is ``trust``
    on loopback: a throwaway cluster no one else can reach.
    """

    user = "csp"

    def __init__(self, database: str = "csp_faults") -> None:
        self.bin = postgres_bindir()
        self.database = database
        self.port = free_port()
        # Not under pytest's tmp_path: that is private to root, and the server may run as 'postgres'.
        self.directory = Path(tempfile.mkdtemp(prefix="csp-private-postgres-"))
        self.data = self.directory / "data"
        self.log_path = self.directory / "postgres.log"
        self._as_root = os.geteuid() == 0
        if self._as_root:
            shutil.chown(self.directory, "postgres")

    @property
    def server_url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    @property
    def database_url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while it runs."""
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        command = [str(self.bin / args[0]), *args[1:]]
        if self._as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        # From /, which 'postgres' can always enter, whatever the caller's working directory.
        return subprocess.run(command, cwd="/", capture_output=True, text=True, timeout=timeout)

    def _check(self, result: subprocess.CompletedProcess, what: str) -> None:
        if result.returncode != 0:
            raise RuntimeError(f"{what} failed ({result.returncode}): {result.stderr}{result.stdout}\n{self.tail()}")

    def init(self) -> PrivatePostgres:
        result = self._run("initdb", "-D", str(self.data), "-U", self.user, "-A", "trust", "-E", "UTF8",
                           "--locale=C.UTF-8", "--no-sync")
        self._check(result, "initdb")
        return self

    def start(self, timeout: float = 60) -> PrivatePostgres:
        # fsync off: the machine does not crash, only the server does, and the OS keeps what it was
        # given. synchronous_commit stays on: a commit answered before its WAL left the server's
        # memory would be lost by a kill, and the suite would blame the services for it.
        options = (f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c max_connections=200 "
                   "-c fsync=off -c full_page_writes=off")
        result = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-w", "-t", str(int(timeout)),
                           "-o", options, "start", timeout=timeout + 10)
        self._check(result, "pg_ctl start")
        return self

    async def create_database(self) -> str:
        """Creates the database and applies every migration; returns its URL."""
        admin = await asyncpg.connect(self.server_url)
        try:
            await admin.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            await admin.close()
        await apply_migrations(self.database_url)
        return self.database_url

    def stop(self) -> None:
        """``pg_ctl -m fast``: connections are closed, a checkpoint is written."""
        if self.pid is not None:
            self._check(self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop"), "pg_ctl stop")

    def kill(self) -> None:
        """``pg_ctl -m immediate``: every process ends at once with no checkpoint; the next start
        recovers from the WAL, as after a crash."""
        if self.pid is not None:
            self._check(self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop"), "pg_ctl stop")

    def restart(self) -> PrivatePostgres:
        self.kill()
        return self.start()

    def remove(self) -> None:
        """Stop and delete the cluster."""
        self.kill()
        shutil.rmtree(self.directory, ignore_errors=True)

    def tail(self, chars: int = 3000) -> str:
        return _tail(self.log_path, chars)


# --- Redis --------------------------------------------------------------------------------------


class PrivateRedis:
    """A redis-server of one test, with no persistence (Redis holds derived state only: a restart
    comes back empty, as a lost cache does)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log_path = directory / "redis.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    def start(self, timeout: float = 30) -> PrivateRedis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("no redis-server: run `make infra-up` once, which installs it")
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.directory),
                 "--save", "", "--appendonly", "no", "--daemonize", "no"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        _wait_listening("private Redis", self.port, self.proc, timeout, self.tail)
        return self

    def flushall(self) -> None:
        """Every key gone, the server still up (an operator's mistake, or an eviction of everything)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as conn:
            conn.sendall(b"*1\r\n$8\r\nFLUSHALL\r\n")
            answer = conn.recv(64)
        if not answer.startswith(b"+OK"):
            raise RuntimeError(f"FLUSHALL answered {answer!r}")

    def stop(self) -> None:
        _end_group(self.proc, signal.SIGTERM, wait=10)

    def kill(self) -> None:
        _end_group(self.proc, signal.SIGKILL, wait=10)

    def restart(self) -> PrivateRedis:
        self.stop()
        return self.start()

    def tail(self, chars: int = 3000) -> str:
        return _tail(self.log_path, chars)
