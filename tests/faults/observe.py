"""What the fault suite watches from outside the services: their log files (records per second and
of which kind), their CPU time (/proc), their readiness, the consumer groups' progress and the
dead-letter topic; for the scale-out test, who holds which partitions of a group and which process
leads an outbox relay."""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment, ConsumerProtocolMemberMetadata
from aiokafka.protocol.admin import DescribeGroupsRequest_v0, DescribeGroupsRequest_v1, DescribeGroupsRequest_v2
from aiokafka.protocol.api import Request

from tests.support.processes import ServiceProcess

# A log record starts with the formatter's time stamp (shared/logs.py); other lines are tracebacks.
RECORD_START = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
# "<time> <LEVEL> <service> <logger>: <message>": the kind is level, logger and the message's start.
RECORD_KIND = re.compile(rb"^\S+ (\S+)\s+\S+ (\S+): (.{0,60})")


# --- logs -----------------------------------------------------------------------------------------


@dataclass
class LogWindow:
    """What a service wrote to its log between two moments."""

    records: int  # every record (INFO included: the normal work of a healthy service)
    warnings: int  # records at WARNING and above: how the service reports trouble
    lines: int  # tracebacks included
    size: int
    kinds: Counter  # of the warnings and above
    deliveries: int = 0  # attempts the notifier's delivery worker reported (work, whatever else is down)

    def top(self, n: int = 5) -> list[tuple[str, int]]:
        return self.kinds.most_common(n)


ALARM_LEVELS = {"WARNING", "ERROR", "CRITICAL"}


def log_size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def log_window(path: Path, start: int, end: int) -> LogWindow:
    with path.open("rb") as log:
        log.seek(start)
        text = log.read(max(0, end - start))
    records, warnings, deliveries, kinds = 0, 0, 0, Counter()
    lines = text.splitlines()
    for line in lines:
        if RECORD_START.match(line):
            records += 1
            match = RECORD_KIND.match(line)
            if match:
                level, logger, message = (part.decode(errors="replace") for part in match.groups())
                if level in ALARM_LEVELS:
                    warnings += 1
                    kinds[f"{level} {logger}: {message}"] += 1
                elif logger == "services.notifier.worker" and message.startswith("delivery "):
                    deliveries += 1
    return LogWindow(records, warnings, len(lines), len(text), kinds, deliveries)


# --- CPU --------------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (all its threads), from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    # After "pid (comm) ": state is field 3 of proc(5); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- readiness ------------------------------------------------------------------------------------


@dataclass
class ReadinessWatch:
    """Polls every service's ``/health/ready`` until stopped; keeps (time, service, status or 0)."""

    services: dict[str, ServiceProcess]
    every: float = 0.5
    seen: list[tuple[float, str, int]] = field(default_factory=list)
    _task: asyncio.Task | None = None

    async def _poll(self) -> None:
        async with httpx.AsyncClient(timeout=5) as http:
            while True:
                async def one(name: str, service: ServiceProcess) -> None:
                    try:
                        status = (await http.get(f"{service.url}/health/ready")).status_code
                    except httpx.HTTPError:
                        status = 0  # no answer at all: the process is down or hangs
                    self.seen.append((time.monotonic(), name, status))

                await asyncio.gather(*(one(n, s) for n, s in self.services.items()))
                await asyncio.sleep(self.every)

    def start(self) -> ReadinessWatch:
        self._task = asyncio.create_task(self._poll())
        return self

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def statuses(self, name: str, since: float, until: float) -> list[int]:
        return [status for at, service, status in self.seen if service == name and since <= at <= until]


async def wait_ready(services: dict[str, ServiceProcess], within: float) -> dict[str, float | None]:
    """Seconds until each service answered ``/health/ready`` with 200 (None: not within ``within``)."""
    start = time.monotonic()
    ready: dict[str, float | None] = dict.fromkeys(services)
    async with httpx.AsyncClient(timeout=5) as http:
        while time.monotonic() - start < within and any(v is None for v in ready.values()):
            for name, service in services.items():
                if ready[name] is None:
                    try:
                        if (await http.get(f"{service.url}/health/ready")).status_code == 200:
                            ready[name] = round(time.monotonic() - start, 1)
                    except httpx.HTTPError:
                        pass
            await asyncio.sleep(0.3)
    return ready


# --- Kafka --------------------------------------------------------------------------------------


