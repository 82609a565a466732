"""The whole system under load, each figure beside its baseline in the same run (issue #15's table);
writes the table, with the machine's details, to ``docs/benchmarks.md``.

The stack of ``bench/tools/stack.py`` (the four services as processes, as `make run` starts them, on a
database, topics and Redis keys of this run), then, one phase after another:

0. the CPU each process spends with no load;
1. ``GET /security-score`` on the read API with wrk (closed loop) beside a bare endpoint reading one
   Redis key, in interleaved rounds judged by the median ratio (``bench/tools/rounds.py``);
2. write → visible on the read API, one alert at a time (the idle baseline);
3. write → visible at a steady rate (open loop) while the pipeline carries it: p50 / p99; for both, the
   time split hop by hop (``bench/tools/hops.py``: the write API's relay, the read API; response time beside);
4. single-alert ``POST /alerts`` on the write API with wrk beside a bare endpoint awaiting one Kafka
   acknowledgement, in interleaved rounds, each write API run followed by a wait until every consumer
   group has drained: the median ratio, and CPU per 1,000 alerts, single posts; in the same rounds the
   write API again with the consumers of what it publishes (response time, the read API, the notifier)
   paused while wrk runs (SIGSTOP, caught up after): its own share, beside the same baseline;
5. the full pipeline: alerts in lists of 100 through the write API until every consumer group
   (response-time, scoring, notifier, ingest) has drained (lag 0) and every outbox is empty:
   alerts/s, and CPU per 1,000 alerts, lists of 100; meanwhile, while the lists are posted, an alert of
   one of ``BENCH_NOTIFY_TENANTS`` tenants with a security contact every ``BENCH_NOTIFY_INTERVAL`` s, each
   timed from its POST's 202 to its e-mail's arrival at the bench's SMTP server (``bench/tools/notified.py``),
   beside the same idle, one at a time (after 2);
6. accepting alerts in lists of 100: ``POST /alerts`` on the write API with wrk beside Prometheus
   Alertmanager (Debian's package, in memory) taking the same lists on ``POST /api/v2/alerts``, in
   interleaved rounds, each write API run followed by a wait until every consumer group has drained:
   alerts/s, the median ratio, and each side's CPU per 1,000 alerts while wrk ran; in the same rounds the
   write API again, for half as long, with its consumers paused (as in 4);
7. memory of each service (now and its peak) from /proc.

Each wait is bounded; a phase that did not finish reports what it reached. Sizes (environment):
``BENCH_WRK_SECONDS`` (8, each wrk run), ``BENCH_WRK_ROUNDS`` (3), ``BENCH_PIPELINE_ALERTS`` (20000),
``BENCH_RATE`` (200 alerts/s), ``BENCH_RATE_SECONDS`` (20), ``BENCH_IDLE_SAMPLES`` (40),
``BENCH_NOTIFY_IDLE_SAMPLES`` (10), ``BENCH_NOTIFY_INTERVAL`` (0.5 s), ``BENCH_NOTIFY_TENANTS`` (20),
``BENCH_DRAIN_SECONDS`` (150, the pipeline's wait), ``BENCH_SETTLE_SECONDS`` (60, the other phases'
wait for draining); ``BENCH_REPORT`` (docs/benchmarks.md; empty: no file).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bench.support import percentile
from bench.tools import machine
from bench.tools.hops import Hops, hops_cell
from bench.tools.lag import Drain, GroupLag, wait_drained
from bench.tools.notified import ALERTS_PER_TENANT, Notified
from bench.tools.procstat import Memory, Watched, cpu_snapshot
from bench.tools.rounds import BARE, REAL, Pair, Rounds, order
from bench.tools.stack import CONSUMER_GROUPS, KEY, REPO, Stack
from bench.tools.visibility import IN_FLIGHT, Visibility, one_at_a_time, open_loop
from bench.tools.wrk import ALERTMANAGER_LIST, GET_WITH_KEY, POST_ALERT, POST_ALERT_LIST, WrkResult, run_wrk

WRK_SECONDS = int(os.environ.get("BENCH_WRK_SECONDS", "8"))
WRK_ROUNDS = int(os.environ.get("BENCH_WRK_ROUNDS", "3"))
PIPELINE_ALERTS = int(os.environ.get("BENCH_PIPELINE_ALERTS", "20000"))
LIST_SIZE = 100
PIPELINE_SENDERS = 4
RATE = float(os.environ.get("BENCH_RATE", "200"))
RATE_SECONDS = float(os.environ.get("BENCH_RATE_SECONDS", "20"))
IDLE_SAMPLES = int(os.environ.get("BENCH_IDLE_SAMPLES", "40"))
NOTIFY_IDLE_SAMPLES = int(os.environ.get("BENCH_NOTIFY_IDLE_SAMPLES", "10"))
NOTIFY_INTERVAL = float(os.environ.get("BENCH_NOTIFY_INTERVAL", "0.5"))
NOTIFY_BURST_TENANTS = int(os.environ.get("BENCH_NOTIFY_TENANTS", "20"))
DRAIN_SECONDS = float(os.environ.get("BENCH_DRAIN_SECONDS", "150"))
SETTLE_SECONDS = float(os.environ.get("BENCH_SETTLE_SECONDS", "60"))
REPORT = os.environ.get("BENCH_REPORT", "docs/benchmarks.md")
# Phase 4's and 6's third side: the write API while the consumers of what it publishes are paused.
ALONE = "alone"
# Phase 6's: half as long (it accepts ~3 times as many alerts, and the pipeline takes them through after).
ALONE_LIST_SECONDS = max(1, WRK_SECONDS // 2)
# The processes that work while the consumers are paused (the names of ``Stack.watched``).
_ALONE_PROCESSES = ("ingest", "postgresql", "kafka broker (JVM)")
AUTH = {"Authorization": f"Bearer {KEY}"}

_started = time.monotonic()


def say(text: str) -> None:
    print(f"  [{time.monotonic() - _started:6.1f} s] {text}", flush=True)


def _alert(alert_id: str) -> dict:
    # Detected when sent, as a live feed's alerts are (see bench/tools/post_alert.lua).
    return {"id": alert_id, "displayName": "Unusual sign-in", "severity": "high", "status": "active",
            "detectedDateTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "isTest": "false",
            "customerTenantId": "c1",
            "affectedResources": [{"resourceId": "vm-1", "resourceType": "virtualMachine"}]}


def _per_thousand(before: dict[str, float], after: dict[str, float], alerts: int) -> dict[str, float]:
    # A name only after: a process or session that started during the phase, all its CPU spent in it.
    return {name: (after[name] - before.get(name, 0.0)) * 1000 / alerts if alerts else float("nan")
            for name in after}


async def _visible_count(stack: Stack, tenant: str) -> int:
    return await stack.pool.fetchval("SELECT count(*) FROM scoring.alert_response_times WHERE tenant_id = $1",
                                     tenant)


async def _idle_cpu(watched: list[Watched], seconds: float = 5) -> dict[str, float]:
    """CPU seconds per second each process spends with no load (timers, polls, heartbeats): part of every
    CPU figure per 1,000 alerts below, in proportion to the phase's length."""
    say(f"CPU while idle: {seconds:.0f} s with no load")
    before = cpu_snapshot(watched)
    await asyncio.sleep(seconds)
    after = cpu_snapshot(watched)
    return {name: (after[name] - before[name]) / seconds for name in after}


