"""The stack of one bench run: the four services as processes (as `make run` starts them) and the two
baseline endpoints, on a database, topics (``bench-<run>-`` prefix) and Redis keys (``bench-<run>:``
prefix) of this run alone, so a bench never touches a developer's data; all removed at the end.
Service logs (level WARNING) stay under ``.run/bench/<run>/``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from redis.asyncio import Redis

from bench.tools.mailbox import MailServer
from bench.tools.procstat import Watched, cpu_seconds, parent_pid
from shared.kafka import ensure_topics
from tests.support.databases import migrated_database
from tests.support.processes import free_port

REPO = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("STATE_DIR", REPO / ".run"))
KEY = "dev-admin-key"  # the operator key of ENVIRONMENT=development
SERVICES = {  # name: (module, port variable)
    "ingest": ("services.ingest", "INGEST_PORT"),
    "response-time": ("services.response_time", "RESPONSE_TIME_PORT"),
    "scoring": ("services.scoring", "READ_API_PORT"),
    "notifier": ("services.notifier", "NOTIFIER_PORT"),
}
CONSUMER_GROUPS = ["response-time", "scoring", "notifier", "ingest"]


@dataclass
class Process:
    name: str
    argv: list[str]
    port: int
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen | None = field(default=None, repr=False)
    ready_path = "/health/ready"

    def serving(self, answer: httpx.Response) -> str | None:
        """Who answered the readiness request: a service names itself; a baseline does not."""
        return answer.json().get("service")

    def expected_service(self) -> str | None:
        return self.name if self.name in SERVICES else None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(self.argv, cwd=REPO, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                          start_new_session=True)

    async def wait_ready(self, within_seconds: float = 90) -> None:
        deadline = asyncio.get_running_loop().time() + within_seconds
        async with httpx.AsyncClient(timeout=2) as client:
            while asyncio.get_running_loop().time() < deadline:
                if self.popen.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.popen.returncode}; see {self.log}:\n"
                                       f"{self.log.read_text(errors='replace')[-3000:]}")
                try:
                    answer = await client.get(f"{self.url}{self.ready_path}")
                except httpx.HTTPError:
                    answer = None
                if answer is not None and answer.status_code == 200:
                    # Another process may hold the port (taken between free_port() and this one's bind): then
                    # the answer is that process's, and every figure of this one would be another's.
                    serving = self.serving(answer)
                    if serving != self.expected_service():
                        raise RuntimeError(f"{self.name}: port {self.port} is answered by {serving!r}; see {self.log}")
                    return
                await asyncio.sleep(0.25)
        raise TimeoutError(f"{self.name} not ready after {within_seconds} s; see {self.log}")

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()

    def pause(self) -> None:
        """Stop the process (and its group) where it stands, as a debugger would (SIGSTOP): it takes no
        CPU until :meth:`resume`. Its Kafka consumers miss their heartbeats meanwhile; paused longer than
        the session timeout (10 s), they rejoin their group when resumed."""
        os.killpg(self.popen.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.popen.pid, signal.SIGCONT)

    def watched(self) -> Watched:
        return Watched(self.name, self.popen.pid)


ALERTMANAGER_CONFIG = """# bench: every alert to a receiver that sends nothing (Alertmanager's work is to take them in)
route:
  receiver: nobody
receivers:
  - name: nobody