async def read_all(bootstrap: str, topic: str, *, timeout: float = 20.0) -> list:
    """Every record of ``topic`` (read committed), as aiokafka ConsumerRecords, up to its end now."""
    # No group: the consumer takes every partition of the topic and commits nothing.
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                isolation_level="read_committed", auto_offset_reset="earliest")
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout
        while not consumer.assignment():
            if time.monotonic() > deadline:
                raise LookupError(f"no partitions of {topic} on {bootstrap}")
            await asyncio.sleep(0.1)
        partitions = sorted(consumer.assignment())
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records = []
        while time.monotonic() < deadline:
            positions = [await consumer.position(tp) for tp in partitions]
            if all(position >= ends[tp] for position, tp in zip(positions, partitions, strict=True)):
                break
            batch = await consumer.getmany(timeout_ms=500)
            for items in batch.values():
                records.extend(items)
        return records
    finally:
        await consumer.stop()


async def group_lag(bootstrap: str, group: str, topics: list[str]) -> dict[str, int]:
    """Records of ``topics`` the group has not committed past, per ``topic[partition]``.

    Measured against the last *record* of each partition, not its end offset: the alerts topic is
    written in transactions, whose commit markers take an offset no consumer ever commits past.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    lag: dict[str, int] = {}
    for topic in topics:
        last: dict[int, int] = {}
        for record in await read_all(bootstrap, topic):
            last[record.partition] = max(last.get(record.partition, -1), record.offset)
        for partition, offset in last.items():
            meta = committed.get(TopicPartition(topic, partition))
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            lag[f"{topic}[{partition}]"] = max(0, offset + 1 - done)
    return lag


# --- consumer groups' members and partitions (the scale-out test) ------------------------------------


@dataclass(frozen=True)
class GroupMember:
    """One consumer of a group as the coordinator describes it: what it subscribes to, what it holds."""

    member_id: str
    client_id: str
    topics: tuple[str, ...]
    partitions: frozenset[tuple[str, int]]


class _DescribeGroups(Request[DescribeGroupsRequest_v0 | DescribeGroupsRequest_v1 | DescribeGroupsRequest_v2]):
    """DescribeGroups at v2 at most: aiokafka 0.14 decodes a v3 answer with the v2 schema (which lacks
    its authorized operations) and drops the connection, and a Kafka 4 broker would pick v3."""

    API_KEY = 15

    def __init__(self, groups: list[str]) -> None:
        self.groups = groups

    def build(self, request_struct_class):
        return request_struct_class(self.groups)


async def group_members(bootstrap: str, group: str) -> tuple[str, list[GroupMember]]:
    """The group's state (``Stable``, ``PreparingRebalance``, ``Empty``...) and its members."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        coordinator = await admin.find_coordinator(group)
        answer = await admin._client.send(coordinator, _DescribeGroups([group]))  # noqa: SLF001 (see _DescribeGroups)
    finally:
        await admin.close()
    error, _, state, _, _, members = answer.groups[0]
    if error:
        raise RuntimeError(f"DescribeGroups {group}: error code {error}")
    described = []
    for member_id, client_id, _, metadata, assignment in members:
        topics = tuple(ConsumerProtocolMemberMetadata.decode(metadata).subscription) if metadata else ()
        held = ConsumerProtocolMemberAssignment.decode(assignment).partitions() if assignment else []
        described.append(GroupMember(member_id, client_id, topics,
                                     frozenset((tp.topic, tp.partition) for tp in held)))
    return state, described


async def topic_partitions(bootstrap: str, topics: list[str]) -> set[tuple[str, int]]:
    """Every partition of ``topics``, as the broker's metadata has them."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)  # partitions_for waits for the metadata
    await producer.start()
    try:
        return {(topic, p) for topic in topics for p in await producer.partitions_for(topic)}
    finally:
        await producer.stop()


# --- who holds a PostgreSQL advisory lock (an outbox relay's leadership) ------------------------------


async def advisory_lock_ports(database_url: str, key: str) -> list[int]:
    """Client ports of the sessions holding ``pg_try_advisory_lock(hashtext(key))`` in the database."""
    conn = await asyncpg.connect(database_url)
    try:
        value = await conn.fetchval("SELECT hashtext($1)::bigint", key)
        # pg_locks shows a bigint key as its high and low 32 bits (objsubid 1: the one-key form).
        rows = await conn.fetch(
            """SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
               WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
                 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                 AND l.classid::bigint = $1 AND l.objid::bigint = $2""",
            (value >> 32) & 0xFFFFFFFF, value & 0xFFFFFFFF)
    finally:
        await conn.close()
    return [row["client_port"] for row in rows]


def pid_of_local_port(port: int, pids: list[int]) -> int | None:
    """Which of ``pids`` owns the loopback TCP socket bound to ``port`` (from /proc: net/tcp names the
    socket's inode, the process's fd directory links to it)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port:
            inodes.add(f"socket:[{fields[9]}]")
    for pid in pids:
        try:
            links = {os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()}
        except OSError:
            continue  # the process is gone
        if links & inodes:
            return pid
    return None
