"""Scale-out (#16): two instances of every service in their consumer groups on the local broker, one of
each SIGKILLed under load; nothing is lost, nothing doubled, and the survivor takes the partitions.

Runs once for the module (like the fault matrix, whose senders, recomputation and checks it reuses),
on the shared Kafka and PostgreSQL with topics, consumer groups, a database and Redis keys of its own:
nothing here stops a dependency, so nothing needs a private one.

Timeline (about a minute and a half in all):
  instances ``a`` and ``b`` of ingest, response-time, scoring and notifier (each of the four consumes:
  ingest reads ``deliveries``) · six tenants set up, a warm-up alert each mailed · both instances in
  every group, each holding partitions of every topic its service reads · the load starts (the write
  API's senders spread over both ingest instances, as a load balancer would) · after 8 s, with writes
  in flight back to back, of every service the instance whose outbox relay leads (the PostgreSQL
  advisory lock's holder) is SIGKILLed, all four at once · 25 s more of load on the survivors (the
  dead members' sessions end after 10 s, the groups rebalance, the survivors work through what the
  dead left) · the load stops.

Then the checks, each waiting for the system to settle up to one shared deadline: each group's
members are the survivor's consumers and hold every partition; one relay per schema led before the
kill and the survivor's leads after it; every alert on the read API once with its response time, the
figures and the score as recomputed; each alert mailed and posted once (a repeat only with the first
one's ids and only after the kill: the two live notifiers never sent one delivery twice); no event
published twice but by the killed relay; no group behind; every outbox empty.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncpg
import httpx
import pytest
import pytest_asyncio
from aiokafka.admin import AIOKafkaAdminClient

from shared.kafka import ensure_topics
from tests.faults.expected import ExpectedTenant
from tests.faults.load import LoadStats, WriteApi
from tests.faults.observe import (
    GroupMember,
    advisory_lock_ports,
    group_lag,
    group_members,
    pid_of_local_port,
    read_all,
    topic_partitions,
    wait_ready,
)
from tests.faults.scenario import (
    DRAIN_SECONDS,
    PROFILES,
    SERVICES,
    service_env,
    set_up_senders,
    writes_in_flight,
)
from tests.faults.test_fault_matrix import (
    MAX_REPEAT_SHARE,
    alert_problems,
    brief,
    delivery_problems,
    read_alerts,
    response_time_problems,
    score_problems,
    settled,
)
from tests.support.databases import migrated_database
from tests.support.infra import Infra
from tests.support.kafka import delete_topics_with_prefix
from tests.support.peers import Receiver, Smtp
from tests.support.processes import MODULES, REPO, ServiceProcess, free_port

pytestmark = [pytest.mark.faults, pytest.mark.timeout(330)]

ARTIFACTS = REPO / "test-artifacts" / "scale-out"  # ignored by git

INSTANCES = ("a", "b")
# Four tenants answering within minutes and two answering a day late: both sides of SPEC §3's 24 h.
SCALE_PROFILES = PROFILES[:4] + PROFILES[-2:]
LOAD_BEFORE_KILL_SECONDS = 8.0
# Longer than a dead member's session (aiokafka's default, 10 s) plus the rebalance: the survivors
# consume the partitions they took while the load still runs.
LOAD_AFTER_KILL_SECONDS = 25.0
GROUP_BOUND_SECONDS = 60.0
# Each service's outbox relay: the schema whose advisory lock (``outbox_<schema>``) elects it.
RELAY_SCHEMAS = {"ingest": "ingest", "response-time": "response_time", "scoring": "scoring", "notifier": "notifier"}
# A relay killed between a publish and its delete publishes that batch again after the kill (same event
# ids, dropped by every consumer); a first copy older than this before the kill was not in that batch.
REPUBLISH_WINDOW_SECONDS = 5.0


# The shared infrastructure as the scenario's helpers read it (an address each; nothing is stopped).
@dataclass(frozen=True)
class SharedKafka:
    bootstrap: str


@dataclass(frozen=True)
class SharedPostgres:
    database_url: str


@dataclass(frozen=True)
class SharedRedis:
    url: str


@dataclass
class ScaleRun:
    instances: dict[str, dict[str, ServiceProcess]]  # service -> instance -> process
    kafka: SharedKafka
    postgres: SharedPostgres
    prefix: str
    tenants: list[ExpectedTenant]
    stats: LoadStats
    smtp: Smtp
    receiver: Receiver
    killed: dict[str, str] = field(default_factory=dict)  # service -> the instance SIGKILLed
    killed_at: float = 0.0  # wall clock (the SMTP server's, the receiver's and the records' time stamps)
    kills_done_at: float = 0.0  # wall clock once the last of the four was gone
    killed_at_monotonic: float = 0.0
    leaders_before: dict[str, list[str]] = field(default_factory=dict)  # service -> instances leading its relay
    leaders_after: dict[str, list[str]] = field(default_factory=dict)
    members_before: dict[str, list[GroupMember]] = field(default_factory=dict)  # service -> its group's members
    members_after: dict[str, list[GroupMember]] = field(default_factory=dict)
    groups_settled_after: dict[str, float | None] = field(default_factory=dict)  # s from the kill
    timeline: list[tuple[float, str]] = field(default_factory=list)
    load_seconds: float = 0.0
    ended: float = 0.0  # monotonic time the load was over (settled() counts from it)

    def note(self, what: str) -> None:
        self.timeline.append((round(time.monotonic(), 1), what))

    def group(self, service: str) -> str:
        return f"{self.prefix}{service}"  # the default CONSUMER_GROUP: topic prefix + service

    def survivor_instance(self, service: str) -> str:
        return next(letter for letter in INSTANCES if letter != self.killed[service])

    def survivor(self, service: str) -> ServiceProcess:
        return self.instances[service][self.survivor_instance(service)]

    def live(self) -> dict[str, ServiceProcess]:
        return {f"{s}/{letter}": p for s, by in self.instances.items() for letter, p in by.items()
                if p.proc is not None and p.proc.poll() is None}


class BalancedWriteApi(WriteApi):
    """The write API behind a load balancer: each request goes to the next live ingest instance. A
    request cut by a kill is retried by the sender (a second later) and lands on the survivor."""

    def __init__(self, http: httpx.AsyncClient, instances: list[ServiceProcess], stats: LoadStats) -> None:
        self.instances = instances
        self._turn = itertools.count()
        super().__init__(http, instances[0].url, stats)

    @property
    def base_url(self) -> str:
        live = [p for p in self.instances if p.proc is not None and p.proc.poll() is None] or self.instances
        return live[next(self._turn) % len(live)].url

    @base_url.setter
    def base_url(self, value: str) -> None:
        pass  # WriteApi's constructor sets one URL; this one picks per request


# --- what the run observes ------------------------------------------------------------------------


async def relay_leaders(run: ScaleRun) -> dict[str, list[str]]:
    """Per service: which of its live instances holds its outbox relay's advisory lock (by the session's
    client port, traced to the process owning that socket)."""
    leaders = {}
    for service, schema in RELAY_SCHEMAS.items():
        pids = {p.proc.pid: letter for letter, p in run.instances[service].items()
                if p.proc is not None and p.proc.poll() is None}
        ports = await advisory_lock_ports(run.postgres.database_url, f"outbox_{schema}")
        leaders[service] = sorted(pids.get(pid_of_local_port(port, list(pids)), f"another process (port {port})")
                                  for port in ports)
    return leaders


def by_topic(members: list[GroupMember]) -> dict[str, list[GroupMember]]:
    topics: dict[str, list[GroupMember]] = defaultdict(list)
    for member in members:
        for topic in member.topics:
            topics[topic].append(member)
    return topics


async def await_groups(run: ScaleRun, consumers_per_topic: int,
                       within: float) -> tuple[dict[str, float | None], dict[str, list[GroupMember]]]:
    """Until every service's group is Stable with ``consumers_per_topic`` members on each topic it reads,
    each holding partitions. Returns the seconds it took per service (None: not within ``within``) and
    the members last seen."""
    started = time.monotonic()
    took: dict[str, float | None] = dict.fromkeys(SERVICES)
    seen: dict[str, list[GroupMember]] = {}
    while any(v is None for v in took.values()) and time.monotonic() - started < within:
        for service in [s for s, v in took.items() if v is None]:
            state, members = await group_members(run.kafka.bootstrap, run.group(service))
            seen[service] = members
            topics = by_topic(members)
            if (state == "Stable" and topics and all(len(m) == consumers_per_topic for m in topics.values())
                    and all(m.partitions for m in members)):
                took[service] = round(time.monotonic() - started, 1)
        await asyncio.sleep(0.5)
    return took, seen


async def await_survivors_leading(run: ScaleRun, within: float = 30.0) -> None:
    """A follower's relay tries to take the lead every 5 s: until each survivor's has."""
    deadline = time.monotonic() + within
    while True:
        run.leaders_after = await relay_leaders(run)
        if all(run.leaders_after[s] == [run.survivor_instance(s)] for s in SERVICES) or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.5)


# --- the run --------------------------------------------------------------------------------------


async def run_scale_out(run: ScaleRun, http: httpx.AsyncClient, run_id: str) -> None:
    api = BalancedWriteApi(http, list(run.instances["ingest"].values()), run.stats)
    senders = await set_up_senders(run, api, SCALE_PROFILES, run_id)
    joined, seen = await await_groups(run, consumers_per_topic=2, within=GROUP_BOUND_SECONDS)
    late = [s for s, after in joined.items() if after is None]
    assert not late, f"both instances not in the groups of {late}: {seen}"
    run.note("set up, both instances of every service in its group; load starts")

    stop = asyncio.Event()
    load_started = time.monotonic()
    tasks = [asyncio.create_task(s.run(stop), name=f"sender-{s.tenant.tenant_id}") for s in senders]
    try:
        await asyncio.sleep(LOAD_BEFORE_KILL_SECONDS)
        # Writes back to back besides the senders' pace, so some are on their way to the ingest
        # instance killed (its senders retry them on the survivor, as through a load balancer).
        in_flight_until = asyncio.Event()
        tasks.append(asyncio.create_task(writes_in_flight(run, api, in_flight_until)))
        run.leaders_before = await relay_leaders(run)
        for service in SERVICES:
            _, run.members_before[service] = await group_members(run.kafka.bootstrap, run.group(service))
        for service in SERVICES:
            # The relay's leader if there is one of ours (the check on leaders_before says if not).
            leader = [letter for letter in run.leaders_before[service] if letter in INSTANCES]
            run.killed[service] = leader[0] if leader else INSTANCES[0]
        run.killed_at, run.killed_at_monotonic = time.time(), time.monotonic()
        for service in SERVICES:
            run.instances[service][run.killed[service]].kill()
        run.kills_done_at = time.time()
        in_flight_until.set()
        run.note(f"SIGKILL {run.killed} (relay leaders before: {run.leaders_before})")
        # Watched while the load goes on: how long each survivor takes to hold the group's partitions.
        settling = asyncio.create_task(await_groups(run, consumers_per_topic=1, within=GROUP_BOUND_SECONDS))
        tasks.append(settling)
        await asyncio.sleep(LOAD_AFTER_KILL_SECONDS)
    finally:
        stop.set()
        api.hard_deadline = time.monotonic() + DRAIN_SECONDS
        await asyncio.gather(*tasks, return_exceptions=True)
    run.load_seconds = round(time.monotonic() - load_started, 1)
    run.note("load stopped")
    run.groups_settled_after, _ = settling.result()
    run.note(f"groups of the survivors settled after (s from the kill): {run.groups_settled_after}")
    # Their members once the load is over (the checks read these): no later rebalance undid it.
    _, run.members_after = await await_groups(run, consumers_per_topic=1, within=15.0)
    await await_survivors_leading(run)
    run.note(f"relay leaders after the kill: {run.leaders_after}")
    run.ended = time.monotonic()


@pytest_asyncio.fixture(scope="module")
async def scale_run(infra: Infra, test_env: dict[str, str], make_service, smtp_server: Smtp, receiver: Receiver,
                    tmp_path_factory, request) -> AsyncIterator[ScaleRun]:
    run_id = uuid.uuid4().hex[:8]
    directory = tmp_path_factory.mktemp("scale-out")
    prefix = f"scale-{run_id}-"
    started = time.monotonic()
    instances: dict[str, dict[str, ServiceProcess]] = {s: {} for s in SERVICES}
    async with migrated_database(infra.database_url, f"csp_scale_{run_id}") as database_url:
        try:
            await ensure_topics(infra.kafka_bootstrap_servers, prefix)
            kafka, postgres = SharedKafka(infra.kafka_bootstrap_servers), SharedPostgres(database_url)
            env = {**service_env(kafka, postgres, SharedRedis(test_env["REDIS_URL"]), prefix, smtp_server, run_id),
                   "REDIS_KEY_PREFIX": f"scale-{run_id}:"}
            for service in SERVICES:
                for letter in INSTANCES:
                    process = make_service(service, **env, **{MODULES[service][1]: str(free_port())})
                    process.log_path = directory / f"{service}-{letter}.log"
                    instances[service][letter] = process.start(wait=False)
            everyone = {f"{s}/{letter}": p for s, by in instances.items() for letter, p in by.items()}
            ready = await wait_ready(everyone, 120)
            late = [n for n, after in ready.items() if after is None]
            assert not late, f"not ready within 120 s: {late}\n" + "\n".join(everyone[n].tail(1500) for n in late)
            tenants = [ExpectedTenant(f"scale-{run_id}-t{i}", hook_path=f"/scale/{run_id}/t{i}",
                                      routed_severities=profile.routed_severities,
                                      user=f"analyst-{i}@partner.example")
                       for i, profile in enumerate(SCALE_PROFILES)]
            run = ScaleRun(instances, kafka, postgres, prefix, tenants, LoadStats(), smtp_server, receiver)
            async with httpx.AsyncClient(timeout=30) as http:
                await run_scale_out(run, http, run_id)
            yield run
            report = summary(run, time.monotonic() - started)
            (directory / "report.txt").write_text(report)
            # Also where a run under pytest-xdist (whose workers' terminal output is not shown) leaves it.
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            (ARTIFACTS / "report.txt").write_text(report)
            reporter = request.config.pluginmanager.get_plugin("terminalreporter")
            capture = request.config.pluginmanager.get_plugin("capturemanager")
            if reporter is not None and capture is not None:
                with capture.global_and_fixture_disabled():  # shown whatever the outcome, as -s would
                    reporter.write_line(f"\nscale-out ({directory / 'report.txt'}):\n{report}")
        finally:
            # Before the database is dropped under them (make_service would stop them at the session's end).
            for by in instances.values():
                for process in by.values():
                    process.stop()
            await delete_topics_with_prefix(infra.kafka_bootstrap_servers, prefix)


# --- the checks -------------------------------------------------------------------------------------


def test_both_instances_held_partitions_of_every_topic_before_the_kill(scale_run: ScaleRun):
    """The kill took something away: each topic had a consumer of each instance, and the consumers that
    left the group (the killed instance's) held partitions of every topic of the service."""
    problems = []
    for service in SERVICES:
        before, after = scale_run.members_before[service], scale_run.members_after[service]
        gone = {m.member_id for m in before} - {m.member_id for m in after}
        for topic, members in sorted(by_topic(before).items()):
            held_by_gone = [m for m in members if m.member_id in gone and m.partitions]
            if len(members) != 2 or not held_by_gone:
                problems.append(f"{service} {topic}: {len(members)} consumers before the kill, "
                                f"{len(held_by_gone)} of the killed instance holding partitions")
    assert not problems, "\n".join(problems)


async def test_the_survivor_holds_every_partition_of_its_groups(scale_run: ScaleRun):
    """After the kill, each group's members are the survivor's consumers (the killed process is gone and
    nothing new joined), one per topic, and together they hold every partition."""
    assert all(after is not None for after in scale_run.groups_settled_after.values()), (
        f"groups not settled on one consumer per topic within {GROUP_BOUND_SECONDS} s of the kill: "
        f"{scale_run.groups_settled_after}")
    problems = []
    for service in SERVICES:
        before = {m.member_id for m in scale_run.members_before[service]}
        after = scale_run.members_after[service]
        # A survivor's consumer may rejoin under a new member id (its session lapsed while the machine was
        # busy): then it is no stranger; the count below (half the members before, one per topic of the
        # survivor) and the partitions held are what say the killed process left and nothing else joined.
        rejoined = [m.member_id for m in after if m.member_id not in before]
        if rejoined:
            print(f"{service}: rejoined under a new member id after the kill: {rejoined}")
        topics = by_topic(after)
        if crowded := {topic: len(members) for topic, members in topics.items() if len(members) != 1}:
            problems.append(f"{service}: not one consumer per topic after the kill: {crowded}")
        if len(after) * 2 != len(scale_run.members_before[service]):
            problems.append(f"{service}: {len(after)} members after the kill, "
                            f"{len(scale_run.members_before[service])} before")
        held = set().union(*(m.partitions for m in after))
        every = await topic_partitions(scale_run.kafka.bootstrap, sorted(topics))
        if held != every:
            problems.append(f"{service}: the survivor holds {len(held)} of {len(every)} partitions; "
                            f"missing {sorted(every - held)[:10]}")
    assert not problems, "\n".join(problems)


def test_one_relay_leads_per_schema_and_the_survivor_takes_over(scale_run: ScaleRun):
    """Two instances never publish one outbox at once: one advisory lock holder per schema before the
    kill (the instance killed), and the survivor's relay once its leader is gone."""
    expected_before = {s: [scale_run.killed[s]] for s in SERVICES}
    assert scale_run.leaders_before == expected_before, scale_run.leaders_before
    expected_after = {s: [scale_run.survivor_instance(s)] for s in SERVICES}
    assert scale_run.leaders_after == expected_after, scale_run.leaders_after


async def test_every_accepted_alert_is_on_the_read_api_once_with_its_response_time(scale_run: ScaleRun):
    read_url = scale_run.survivor("scoring").url

    async def check() -> list[str]:
        problems = []
        async with httpx.AsyncClient(timeout=30) as http:
            for tenant in scale_run.tenants:
                shown = await read_alerts(http, read_url, tenant.tenant_id)
                problems += (alert_problems(tenant, shown) if shown is not None
                             else [f"{tenant.tenant_id}: the read API answers 503"])
        return problems

    problems = await settled(scale_run, check)
    assert not problems, brief(problems)
    accepted = sum(len(t.alerts) for t in scale_run.tenants)
    assert accepted >= 10 * len(scale_run.tenants), f"only {accepted} alerts were accepted: too thin a load"


async def test_response_time_figures_are_the_average_of_what_was_answered(scale_run: ScaleRun):
    read_url = scale_run.survivor("scoring").url
    problems = await settled(scale_run, lambda: response_time_problems(read_url, scale_run.tenants))
    assert not problems, brief(problems)


async def test_the_score_of_every_tenant_is_the_formula_over_what_was_accepted(scale_run: ScaleRun):
    read_url = scale_run.survivor("scoring").url
    problems = await settled(scale_run, lambda: score_problems(read_url, scale_run.tenants))
    assert not problems, brief(problems)


def repeats_before_the_kill(run: ScaleRun) -> list[str]:
    """Deliveries that reached the SMTP server or the receiver more than once while both notifiers
    lived: a second copy before the kill is two live workers sending one delivery."""
    problems = []
    for tenant in run.tenants:
        for alert_id in tenant.alerts:
            times = sorted(run.smtp.mail.times(tenant.tenant_id, alert_id, "alert"))
            if len(times) > 1 and times[1] <= run.killed_at:
                problems.append(f"{tenant.tenant_id}/{alert_id}: e-mailed {len(times)} times, twice before the kill")
        calls: dict[str, list[float]] = defaultdict(list)
        for call in run.receiver.calls(tenant.hook_path):
            calls[call.headers.get("idempotency-key", "")].append(call.time)
        for key, times in calls.items():
            if len(times) > 1 and sorted(times)[1] <= run.killed_at:
                problems.append(f"{tenant.tenant_id}: webhook {key} posted {len(times)} times, twice before the kill")
    return problems


async def test_every_alert_is_mailed_and_posted_once_or_repeated_only_after_the_kill(scale_run: ScaleRun):
    """docs/guarantees.md: exactly one effective delivery per alert and channel; e-mail and webhooks at
    least once with stable ids, a repeat only when a notifier dies between the answer and its record
    (the matrix's rule, at most 2 %). With two notifiers, no repeat while both lived."""
    async def check() -> list[str]:
        problems, _ = delivery_problems(scale_run)
        return problems

    problems = await settled(scale_run, check)
    _, counts = delivery_problems(scale_run)
    assert not problems, f"{counts}\n{brief(problems)}"
    delivered = counts["emails"] + counts["webhooks"]
    assert counts["repeats"] <= MAX_REPEAT_SHARE * delivered, f"{counts['repeats']} repeats of {delivered}: {counts}"
    doubled = repeats_before_the_kill(scale_run)
    assert not doubled, brief(doubled)


async def test_no_event_is_published_twice_but_by_the_killed_relay(scale_run: ScaleRun):
    """One relay per schema: every event id is on its topic once, except a batch the killed leader had
    published and not yet deleted, which the survivor's relay publishes again after the kill."""
    problems = []
    for topic in await topics_of_the_run(scale_run):
        copies: dict[str, list[int]] = defaultdict(list)
        for record in await read_all(scale_run.kafka.bootstrap, topic):
            event_id = dict(record.headers).get("eventId")
            if event_id is not None:
                copies[event_id.decode()].append(record.timestamp / 1000)
        for event_id, stamps in copies.items():
            if len(stamps) == 1:
                continue
            first, *later = sorted(stamps)
            # The first copy from the killed leader (up to its own kill, the last of four at most), the
            # second from the survivor's relay after the kills began.
            republished = (len(later) == 1 and scale_run.killed_at - REPUBLISH_WINDOW_SECONDS <= first
                           <= scale_run.kills_done_at and later[0] > scale_run.killed_at)
            if not republished:
                problems.append(f"{topic}: event {event_id} published {len(stamps)} times, at "
                                f"{[round(s - scale_run.killed_at, 2) for s in sorted(stamps)]} s from the kill")
    assert not problems, brief(problems)


async def topics_of_the_run(run: ScaleRun) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=run.kafka.bootstrap)
    await admin.start()
    try:
        return sorted(t for t in await admin.list_topics() if t.startswith(run.prefix))
    finally:
        await admin.close()