async def _interleaved(what: str, sides: dict[str, str], run: Callable[[str, int], Awaitable[WrkResult]],
                       seconds: dict[str, int] | None = None) -> dict[str, Rounds]:
    """WRK_ROUNDS rounds of ``run(side, round)`` for the baseline (``BARE``) and each measured side
    (``REAL``, and any other of ``sides``), taking turns going first (``bench/tools/rounds.py``); each
    measured side's rounds beside the baseline's run of the same round. ``sides`` names each in the
    progress lines, ``seconds`` the length of any side's wrk run that is not WRK_SECONDS."""
    measured = tuple(side for side in sides if side != BARE)
    rounds = {side: Rounds() for side in measured}
    for index in range(WRK_ROUNDS):
        done: dict[str, WrkResult] = {}
        for side in order(index, measured):
            say(f"{what}, round {index + 1} of {WRK_ROUNDS}: {sides[side]}, wrk "
                f"{(seconds or {}).get(side, WRK_SECONDS)} s, 32 connections")
            done[side] = await run(side, index)
        for side in measured:
            rounds[side].pairs.append(Pair(real=done[side], bare=done[BARE]))
    return rounds


async def _drained_after(stack: Stack, lag: GroupLag, alerts: int, within_seconds: float) -> Drain:
    """Wait (bounded) until the ``alerts`` just accepted have gone through every consumer group."""
    say(f"waiting until the {alerts} alerts have gone through every consumer group (at most {within_seconds:.0f} s)")
    drain = await wait_drained(lag, stack.outbox_waiting, within_seconds, say)
    say(f"{'drained' if drain.drained else 'NOT drained'} after {drain.seconds:.1f} s")
    return drain


@contextmanager
def _consumers_paused(stack: Stack) -> Iterator[None]:
    """The consumers of what the write API publishes (response time, the read API, the notifier) stopped
    where they stand (SIGSTOP) for the block, resumed after it: the write API, its relay, the broker and
    PostgreSQL run as ever, without the pipeline's work on the same cores."""
    consumers = [process for name, process in stack.services.items() if name != "ingest"]
    for process in consumers:
        process.pause()
    try:
        yield
    finally:
        for process in consumers:
            process.resume()


def _all_drained(drains: list[Drain]) -> Drain:
    """Rounds' drains as one: drained if each was, their time summed, the last one's lag and outbox."""
    return Drain(all(d.drained for d in drains), sum(d.seconds for d in drains), drains[-1].lag, drains[-1].outbox)


async def _read_phase(stack: Stack, client: httpx.AsyncClient) -> Rounds:
    tenant = f"bench-read-{uuid.uuid4().hex[:6]}"
    url = f"{stack.services['scoring'].url}/v1/tenants/{tenant}/security-score"
    deadline = time.monotonic() + 60
    while (response := await client.get(url, headers=AUTH)).status_code != 200:
        if time.monotonic() > deadline:
            raise RuntimeError(f"GET /security-score: {response.status_code} {response.text[:300]}")
        await asyncio.sleep(0.5)
    # The baseline answers the same body from one Redis key.
    await stack.redis.set(stack.baseline_key, response.content)
    bare_url = f"{stack.baselines['bare GET'].url}/v1/tenants/{tenant}/security-score"

    async def run(side: str, index: int) -> WrkResult:
        result = await run_wrk("bare GET (one Redis key)" if side == BARE else "read API GET /security-score",
                               bare_url if side == BARE else url, GET_WITH_KEY, [KEY], WRK_SECONDS)
        say(result.line().strip())
        return result

    rounds = (await _interleaved("GET /security-score",
                                 {BARE: "bare endpoint reading one Redis key", REAL: "read API"}, run))[REAL]
    say(f"GET /security-score: ratio {rounds.ratio:.2f} ({rounds.spread()})")
    return rounds


def _add(totals: dict[str, float], before: dict[str, float], after: dict[str, float]) -> None:
    # A name only after: a process or session that started during the run, all its CPU spent in it.
    for name in after:
        totals[name] = totals.get(name, 0.0) + after[name] - before.get(name, 0.0)


