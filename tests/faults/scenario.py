"""The fault matrix: the four services on private infrastructure under a steady load, and, in turn,
every part killed, stopped or flushed, poison on every consumed topic, redelivered and reordered
events. Runs once per module (``test_fault_matrix.py``), which then checks what it left behind.

Timeline (about two minutes of load):
  warm-up · SIGKILL and restart ingest, response-time, scoring, notifier (one after the other) ·
  Kafka broker stopped 10 s · PostgreSQL stopped (immediate) 10 s · Redis FLUSHALL, then Redis
  killed 8 s (back empty) · poison records on every consumed topic · copies of committed alert and
  status records re-published in reverse order · the load stops, each tenant changes its contact a
  last time, every contact event is re-published oldest last, and one probe alert per tenant shows
  where the notifier now sends mail.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

from shared.auth import Role, create_key
from shared.kafka import ensure_topics
from tests.faults.expected import ExpectedTenant
from tests.faults.load import OPERATOR, GaveUp, LoadStats, Profile, Refused, TenantSender, WriteApi
from tests.faults.observe import (
    LogWindow,
    ReadinessWatch,
    cpu_seconds,
    group_lag,
    log_size,
    log_window,
    read_all,
    wait_ready,
)
from tests.support.peers import Receiver, Smtp
from tests.support.private_infra import PrivateKafka, PrivatePostgres, PrivateRedis
from tests.support.processes import ServiceProcess

SERVICES = ("ingest", "response-time", "scoring", "notifier")
# Who must report not-ready while each dependency is away. The write API stays ready without the
# broker: a write is durable once committed with its events in the outbox, which waits for it.
DEPENDENTS = {"kafka": ("response-time", "scoring", "notifier"), "postgres": SERVICES, "redis": ("scoring",)}
# Topic -> the services consuming it (each dead-letters a poison record of it once).
CONSUMERS = {
    "alerts": ("response-time", "notifier", "scoring"),
    "requirement-status": ("scoring", "notifier"),
    "security-contacts": ("notifier",),
    "notifications": ("notifier",),
    "notification-channels": ("notifier",),
    "delivery-commands": ("notifier",),
    "alert-response-times": ("scoring",),
    "customer-mfa": ("scoring",),
    "deliveries": ("scoring", "ingest"),
    "alert-sync": ("scoring",),
    "escalation-chains": ("notifier",),
    "alert-triage": ("scoring",),
}
EVENT_TYPES = {
    "alerts": "alert-created",
    "requirement-status": "requirement-status-observed",
    "security-contacts": "security-contact-changed",
    "notifications": "spending-budget-threshold-reached",
    "notification-channels": "notification-channel-changed",
    "delivery-commands": "redelivery-requested",
    "alert-response-times": "alert-response-time-changed",
    "customer-mfa": "customer-mfa-observed",
    "deliveries": "delivery-changed",
    "alert-sync": "alert-sync-changed",
    "escalation-chains": "escalation-chain-changed",
    "alert-triage": "alert-assigned",
}
PROFILES = [Profile("prompt", None), Profile("prompt", frozenset({"medium", "high"}))] * 3 + [
    Profile("late", None), Profile("late", frozenset({"high"}))]
OUTAGE_SECONDS = {"kafka": 10.0, "postgres": 10.0, "redis": 8.0}
RECOVERY_BOUND_SECONDS = 60.0
# After the load stops, how long a sender may still retry the operation it was doing.
DRAIN_SECONDS = 60.0


@dataclass
class Outage:
    dependency: str
    seconds: float  # from the moment it was down to the moment it was started again
    logs: dict[str, LogWindow]
    cpu_cores: dict[str, float]  # CPU time / wall time of each service while it was down
    readiness: dict[str, list[int]]  # /health/ready statuses seen while down (after a 3 s grace)
    recovered_after: dict[str, float | None]  # seconds from the restart to ready again
    write_answers: Counter  # what senders got from the write API meanwhile


@dataclass
class Poison:
    topic: str
    partition: int
    offset: int
    consumers: tuple[str, ...]

    @property
    def source(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


@dataclass
class FaultRun:
    services: dict[str, ServiceProcess]
    kafka: PrivateKafka
    postgres: PrivatePostgres
    redis: PrivateRedis
    prefix: str
    tenants: list[ExpectedTenant]
    stats: LoadStats
    smtp: Smtp
    receiver: Receiver
    outages: dict[str, Outage] = field(default_factory=dict)
    kills: dict[str, float | None] = field(default_factory=dict)  # service -> seconds to ready again
    poison: list[Poison] = field(default_factory=list)
    republished: Counter = field(default_factory=Counter)
    probes: dict[str, str] = field(default_factory=dict)  # tenant -> probe alert id
    contacts_not_at_the_notifier: dict[str, str] = field(default_factory=dict)  # tenant -> the contact it held
    timeline: list[tuple[float, str]] = field(default_factory=list)
    load_seconds: float = 0.0
    ended: float = 0.0  # monotonic time the load and the faults were over

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def note(self, what: str) -> None:
        self.timeline.append((round(time.monotonic(), 1), what))


def service_env(kafka: PrivateKafka, postgres: PrivatePostgres, redis: PrivateRedis, prefix: str,
                smtp: Smtp, run_id: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
        "DATABASE_URL": postgres.database_url,
        "REDIS_URL": redis.url,
        "KAFKA_TOPIC_PREFIX": prefix,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp.port),
        # A notifier killed mid-send leaves its row leased; the default lease (60 s) would outlast
        # the suite's bound. Sends must fit in it, so their timeouts shrink with it.
        "DELIVERY_LEASE_SECONDS": "20",
        "SMTP_TIMEOUT_SECONDS": "10",
        "WEBHOOK_TIMEOUT_SECONDS": "10",
        # The matrix counts one message per alert (each e-mailed and posted once): its load is a
        # storm for every tenant, whose digests would carry most alerts and leave out those answered
        # before they went. Grouping is tested on its own (tests/services/notifier/test_storms.py).
        "STORM_THRESHOLD": "0",
    }


def private_infrastructure(directory: Path) -> tuple[PrivateKafka, PrivatePostgres, PrivateRedis]:
    return PrivateKafka(directory / "kafka"), PrivatePostgres(), PrivateRedis(directory / "redis")


async def start_infrastructure(kafka: PrivateKafka, postgres: PrivatePostgres, redis: PrivateRedis,
                               prefix: str) -> None:
    """Kafka (a JVM: the slowest) beside PostgreSQL and Redis; then the database and the topics."""
    def kafka_up() -> None:
        kafka.format().start()

    def postgres_and_redis_up() -> None:
        postgres.init().start()
        redis.start()

    await asyncio.gather(asyncio.to_thread(kafka_up), asyncio.to_thread(postgres_and_redis_up))
    await postgres.create_database()
    await ensure_topics(kafka.bootstrap, prefix)


async def kill_and_restart(run: FaultRun, name: str) -> None:
    service = run.services[name]
    run.note(f"SIGKILL {name}")
    service.kill()
    service.start(wait=False)
    run.kills[name] = (await wait_ready({name: service}, RECOVERY_BOUND_SECONDS))[name]
    run.note(f"{name} ready again after {run.kills[name]} s")


async def writes_in_flight(run: FaultRun, api: WriteApi, until: asyncio.Event, senders: int = 4) -> None:
    """Signals posted back to back (each retried until accepted), so some are on their way to the
    broker at the moment it goes: what a busy deployment sees, and what leaves a producer with a
    batch the broker never answered. Each loop has a tenant of its own (no check reads them)."""
    async def loop(k: int) -> None:
        path = f"/v1/tenants/{run.prefix}in-flight-{k}/signals/admin-mfa"
        while not until.is_set():
            try:
                await api.send("POST", path, {"totalAdmins": 2, "adminsWithMfa": 2}, headers=OPERATOR,
                               what="signal in flight")
            except (GaveUp, Refused):
                return

    await asyncio.gather(*(loop(k) for k in range(senders)))


async def outage(run: FaultRun, dependency: str, stop, start, *, api: WriteApi | None = None) -> None:
    """``stop`` the dependency, hold it down, ``start`` it; measure every service meanwhile. With
    ``api``, writes are in flight when it stops."""
    services = run.services
    watch = ReadinessWatch(services).start()
    in_flight_until = asyncio.Event()
    in_flight = asyncio.create_task(writes_in_flight(run, api, in_flight_until)) if api else None
    if in_flight:
        await asyncio.sleep(1.5)
    run.note(f"{dependency} down")
    await asyncio.to_thread(stop)
    down_at = time.monotonic()
    in_flight_until.set()  # the loops finish the write each has under way (accepted once it is back)
    sizes = {n: log_size(s.log_path) for n, s in services.items()}
    cpu = {n: cpu_seconds(s.proc.pid) for n, s in services.items()}
    answers_before = len(run.stats.answers)
    await asyncio.sleep(OUTAGE_SECONDS[dependency])
    up_at = time.monotonic()
    seconds = up_at - down_at
    logs = {n: log_window(s.log_path, sizes[n], log_size(s.log_path)) for n, s in services.items()}
    cores = {n: round((cpu_seconds(s.proc.pid) - cpu[n]) / seconds, 3) for n, s in services.items()}
    write_answers = Counter(status for _, status in run.stats.answers[answers_before:])
    run.note(f"{dependency} starting")
    await asyncio.to_thread(start)
    recovered = await wait_ready(services, RECOVERY_BOUND_SECONDS)
    await watch.stop()
    if in_flight:
        await in_flight
    run.note(f"{dependency} back; ready after {recovered}")
    readiness = {n: watch.statuses(n, down_at + 3.0, up_at) for n in services}
    run.outages[dependency] = Outage(dependency, round(seconds, 1), logs, cores, readiness, recovered, write_answers)


async def await_notifier_caught_up(run: FaultRun, within: float = 30.0, due_at_most: int = 20) -> None:
    """Until the notifier has sent what fell due (its kill just before left a backlog): what it burns while
    the broker is down is then waiting, and no catching up on earlier work (a few dozen deliveries a second,
    legitimately, which the outage's CPU bound is not about). Bounded: past ``within`` the outage goes ahead."""
    conn = await asyncpg.connect(run.postgres.database_url)
    started = time.monotonic()
    try:
        while True:  # noqa: ASYNC110 - polling the notifier's table is the wait
            due = await conn.fetchval("SELECT count(*) FROM notifier.notification_deliveries "
                                      "WHERE state = 'pending' AND next_attempt_at <= now()")
            if due <= due_at_most or time.monotonic() - started > within:
                break
            await asyncio.sleep(0.2)
    finally:
        await conn.close()
    run.note(f"notifier caught up ({due} deliveries due) after {time.monotonic() - started:.1f} s")


async def await_channels_at_the_notifier(run: FaultRun, within: float = 30.0) -> None:
    """Channels reach the notifier as events (#11), a few milliseconds after the write API's 201: an
    alert the notifier consumes before its tenant's channel gets no webhook. A partner configures a
    channel before the alerts it is for; so does this run."""
    tenants = [t.tenant_id for t in run.tenants]
    conn = await asyncpg.connect(run.postgres.database_url)
    try:
        deadline = time.monotonic() + within
        while (held := await conn.fetchval(
                "SELECT count(*) FROM notifier.notification_channels WHERE tenant_id = ANY($1::text[]) AND NOT deleted",
                tenants)) < len(tenants):
            if time.monotonic() > deadline:
                raise AssertionError(f"the notifier holds {held} of {len(tenants)} channels after {within} s")
            await asyncio.sleep(0.2)
    finally:
        await conn.close()
    run.note("every channel at the notifier")


async def await_contacts_at_the_notifier(run: FaultRun, emails: dict[str, str], within: float = 60.0) -> dict[str, str]:
    """Until the notifier holds each tenant's contact ``emails[tenant]``; what it holds instead for those it
    does not after ``within`` seconds (the check reports them)."""
    conn = await asyncpg.connect(run.postgres.database_url)
    started = time.monotonic()
    try:
        while True:  # noqa: ASYNC110 - polling the notifier's table is the wait
            rows = await conn.fetch("SELECT tenant_id, email FROM notifier.notifier_contacts "
                                    "WHERE tenant_id = ANY($1::text[])", list(emails))
            held = {row["tenant_id"]: row["email"] for row in rows}
            missing = {t: str(held.get(t)) for t, email in emails.items() if held.get(t) != email}
            if not missing or time.monotonic() - started > within:
                break
            await asyncio.sleep(0.2)
    finally:
        await conn.close()
    run.note(f"last contacts at the notifier after {time.monotonic() - started:.1f} s ({len(missing)} missing)")
    return missing


async def await_group_caught_up(run: FaultRun, service: str, topic: str, within: float = 60.0) -> None:
    """Until ``service``'s consumer group has committed past the last record of ``topic``. Bounded: past
    ``within`` the run goes ahead, and the checks judge what the service did by then."""
    started = time.monotonic()
    while sum((await group_lag(run.kafka.bootstrap, f"{run.prefix}{service}", [run.topic(topic)])).values()):
        if time.monotonic() - started > within:
            break
        await asyncio.sleep(0.5)
    run.note(f"{service} through {topic} after {time.monotonic() - started:.1f} s")


async def put_poison(run: FaultRun) -> None:
    """On every consumed topic: bytes that are not JSON, and JSON that breaks the event contract."""
    producer = AIOKafkaProducer(bootstrap_servers=run.kafka.bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for topic, consumers in CONSUMERS.items():
            headers = [("eventType", EVENT_TYPES[topic].encode())]
            for value in (b"\xff\xfe not json {", b'{"eventType": "' + EVENT_TYPES[topic].encode() + b'"}'):
                sent = await producer.send_and_wait(run.topic(topic), value, key=b"faults-poison:1", headers=headers)
                run.poison.append(Poison(run.topic(topic), sent.partition, sent.offset, consumers))
    finally:
        await producer.stop()
    run.note(f"{len(run.poison)} poison records")


async def republish(run: FaultRun, topic: str, *, sample: int | None = None) -> None:
    """Copies of committed records, newest first: what a redelivery after a lost commit looks like,
    and older events arriving after newer ones."""
    records = await read_all(run.kafka.bootstrap, run.topic(topic))
    records = [r for r in records if r.key != b"faults-poison:1"]
    if sample is not None and len(records) > sample:
        records = random.Random(17).sample(records, sample)
    records.sort(key=lambda r: r.timestamp, reverse=True)
    producer = AIOKafkaProducer(bootstrap_servers=run.kafka.bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for record in records:
            await producer.send(run.topic(topic), record.value, key=record.key, headers=list(record.headers))
        await producer.flush()
    finally:
        await producer.stop()
    run.republished[topic] += len(records)
    run.note(f"{len(records)} {topic} records re-published, newest first")


async def await_warm_up_mail(run: FaultRun, warm_ups: dict[str, str], within: float = 90.0) -> None:
    """Every tenant's warm-up alert mailed: the contacts are in place and the pipeline works."""
    deadline = time.monotonic() + within
    while True:
        missing = sorted(t for t in warm_ups if not run.smtp.mail.for_tenant(t, "alert"))
        if not missing:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"warm-up alerts not mailed within {within} s for {missing}: the pipeline never "
                                 "worked, so no fault could be judged")
        await asyncio.sleep(0.5)


async def set_up_senders(run: Any, api: Any, profiles: Sequence[Profile], run_id: str) -> list[TenantSender]:
    """One sender per tenant of ``run`` (the fault matrix's or the scale-out's), with ``profiles[i]``: each
    tenant's user key, contact and channels set up, the channels at the notifier, and a warm-up alert
    e-mailed, so the load starts on a system that delivers."""
    rng = random.Random(run_id)
    senders = []
    for tenant, profile in zip(run.tenants, profiles, strict=True):
        tenant.user_key = await create_key(run.postgres.database_url, tenant.tenant_id,
                                           Role.security_administrator, tenant.user)
        senders.append(TenantSender(api, tenant, profile, random.Random(rng.random()),
                                    f"http://127.0.0.1:{run.receiver.port}"))
    await asyncio.gather(*(s.setup() for s in senders))
    await await_channels_at_the_notifier(run)
    warm_ups = dict(zip([t.tenant_id for t in run.tenants],
                        await asyncio.gather(*(s.post_one_alert("warm-up") for s in senders)), strict=True))
    await await_warm_up_mail(run, warm_ups)
    return senders


async def run_fault_matrix(run: FaultRun, http: httpx.AsyncClient, run_id: str) -> FaultRun:
    """Setup, the load with the faults in turn, the end of the load. Returns ``run`` filled in."""
    api = WriteApi(http, run.services["ingest"].url, run.stats)
    profiles = [PROFILES[n % len(PROFILES)] for n in range(len(run.tenants))]
    senders = await set_up_senders(run, api, profiles, run_id)
    run.note("set up; load starts")

    stop = asyncio.Event()
    load_started = time.monotonic()
    tasks = [asyncio.create_task(s.run(stop), name=f"sender-{s.tenant.tenant_id}") for s in senders]
    try:
        await asyncio.sleep(6)
        for name in SERVICES:
            await kill_and_restart(run, name)
            await asyncio.sleep(4)
        await await_notifier_caught_up(run)
        await outage(run, "kafka", run.kafka.stop, run.kafka.start, api=api)
        await asyncio.sleep(5)
        await outage(run, "postgres", run.postgres.kill, run.postgres.start)
        await asyncio.sleep(5)
        run.note("redis FLUSHALL")
        run.redis.flushall()
        await asyncio.sleep(4)
        await outage(run, "redis", run.redis.kill, run.redis.start)
        await asyncio.sleep(4)
        await put_poison(run)
        await republish(run, "alerts", sample=300)
        await republish(run, "requirement-status")
        await republish(run, "alert-response-times", sample=300)
        await republish(run, "deliveries", sample=300)
        await asyncio.sleep(6)
    finally:
        stop.set()
        api.hard_deadline = time.monotonic() + DRAIN_SECONDS
        await asyncio.gather(*tasks, return_exceptions=True)
    run.load_seconds = round(time.monotonic() - load_started, 1)
    run.note("load stopped")

    # The last contact of each tenant, then every contact event again, oldest last: the notifier must
    # keep mailing the newest contact. (What is not accepted is in the stats; the checks report it.)
    # Each step waits for the notifier: the contacts and the probes are on different topics, which a
    # consumer reads in no set order, so a probe sent before its contact arrived proves nothing.
    api.hard_deadline = float("inf")
    finals = {s.tenant.tenant_id: f"final@{s.tenant.tenant_id}.example" for s in senders}
    await asyncio.gather(*(s.change_contact(finals[s.tenant.tenant_id]) for s in senders), return_exceptions=True)
    run.contacts_not_at_the_notifier = await await_contacts_at_the_notifier(run, finals)
    await republish(run, "security-contacts")
    await await_group_caught_up(run, "notifier", "security-contacts")
    for sender in senders:
        try:
            run.probes[sender.tenant.tenant_id] = await sender.post_one_alert("probe")
        except (GaveUp, Refused):
            pass
    run.note("probe alerts posted")
    run.ended = time.monotonic()
    return run