async def test_no_consumer_group_is_left_behind(scale_run: ScaleRun):
    async def check() -> list[str]:
        problems = []
        for service in SERVICES:
            topics = sorted(by_topic(scale_run.members_after[service]))
            lag = await group_lag(scale_run.kafka.bootstrap, scale_run.group(service), topics)
            problems += [f"{service}: {n} records behind on {where}" for where, n in lag.items() if n]
        return problems

    problems = await settled(scale_run, check)
    assert not problems, brief(problems)


async def test_every_outbox_is_empty_once_settled(scale_run: ScaleRun):
    async def check() -> list[str]:
        conn = await asyncpg.connect(scale_run.postgres.database_url)
        try:
            counts = {schema: await conn.fetchval(f"SELECT count(*) FROM {schema}.outbox")
                      for schema in RELAY_SCHEMAS.values()}
        finally:
            await conn.close()
        return [f"{schema}: {n} events never published" for schema, n in counts.items() if n]

    problems = await settled(scale_run, check)
    assert not problems, brief(problems)


async def test_the_survivors_are_ready_and_the_killed_are_gone(scale_run: ScaleRun):
    live = scale_run.live()
    assert sorted(live) == sorted(f"{s}/{scale_run.survivor_instance(s)}" for s in SERVICES), sorted(live)
    ready = await wait_ready(live, 30)
    assert all(after is not None for after in ready.values()), ready