async def _post_phase(stack: Stack, lag: GroupLag, watched: list[Watched]) -> dict:
    """Rounds of wrk on the bare endpoint and on the write API; after the write API's, until every
    consumer group has drained, so the pipeline's work of one round does not slow the next. CPU per
    1,000 alerts: the write API's runs and their draining, summed over the rounds."""
    tenant = f"bench-post-{uuid.uuid4().hex[:6]}"
    alone_tenant = f"{tenant}-alone"
    tag = uuid.uuid4().hex[:8]
    bare_process = stack.baselines["bare POST"].watched()
    spent: dict[str, float] = {}  # CPU seconds of the write API's runs and their draining, by process
    database_spent: dict[str, float] = {}  # ...and of the database, by the service whose sessions spent it
    wrk_cpu = {REAL: 0.0, BARE: 0.0, ALONE: 0.0}  # the write API's and the bare endpoint's own, while wrk ran
    drains: list[Drain] = []
    alone_drains: list[Drain] = []

    async def bare(index: int) -> WrkResult:
        cpu = bare_process.cpu()
        result = await run_wrk("bare POST (one Kafka ack)", stack.baselines["bare POST"].url, POST_ALERT,
                               [tenant, KEY, f"bare-{tag}-{index}"], WRK_SECONDS)
        wrk_cpu[BARE] += bare_process.cpu() - cpu
        say(result.line().strip())
        return result

    async def write_api(index: int) -> WrkResult:
        before, database_before = cpu_snapshot(watched), await stack.database_cpu()
        result = await run_wrk("write API POST /alerts (single)", stack.services["ingest"].url, POST_ALERT,
                               [tenant, KEY, f"{tag}-{index}"], WRK_SECONDS)
        wrk_cpu[REAL] += cpu_snapshot(watched)["ingest"] - before["ingest"]
        say(result.line().strip())
        drains.append(await _drained_after(stack, lag, result.ok, SETTLE_SECONDS))
        _add(spent, before, cpu_snapshot(watched))
        _add(database_spent, database_before, await stack.database_cpu())
        return result

    async def write_api_alone(index: int) -> WrkResult:
        # The write API's own cost: the same posts while the consumers of what it publishes (response
        # time, the read API, the notifier) are paused, caught up after. In the run above they share the
        # two cores with it. Alerts of a tenant of their own: the counts above are the write API run's.
        with _consumers_paused(stack):
            cpu = cpu_snapshot(watched)["ingest"]
            result = await run_wrk("write API POST /alerts (single), consumers paused", stack.services["ingest"].url,
                                   POST_ALERT, [alone_tenant, KEY, f"{tag}-alone-{index}"], WRK_SECONDS)
            wrk_cpu[ALONE] += cpu_snapshot(watched)["ingest"] - cpu
        say(result.line().strip())
        alone_drains.append(await _drained_after(stack, lag, result.ok, SETTLE_SECONDS))
        return result

    runs = {BARE: bare, REAL: write_api, ALONE: write_api_alone}
    both = await _interleaved("POST /alerts, single alerts",
                              {BARE: "bare endpoint awaiting one Kafka ack", REAL: "write API",
                               ALONE: "write API, its consumers paused"},
                              lambda side, index: runs[side](index))
    rounds, alone = both[REAL], both[ALONE]
    accepted = rounds.real_ok
    bare_ok = sum(pair.bare.ok for pair in rounds.pairs)
    ingest_cpu, bare_cpu = wrk_cpu[REAL] * 1000 / accepted, wrk_cpu[BARE] * 1000 / bare_ok
    alone_cpu = wrk_cpu[ALONE] * 1000 / alone.real_ok if alone.real_ok else float("nan")
    say(f"POST /alerts: ratio {rounds.ratio:.2f} ({rounds.spread()}); its consumers paused: ratio {alone.ratio:.2f} "
        f"({alone.spread()}); CPU per 1,000 requests while wrk ran: bare endpoint {bare_cpu:.2f} s, write API "
        f"{ingest_cpu:.2f} s, write API with its consumers paused {alone_cpu:.2f} s")
    visible, alone_visible = await _visible_count(stack, tenant), await _visible_count(stack, alone_tenant)
    say(f"{visible} of {accepted} accepted alerts on the read API; consumers paused: {alone_visible} of "
        f"{alone.real_ok}")
    drain = _all_drained(drains)
    return {"rounds": rounds, "accepted": accepted, "drain": drain,
            "cpu": _per_thousand({}, spent, accepted), "database_cpu": _per_thousand({}, database_spent, accepted),
            "visible": visible, "wrk_cpu": (ingest_cpu, bare_cpu, alone_cpu),
            "seconds": sum(pair.real.seconds for pair in rounds.pairs) + drain.seconds,
            "alone": alone, "alone_drain": _all_drained(alone_drains), "alone_visible": alone_visible}