"""


class Alertmanager(Process):
    """Prometheus Alertmanager (Debian's package), the baseline of accepting alerts in lists: it keeps
    them in memory only. One instance, no cluster (``--cluster.listen-address=``), a receiver that sends
    nothing."""

    ready_path = "/api/v2/status"

    def serving(self, answer: httpx.Response) -> str | None:
        return "alertmanager" if "versionInfo" in answer.json() else None

    def expected_service(self) -> str | None:
        return "alertmanager"

    @classmethod
    def make(cls, port: int, directory: Path) -> Alertmanager:
        binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
        if binary is None:
            raise RuntimeError("no prometheus-alertmanager on PATH: `make bench` installs it "
                               "(infra/scripts/bench_tools.sh; Debian: apt-get install prometheus-alertmanager)")
        config = directory / "alertmanager.yml"
        config.write_text(ALERTMANAGER_CONFIG, encoding="utf-8")
        argv = [binary, f"--config.file={config}", f"--storage.path={directory / 'alertmanager-data'}",
                f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn"]
        return cls("alertmanager", argv, port, {"PATH": os.environ.get("PATH", "")}, directory / "alertmanager.log")

    async def version(self) -> str:
        async with httpx.AsyncClient(timeout=5) as client:
            answer = await client.get(f"{self.url}{self.ready_path}")
        return f"Alertmanager {answer.json()['versionInfo']['version']}"


def kafka_broker() -> Watched | None:
    """The local broker `make infra-up` started (its pid file); None for a broker elsewhere."""
    pidfile = STATE / "kafka" / "kafka.pid"
    try:
        pid = int(pidfile.read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return Watched("kafka broker (JVM)", pid, whole_session=False)


def local_servers(postgres_backend: int, redis_pid: int | None) -> list[Watched]:
    """PostgreSQL (the postmaster: the parent of a backend of ours) and Redis (the pid it tells), when
    they run on this machine: their CPU is the system's too."""
    found = []
    try:
        postmaster = parent_pid(postgres_backend)
        found.append(Watched("postgresql", postmaster, whole_session=False, with_children=True))
    except (OSError, IndexError, ValueError):
        pass  # a server elsewhere
    if redis_pid and Path(f"/proc/{redis_pid}").exists():
        found.append(Watched("redis", int(redis_pid), whole_session=False))
    return found


class Stack:
    def __init__(self) -> None:
        self.run = uuid.uuid4().hex[:8]
        self.bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
        self.server_url = os.environ.get("DATABASE_URL", "postgresql://csp:csp@127.0.0.1:5432/csp_triage")
        self.redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
        self.topic_prefix = f"bench-{self.run}-"
        self.redis_prefix = f"bench-{self.run}:"
        self.baseline_key = f"{self.redis_prefix}baseline-score"
        self.logs = STATE / "bench" / self.run
        self.services: dict[str, Process] = {}
        self.baselines: dict[str, Process] = {}
        self.servers: list[Watched] = []  # PostgreSQL and Redis when local (local_servers)
        self._exit = AsyncExitStack()

    async def __aenter__(self) -> Stack:
        try:
            await self._start()
        except BaseException:
            await self._exit.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._exit.aclose()

    async def _start(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.database_url = await self._exit.enter_async_context(
            migrated_database(self.server_url, f"csp_bench_{self.run}"))
        self._exit.push_async_callback(self._remove_topics)
        await ensure_topics(self.bootstrap, self.topic_prefix)
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="bench")
        await admin.start()
        try:
            await admin.create_topics([NewTopic(f"{self.topic_prefix}bench-baseline", 6, 1)])
        finally:
            await admin.close()
        self.redis = Redis.from_url(self.redis_url)
        self._exit.push_async_callback(self._remove_redis_keys)
        self.mail = MailServer(free_port())
        self.mail.start()
        self._exit.callback(self.mail.stop)
        env = {
            **os.environ,
            "ENVIRONMENT": "development",
            "DATABASE_URL": self.database_url,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAFKA_TOPIC_PREFIX": self.topic_prefix,
            "REDIS_URL": self.redis_url,
            "REDIS_KEY_PREFIX": self.redis_prefix,
            "GRAPH_SYNC_ENABLED": "false",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            # The bench's mailbox (bench/tools/mailbox.py): the e-mail to the tenants with a security contact.
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(self.mail.port),
            "BENCH_BASELINE_TOPIC": f"{self.topic_prefix}bench-baseline",
            "BENCH_BASELINE_KEY": self.baseline_key,
        }
        ports: set[int] = set()

        def distinct_port() -> int:
            # free_port() closes its socket, so two calls can give one port: each process gets its own.
            while (port := free_port()) in ports:
                pass
            ports.add(port)
            return port

        for name, (module, port_variable) in SERVICES.items():
            port = distinct_port()
            self.services[name] = Process(name, [sys.executable, "-m", module], port, {**env, port_variable: str(port)},
                                          self.logs / f"{name}.log")
        for name, factory in (("bare POST", "post_app"), ("bare GET", "read_app")):
            port = distinct_port()
            argv = [sys.executable, "-m", "uvicorn", f"bench.tools.baselines:{factory}", "--factory", "--host",
                    "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"]
            self.baselines[name] = Process(name, argv, port, env, self.logs / f"{factory}.log")
        self.baselines["alertmanager"] = Alertmanager.make(distinct_port(), self.logs)
        self._exit.callback(self._stop_processes)
        for process in [*self.services.values(), *self.baselines.values()]:
            process.start()
        await asyncio.gather(*(p.wait_ready() for p in [*self.services.values(), *self.baselines.values()]))
        self.pool = await asyncpg.create_pool(self.database_url, min_size=1, max_size=3)
        self._exit.push_async_callback(self.pool.close)
        self.servers = await self._local_servers()

    async def _local_servers(self) -> list[Watched]:
        backend = await self.pool.fetchval("SELECT pg_backend_pid()")
        redis_pid = (await self.redis.info("server")).get("process_id")
        return local_servers(backend, redis_pid)

    def _stop_processes(self) -> None:
        for process in [*self.services.values(), *self.baselines.values()]:
            process.stop()

    async def _remove_topics(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="bench")
        await admin.start()
        try:
            ours = [t for t in await admin.list_topics() if t.startswith(self.topic_prefix)]
            if ours:
                await admin.delete_topics(ours)
        finally:
            await admin.close()

    async def _remove_redis_keys(self) -> None:
        keys = [key async for key in self.redis.scan_iter(match=f"{self.redis_prefix}*", count=1000)]
        if keys:
            await self.redis.delete(*keys)
        await self.redis.aclose()

    async def outbox_waiting(self) -> int:
        """Events waiting in every service's outbox (each schema's ``outbox`` table)."""
        schemas = await self.pool.fetch(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'outbox'")
        return sum([await self.pool.fetchval(f'SELECT count(*) FROM "{row[0]}".outbox') for row in schemas])

    async def database_cpu(self) -> dict[str, float]:
        """CPU seconds so far of the bench database's sessions, by the service that opened them (each names
        it: ``csp-<service>[ <role>]``, ``shared.db.application_name``); empty for a server elsewhere. A
        session that ended is no longer counted: the pools keep theirs for the whole run."""
        if not any(server.name == "postgresql" for server in self.servers):
            return {}
        rows = await self.pool.fetch(
            """SELECT pid, application_name FROM pg_stat_activity
               WHERE datname = current_database() AND application_name LIKE 'csp-%'""")
        by_service: dict[str, float] = {}
        for row in rows:
            service = row["application_name"].split(" ")[0].removeprefix("csp-")
            by_service[service] = by_service.get(service, 0.0) + cpu_seconds([row["pid"]])
        return by_service

    def watched(self) -> list[Watched]:
        found = [p.watched() for p in self.services.values()]
        broker = kafka_broker()
        return [*found, *([broker] if broker else []), *self.servers]