def test_the_load_went_on_through_the_kill_and_every_write_was_accepted(scale_run: ScaleRun):
    stats = scale_run.stats
    assert not stats.server_errors, brief(stats.server_errors)
    assert not stats.refused, brief(stats.refused)
    assert not stats.missing_retry_after, brief(stats.missing_retry_after)
    assert not stats.duplicates_not_counted, brief(stats.duplicates_not_counted)
    assert not stats.gave_up, brief(stats.gave_up)
    after_kill = Counter(status for at, status in stats.answers if at > scale_run.killed_at_monotonic)
    assert sum(n for status, n in after_kill.items() if 200 <= status < 300) >= 20, (
        f"answers after the kill: {dict(after_kill)}: the survivors took too little load to prove anything")


# --- the summary ------------------------------------------------------------------------------------


def summary(run: ScaleRun, seconds: float) -> str:
    stats = run.stats
    alerts = sum(len(t.alerts) for t in run.tenants)
    _, deliveries = delivery_problems(run)
    start = run.timeline[0][0] if run.timeline else 0.0
    return "\n".join([
        f"run {seconds:.0f} s, load {run.load_seconds} s; {len(run.tenants)} tenants, {alerts} alerts; "
        f"requests {stats.requests}, answers {dict(stats.statuses)}, connection errors {stats.connection_errors}",
        f"killed (the relay leaders): {run.killed}; groups of the survivors settled after (s): "
        f"{run.groups_settled_after}; relay leaders after: {run.leaders_after}",
        "group members before/after the kill: " + ", ".join(
            f"{s} {len(run.members_before.get(s, []))}/{len(run.members_after.get(s, []))}" for s in SERVICES),
        f"deliveries: {dict(deliveries)}",
        "timeline: " + "; ".join(f"+{at - start:.0f}s {what}" for at, what in run.timeline),
    ])