async def _accept_phase(stack: Stack, lag: GroupLag, watched: list[Watched]) -> dict:
    """Rounds of wrk posting lists of LIST_SIZE new alerts: to Alertmanager (in memory) and to the write API
    (each alert in PostgreSQL, each event acknowledged by the broker, before the answer); after the write
    API's, until every consumer group has drained, so the pipeline's work of one round does not slow the
    next. In the same rounds, the write API again with its consumers paused (``_consumers_paused``), for
    half as long: what it accepts with the two cores to itself, PostgreSQL and the broker. Alerts per
    second; CPU per 1,000 alerts of the write API and of Alertmanager while wrk ran (paused: of the write
    API, PostgreSQL and the broker)."""
    tenant = f"bench-accept-{uuid.uuid4().hex[:6]}"
    tag = uuid.uuid4().hex[:8]
    alertmanager = stack.baselines["alertmanager"]
    alertmanager_process, ingest = alertmanager.watched(), next(w for w in watched if w.name == "ingest")
    wrk_cpu = {REAL: 0.0, BARE: 0.0}
    alone_spent: dict[str, float] = {}  # CPU seconds by process while the paused runs' wrk ran
    drains: list[Drain] = []
    alone_drains: list[Drain] = []

    async def baseline(index: int) -> WrkResult:
        cpu = alertmanager_process.cpu()
        result = await run_wrk(f"Alertmanager POST /api/v2/alerts ({LIST_SIZE} a list)", alertmanager.url,
                               ALERTMANAGER_LIST, [f"am-{tag}-{index}", str(LIST_SIZE)], WRK_SECONDS)
        wrk_cpu[BARE] += alertmanager_process.cpu() - cpu
        say(result.line().strip())
        return result

    async def write_api(index: int) -> WrkResult:
        cpu = ingest.cpu()
        result = await run_wrk(f"write API POST /alerts ({LIST_SIZE} a list)", stack.services["ingest"].url,
                               POST_ALERT_LIST, [tenant, KEY, f"{tag}-{index}", str(LIST_SIZE)], WRK_SECONDS)
        wrk_cpu[REAL] += ingest.cpu() - cpu
        say(result.line().strip())
        drains.append(await _drained_after(stack, lag, result.ok * LIST_SIZE, DRAIN_SECONDS))
        return result

    async def write_api_alone(index: int) -> WrkResult:
        # Half as long: it accepts about three times as many alerts as with its consumers running, and the
        # pipeline takes them through after (~20 s at the default length) before the next run.
        with _consumers_paused(stack):
            before = cpu_snapshot(watched)
            result = await run_wrk(f"write API POST /alerts ({LIST_SIZE} a list), consumers paused",
                                   stack.services["ingest"].url, POST_ALERT_LIST,
                                   [tenant, KEY, f"{tag}-alone-{index}", str(LIST_SIZE)], ALONE_LIST_SECONDS)
            _add(alone_spent, before, cpu_snapshot(watched))
        say(result.line().strip())
        alone_drains.append(await _drained_after(stack, lag, result.ok * LIST_SIZE, DRAIN_SECONDS))
        return result

    runs = {BARE: baseline, REAL: write_api, ALONE: write_api_alone}
    both = await _interleaved(f"POST lists of {LIST_SIZE} alerts",
                              {BARE: "Alertmanager (in memory)", REAL: "write API",
                               ALONE: "write API, its consumers paused"},
                              lambda side, index: runs[side](index), {ALONE: ALONE_LIST_SECONDS})
    rounds, alone = both[REAL], both[ALONE]
    accepted = rounds.real_ok * LIST_SIZE
    baseline_accepted = sum(pair.bare.ok for pair in rounds.pairs) * LIST_SIZE
    cpu = (wrk_cpu[REAL] * 1000 / accepted if accepted else float("nan"),
           wrk_cpu[BARE] * 1000 / baseline_accepted if baseline_accepted else float("nan"))
    alone_cpu = _per_thousand({}, alone_spent, alone.real_ok * LIST_SIZE)
    say(f"lists of {LIST_SIZE}: ratio {rounds.ratio:.2f} ({rounds.spread()}); its consumers paused: ratio "
        f"{alone.ratio:.2f} ({alone.spread()}); CPU per 1,000 alerts while wrk ran: write API {cpu[0]:.3f} s, "
        f"Alertmanager {cpu[1]:.3f} s; consumers paused: " + ", ".join(
            f"{name} {alone_cpu.get(name, 0.0):.3f} s" for name in _ALONE_PROCESSES))
    return {"rounds": rounds, "accepted": accepted, "drain": _all_drained(drains), "wrk_cpu": cpu,
            "version": await alertmanager.version(), "alertmanager_memory": alertmanager_process.memory(),
            "alone": alone, "alone_drain": _all_drained(alone_drains), "alone_cpu": alone_cpu}


async def _notified_idle(stack: Stack, client: httpx.AsyncClient) -> Notified:
    notified = _notified(stack, client)
    say(f"alert → its e-mail to the security contact, idle: {NOTIFY_IDLE_SAMPLES} alerts one at a time")
    await notified.prepare(-(-NOTIFY_IDLE_SAMPLES // ALERTS_PER_TENANT), SETTLE_SECONDS)
    await notified.one_at_a_time(NOTIFY_IDLE_SAMPLES, SETTLE_SECONDS)
    _notified_line("idle", notified)
    return notified


def _notified(stack: Stack, client: httpx.AsyncClient) -> Notified:
    return Notified(client, stack.services["ingest"].url, stack.mail.mailbox, AUTH, _alert)


def _notified_line(name: str, notified: Notified) -> None:
    say(f"{name}: {notified.sent} alerts; POST's 202 → e-mail {_notified_cell(notified)}")


async def _pipeline_phase(stack: Stack, lag: GroupLag, watched: list[Watched], client: httpx.AsyncClient) -> dict:
    tenant = f"bench-pipeline-{uuid.uuid4().hex[:6]}"
    tag = uuid.uuid4().hex[:8]
    requests = PIPELINE_ALERTS // LIST_SIZE
    bodies = iter(range(requests))
    url = f"{stack.services['ingest'].url}/v1/tenants/{tenant}/alerts"
    accepted = 0

    async def sender() -> None:
        nonlocal accepted
        for n in bodies:
            body = {"value": [_alert(f"{tag}-{n}-{i}") for i in range(LIST_SIZE)]}
            response = await client.post(url, json=body, headers=AUTH)
            if response.status_code != 202:
                raise RuntimeError(f"pipeline POST: {response.status_code} {response.text[:300]}")
            accepted += response.json()["accepted"]

    say(f"full pipeline: {PIPELINE_ALERTS} alerts in lists of {LIST_SIZE}, {PIPELINE_SENDERS} concurrent senders")
    notified = _notified(stack, client)
    await notified.prepare(NOTIFY_BURST_TENANTS, SETTLE_SECONDS)
    say(f"meanwhile, an alert of a tenant with a security contact every {NOTIFY_INTERVAL:.1f} s while the alerts "
        f"are posted ({NOTIFY_BURST_TENANTS} tenants, {ALERTS_PER_TENANT} alerts each at most), each timed to its "
        "e-mail")
    before, database_before = cpu_snapshot(watched), await stack.database_cpu()
    started = time.perf_counter()
    stop_notifying = asyncio.Event()
    notifying = asyncio.create_task(notified.every(NOTIFY_INTERVAL, stop_notifying, DRAIN_SECONDS))
    await asyncio.gather(*(sender() for _ in range(PIPELINE_SENDERS)))
    stop_notifying.set()
    posted_seconds = time.perf_counter() - started
    say(f"{accepted} alerts accepted in {posted_seconds:.1f} s ({accepted / posted_seconds:.0f}/s); "
        f"waiting until every consumer group has drained (at most {DRAIN_SECONDS:.0f} s)")
    drain = await wait_drained(lag, stack.outbox_waiting, DRAIN_SECONDS, say)
    seconds = time.perf_counter() - started
    await notifying
    _notified_line("during the burst", notified)
    after, database_after = cpu_snapshot(watched), await stack.database_cpu()
    visible = await _visible_count(stack, tenant)
    reached = f"{accepted / seconds:.0f} alerts/s" if drain.drained else "no rate (it did not drain)"
    say(f"{'drained' if drain.drained else 'NOT drained'} {seconds:.1f} s after the first post: "
        f"{reached}; {visible} of {accepted} alerts on the read API")
    return {"accepted": accepted, "posted_seconds": posted_seconds, "seconds": seconds, "drain": drain,
            "cpu": _per_thousand(before, after, accepted),
            "database_cpu": _per_thousand(database_before, database_after, accepted), "visible": visible,
            "notified": notified}


def _probe(stack: Stack) -> Visibility:
    return Visibility(stack.pool, stack.services["ingest"].url, stack.services["scoring"].url,
                      f"bench-visible-{uuid.uuid4().hex[:6]}", AUTH)


def _visibility_line(name: str, probe: Visibility) -> None:
    samples = list(probe.visible_ms.values())
    say(f"{name}: {len(samples)} visible, {probe.pending} not visible, {probe.post_errors} POST errors; "
        f"p50 {percentile(samples, 50):.1f} ms, p99 {percentile(samples, 99):.1f} ms")


def _hops(stack: Stack, probe: Visibility) -> Hops:
    return Hops(stack.bootstrap, stack.topic_prefix, probe.tenant)


def _hops_line(name: str, hops: dict[str, list[float]]) -> None:
    say(f"{name}, hop by hop: {hops_cell(hops)}")


async def _idle_visibility(stack: Stack) -> tuple[Visibility, dict[str, list[float]]]:
    probe = _probe(stack)
    say(f"write → visible, idle: {IDLE_SAMPLES} alerts one at a time")
    async with _hops(stack, probe) as hops:
        watcher = asyncio.create_task(probe.watch())
        try:
            await probe.ready()
            await one_at_a_time(probe, IDLE_SAMPLES, uuid.uuid4().hex[:8])
        finally:
            watcher.cancel()
            probe.close()
        await hops.settle()
    _visibility_line("idle", probe)
    split = hops.split(probe.answered, probe.visible_ms)
    _hops_line("idle", split)
    return probe, split


async def _steady_visibility(stack: Stack, lag: GroupLag) -> dict:
    probe = _probe(stack)
    say(f"write → visible at a steady {RATE:.0f} alerts/s for {RATE_SECONDS:.0f} s (open loop)")
    async with _hops(stack, probe) as hops:
        watcher = asyncio.create_task(probe.watch())
        own_before = time.process_time()
        try:
            await probe.ready()
            steady = await open_loop(probe, RATE, RATE_SECONDS, uuid.uuid4().hex[:8])
            say(f"sent {steady.sent} at {steady.offered_rate:.0f}/s (the generator late by {steady.late_p99_ms:.1f} "
                f"ms at p99); waiting until all are visible (at most {SETTLE_SECONDS:.0f} s)")
            await probe.until_visible(SETTLE_SECONDS)
        finally:
            watcher.cancel()
            probe.close()
        generator_cpu = time.process_time() - own_before
        await hops.settle()
    _visibility_line("steady", probe)
    split = hops.split(probe.answered, probe.visible_ms)
    _hops_line("steady", split)
    drain = await wait_drained(lag, stack.outbox_waiting, SETTLE_SECONDS, say)
    say(f"{'drained' if drain.drained else 'NOT drained'} {drain.seconds:.1f} s after the last was visible")
    return {"probe": probe, "steady": steady, "generator_cpu": generator_cpu, "drain": drain, "hops": split}


async def main() -> None:
    global _started
    _started = time.monotonic()
    details = await machine.describe()
    say("starting the stack (four services as processes, three baselines) on a database, topics and Redis "
        "keys of this run")
    async with Stack() as stack:
        say(f"ready: run {stack.run}; logs in {stack.logs.relative_to(REPO)}")
        details.update(await machine.describe_stack(stack))
        watched = stack.watched()
        async with GroupLag(stack.bootstrap, stack.topic_prefix, CONSUMER_GROUPS) as lag, \
                httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=2 * IN_FLIGHT)) as client:
            members = await lag.members()
            say("consumer groups: " + ", ".join(f"{g} {n} member(s)" for g, n in members.items()))
            idle_cpu = await _idle_cpu(watched)
            read = await _read_phase(stack, client)
            idle, idle_hops = await _idle_visibility(stack)
            notified_idle = await _notified_idle(stack, client)
            # Each phase waits (bounded) until the last has drained; the pipeline, the longest, goes last.
            steady = await _steady_visibility(stack, lag)
            post = await _post_phase(stack, lag, watched)
            pipeline = await _pipeline_phase(stack, lag, watched, client)
            # Last: its ~50,000 alerts (and the vacuum and checkpoint they bring) slowed a pipeline run after
            # it (PostgreSQL 0.80 s per 1,000 alerts, against 0.58 in runs without it).
            accept = await _accept_phase(stack, lag, watched)
        memory = {w.name: w.memory() for w in watched if w.whole_session}
        for name, used in memory.items():
            say(f"memory {name}: RSS {used.rss_mb:.0f} MB now, {used.peak_rss_mb:.0f} MB at its peak")
    details["load after"] = machine.loadavg()
    figures = {"read": read, "post": post, "accept": accept, "pipeline": pipeline,
               "idle": idle, "idle_hops": idle_hops, "notified_idle": notified_idle, "steady": steady,
               "memory": memory,
               "idle_cpu": idle_cpu, "services": list(stack.services)}
    table, notes = report_table(figures), report_notes(figures)
    print("\n" + table + "\n\n" + notes + "\n", flush=True)
    if REPORT:
        path = REPO / REPORT
        path.write_text(machine.document(table, notes, details, sizes()), encoding="utf-8")
        say(f"written to {Path(REPORT)}")


def sizes() -> str:
    return (f"wrk {WRK_ROUNDS} rounds of {WRK_SECONDS} s per endpoint and baseline, 32 connections, 2 threads; "
            f"pipeline {PIPELINE_ALERTS} alerts in "
            f"lists of {LIST_SIZE} from {PIPELINE_SENDERS} concurrent senders; steady {RATE:.0f} alerts/s for "
            f"{RATE_SECONDS:.0f} s; idle {IDLE_SAMPLES} alerts one at a time; e-mail to the contact: idle "
            f"{NOTIFY_IDLE_SAMPLES} alerts one at a time, during the pipeline one every {NOTIFY_INTERVAL:.1f} s; "
            "waits for draining at most "
            f"{SETTLE_SECONDS:.0f} s (the pipeline's {DRAIN_SECONDS:.0f} s)")


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def _drained(drain: Drain) -> str:
    if drain.drained:
        return f"drained in {drain.seconds:.1f} s"
    return (f"**not drained** after {drain.seconds:.0f} s: lag " + ", ".join(f"{g} {n}" for g, n in drain.lag.items())
            + f"; outbox {drain.outbox}")


def _wrk_cell(rounds: Rounds, side: str) -> str:
    """The figures of the round of the median ratio, and the errors of every round."""
    result: WrkResult = getattr(rounds.middle, side)
    status_errors, socket_errors = rounds.errors(side)
    errors = f"; **{status_errors} non-2xx, {socket_errors} socket errors in all rounds**" if (
        status_errors or socket_errors) else ""
    return f"{result.rate:,.0f}/s (p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms{errors})"


def _alerts_cell(rounds: Rounds, side: str) -> str:
    """Alerts per second (LIST_SIZE a request) of the median round's run of ``side``, its latency per list."""
    result = getattr(rounds.middle, side)
    status_errors, socket_errors = rounds.errors(side)
    errors = f"; **{status_errors} non-2xx, {socket_errors} socket errors**" if status_errors or socket_errors else ""
    return (f"{result.rate * LIST_SIZE:,.0f}/s (a list: p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms)"
            f"{errors}")


def _ratio_cell(rounds: Rounds) -> str:
    return f"{rounds.ratio:.2f} ({rounds.spread()})"


def _notified_cell(notified: Notified) -> str:
    ms = [s * 1000 for s in notified.seconds]
    problems = [f"{notified.missing} never came" if notified.missing else "",
                f"{notified.post_errors} POST errors" if notified.post_errors else "",
                f"{notified.not_sent} not sent: every tenant had taken its alerts" if notified.not_sent else "",
                f"{notified.unready} of {len(notified.tenants)} tenants' first e-mail never came" if notified.unready
                else ""]
    problem = "; **" + ", ".join(p for p in problems if p) + "**" if any(problems) else ""
    most = max(ms, default=float("nan"))
    return (f"p50 {percentile(ms, 50):,.0f} ms, p99 {percentile(ms, 99):,.0f} ms, max {most:,.0f} ms "
            f"({len(ms)} e-mails){problem}")


def _notified_row(idle: Notified, pipeline: dict) -> str:
    burst: Notified = pipeline["notified"]
    return (f"| an alert → its e-mail to the security contact (the bench's SMTP server), while the pipeline's "
            f"{pipeline['accepted']:,} alerts of another tenant are posted (one alert every {NOTIFY_INTERVAL:.1f} s, "
            f"open loop, spread over tenants below the storm threshold) | {_notified_cell(burst)} | "
            f"idle, one at a time: {_notified_cell(idle)} | | "
            f"none set (the issue: a burst of 50,000 alerts delayed notifications by minutes) | |")


def report_table(figures: dict) -> str:
    read: Rounds = figures["read"]
    post, pipeline, idle, steady = figures["post"], figures["pipeline"], figures["idle"], figures["steady"]
    accept = figures["accept"]
    rows = ["| what | this run | baseline in the same run | ratio | goal | met |", "|---|---|---|---|---|---|"]
    posts: Rounds = post["rounds"]
    rows.append(f"| single-alert POST /alerts (wrk) | {_wrk_cell(posts, REAL)} | bare FastAPI endpoint awaiting one "
                f"Kafka ack: {_wrk_cell(posts, BARE)} | {_ratio_cell(posts)} | ≥ 0.5 of the baseline | "
                f"{_met(posts.ratio >= 0.5)} |")
    alone: Rounds = post["alone"]
    lost = (f"; **{alone.real_ok - post['alone_visible']:,} of {alone.real_ok:,} not on the read API**"
            if post["alone_visible"] < alone.real_ok else "")
    rows.append(f"| single-alert POST /alerts (wrk), its consumers paused: the same posts while response time, the "
                f"read API and the notifier are stopped (SIGSTOP; they catch up after) | {_wrk_cell(alone, REAL)}"
                f"{lost} | the same bare endpoint: {_wrk_cell(alone, BARE)} | {_ratio_cell(alone)} | "
                f"none: how much of the gap above is the write API's own | |")
    rows.append(f"| GET /security-score (wrk) | {_wrk_cell(read, REAL)} | bare endpoint reading one Redis key: "
                f"{_wrk_cell(read, BARE)} | {_ratio_cell(read)} | ≥ 0.7 | {_met(read.ratio >= 0.7)} |")
    lists: Rounds = accept["rounds"]
    rows.append(f"| POST /alerts, lists of {LIST_SIZE} new alerts (wrk): alerts accepted | "
                f"{_alerts_cell(lists, REAL)} | {accept['version']} (Debian's), POST /api/v2/alerts, lists of "
                f"{LIST_SIZE}, in memory: {_alerts_cell(lists, BARE)} | {_ratio_cell(lists)} | ≥ 1 (match it) | "
                f"{_met(lists.ratio >= 1)} |")
    alone_lists: Rounds = accept["alone"]
    rows.append(f"| POST /alerts, lists of {LIST_SIZE} new alerts (wrk), its consumers paused: the same lists, for "
                f"half as long, while response time, the read API and the notifier are stopped (SIGSTOP; they catch "
                f"up after) | {_alerts_cell(alone_lists, REAL)} | the same Alertmanager: "
                f"{_alerts_cell(alone_lists, BARE)} | {_ratio_cell(alone_lists)} | none: how much of the gap above "
                f"is the write API's own | |")
    rate = pipeline["accepted"] / pipeline["seconds"]
    # Not drained: no rate; what was reached is the lag left and the alerts the read API shows.
    reached = f"{rate:,.0f} alerts/s" if pipeline["drain"].drained else "no rate"
    rows.append(f"| full pipeline, {pipeline['accepted']:,} alerts in lists of {LIST_SIZE} until every consumer "
                f"group has drained | {reached} ({_drained(pipeline['drain'])}; accepted in "
                f"{pipeline['posted_seconds']:.1f} s; {pipeline['visible']:,} on the read API) | | | "
                f"≥ 2,000 alerts/s | {_met(pipeline['drain'].drained and rate >= 2000)} |")
    probe, generator = steady["probe"], steady["steady"]
    samples, idle_samples = list(probe.visible_ms.values()), list(idle.visible_ms.values())
    p99 = percentile(samples, 99)
    missing = f"; **{probe.pending} never visible**" if probe.pending else ""
    errors = f"; **{probe.post_errors} POST errors**" if probe.post_errors else ""
    rows.append(f"| write → visible on the read API at a steady {RATE:.0f} single alerts/s (open loop: "
                f"{generator.sent} of {int(RATE * RATE_SECONDS)} alerts offered at {generator.offered_rate:.0f}/s, "
                f"sent late by {generator.late_p99_ms:.0f} ms at p99) | p50 {percentile(samples, 50):.0f} ms, "
                f"p99 {p99:.0f} ms{missing}{errors} | idle, one at a time: p50 {percentile(idle_samples, 50):.0f} ms, "
                f"p99 {percentile(idle_samples, 99):.0f} ms | | p99 ≤ 250 ms | "
                f"{_met(p99 <= 250 and not probe.pending and not probe.post_errors)} |")
    rows.append(_notified_row(figures["notified_idle"], pipeline))
    lists, singles = pipeline["cpu"], post["cpu"]
    cells = [f"{name} {lists[name]:.2f} / {singles[name]:.2f} s" for name in lists]
    total_lists, total_singles = sum(lists.values()), sum(singles.values())
    cells.append(f"all {total_lists:.2f} / {total_singles:.2f} s")
    # Until drained, the processes had work left: what they spent so far is a lower bound.
    phases = (("lists of 100", pipeline), ("single posts", post))
    bounds = [f"{name} not drained: a lower bound" for name, phase in phases if not phase["drain"].drained]
    bound_note = f" (**{'; '.join(bounds)}**)" if bounds else ""
    # "In all": read as in every process (the table gives one figure per process), and shown
    # together as well.
    drained = pipeline["drain"].drained
    services = [lists[name] for name in figures["services"]]
    rows.append(f"| CPU per 1,000 alerts (lists of 100 / single posts) | {'; '.join(cells)}{bound_note} | | | ≤ 1 s in "
                f"all, lists of 100 | each service: {_met(max(services) <= 1 and drained)}; all together (broker, "
                f"database and Redis included): {_met(total_lists <= 1 and drained)} |")
    memory = figures["memory"]
    rows.append(f"| RSS per service (at the end; peak) | {'; '.join(_memory_cell(n, m) for n, m in memory.items())} "
                f"| | | ≤ 150 MB | {_memory_met(memory)} |")
    return "\n".join(rows)


def _memory_cell(name: str, used: Memory) -> str:
    if used.processes == 1:
        return f"{name} {used.rss_mb:.0f} MB (peak {used.peak_rss_mb:.0f})"
    # The write API's supervisor and its workers (INGEST_WORKERS, shared.service).
    return (f"{name} {used.rss_mb:.0f} MB in {used.processes} processes (peak {used.peak_rss_mb:.0f}; the largest "
            f"process's {used.largest_peak_mb:.0f})")


def _memory_met(memory: dict[str, Memory]) -> str:
    each_process = _met(all(m.largest_peak_mb <= 150 for m in memory.values()))
    over = [name for name, m in memory.items() if m.peak_rss_mb > 150]
    if not any(m.processes > 1 for m in memory.values()):
        return each_process
    services = f"{_met(not over)} ({', '.join(over)})" if over else _met(True)
    return f"each process: {each_process}; each service: {services}"


def _database_note(pipeline: dict, post: dict) -> list[str]:
    """PostgreSQL's CPU per 1,000 alerts split by the service whose sessions spent it (none: a server elsewhere)."""
    lists, singles = pipeline["database_cpu"], post["database_cpu"]
    if not lists:
        return []
    cells = [f"{name} {lists[name]:.2f} / {singles.get(name, 0.0):.2f} s" for name in sorted(lists)]
    rest = (pipeline["cpu"]["postgresql"] - sum(lists.values()), post["cpu"]["postgresql"] - sum(singles.values()))
    return [f"- PostgreSQL's CPU per 1,000 alerts (lists of 100 / single posts) by the service whose sessions "
            f"spent it (`pg_stat_activity.application_name`): {'; '.join(cells)}; the server's own processes "
            f"(WAL writer, checkpointer, autovacuum, statistics) and sessions that ended: {rest[0]:.2f} / "
            f"{rest[1]:.2f} s."]


def _accept_note(accept: dict) -> str:
    write_api, alertmanager = accept["wrk_cpu"]
    memory = accept["alertmanager_memory"]
    return (f"- Lists of {LIST_SIZE}: the write API's {accept['accepted']:,} accepted alerts (every round) "
            f"{_drained(accept['drain'])} in all, each round's after its wrk stopped. CPU per 1,000 alerts while "
            f"wrk ran: the write API {write_api:.3f} s (its process alone: PostgreSQL, the broker and the "
            f"consumers are not counted), Alertmanager {alertmanager:.3f} s; Alertmanager held them in "
            f"{memory.rss_mb:,.0f} MB at the end (peak {memory.peak_rss_mb:,.0f} MB). Its consumers paused: "
            f"{accept['alone'].real_ok * LIST_SIZE:,} accepted alerts (every round) "
            f"{_drained(accept['alone_drain'])} in all once the consumers were resumed; CPU per 1,000 alerts while "
            f"wrk ran: "
            + ", ".join(f"{name} {accept['alone_cpu'].get(name, 0.0):.3f} s" for name in _ALONE_PROCESSES)
            + f" (together {sum(accept['alone_cpu'].get(name, 0.0) for name in _ALONE_PROCESSES):.3f} s, beside "
            f"Alertmanager's {alertmanager:.3f} s).")


def report_notes(figures: dict) -> str:
    idle = ", ".join(f"{name} {rate:.3f}" for name, rate in figures["idle_cpu"].items())
    post, pipeline, steady = figures["post"], figures["pipeline"], figures["steady"]
    probe = steady["probe"]
    return "\n".join([
        f"- CPU while idle, before any load (CPU seconds per second): {idle}. The CPU figures per 1,000 alerts "
        f"include it for the phase's length: single posts {post['seconds']:.0f} s (the write API's wrk runs, "
        f"then draining after each), lists of 100 {pipeline['seconds']:.0f} s.",
        f"- Single posts: wrk's {post['accepted']:,} accepted alerts (every round) {_drained(post['drain'])} "
        f"in all, each round's after its wrk stopped; {post['visible']:,} alerts of that tenant on the read API (wrk "
        f"counts only the answers it got before it stopped). CPU per 1,000 requests while wrk ran: the write API "
        f"{post['wrk_cpu'][0]:.2f} s, the bare endpoint {post['wrk_cpu'][1]:.2f} s.",
        f"- Single posts, the consumers paused: wrk's {post['alone'].real_ok:,} accepted alerts (every round) "
        f"{_drained(post['alone_drain'])} in all once the consumers were resumed; {post['alone_visible']:,} of "
        f"that tenant on the read API. The write API's CPU per 1,000 requests while wrk ran: "
        f"{post['wrk_cpu'][2]:.2f} s. With the consumers running, the pipeline's work (response time, the "
        f"read API, the notifier, the broker and the database) shares the machine's cores with it.",
        *_database_note(pipeline, post),
        _accept_note(figures["accept"]),
        f"- Steady load: the last alert visible, every group {_drained(steady['drain'])}.",
        f"- Write → visible, hop by hop (`bench/tools/hops.py`: the POST's answer, the time each Kafka record was "
        f"made, the read API's 200): at the steady rate {hops_cell(steady['hops'])}; idle, one at a time "
        f"{hops_cell(figures['idle_hops'])}.",
        f"- The steady load's generator (this bench's process, Python) used {steady['generator_cpu']:.1f} CPU s "
        f"while sending and watching (bare HTTP/1.1 on asyncio streams, `bench/tools/rawhttp.py`); "
        f"{probe.read_errors} reads failed and were asked again; the change stream told {probe.hints:,} alert "
        f"changes, the fallback query found {probe.found_by_fallback} alert(s) the stream had not told in time.",
    ])
