"""The fault matrix (issue #17): every part killed, stopped or flushed under a steady load; afterwards,
what the system shows is checked against an independent recomputation from what was sent.

The scenario (``scenario.py``) runs once for the module, on a private Kafka, PostgreSQL and Redis
(the shared ones are never stopped); each test below checks one promise of docs/guarantees.md.
A check waits for the system to settle up to one shared deadline after the load, so a slow machine
delays the verdict, never changes it. A summary (outages, log rates, CPU, repeats) is printed at
the end of the run and written beside the services' logs.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest
import pytest_asyncio

from tests.faults.expected import ExpectedAlert, ExpectedTenant, hours, score
from tests.faults.load import OPERATOR, LoadStats
from tests.faults.observe import group_lag, read_all, wait_ready
from tests.faults.scenario import (
    CONSUMERS,
    DEPENDENTS,
    PROFILES,
    SERVICES,
    FaultRun,
    private_infrastructure,
    run_fault_matrix,
    service_env,
    start_infrastructure,
)
from tests.support.peers import Receiver, Smtp

pytestmark = [pytest.mark.faults, pytest.mark.timeout(480)]

# How long after the load the checks may wait, in all, for the system to settle.
SETTLE_SECONDS = 120.0
# Repeated deliveries (same Message-ID / Idempotency-Key) allowed, as a share of all deliveries.
MAX_REPEAT_SHARE = 0.02
# While a dependency is down: warnings and errors per second a service may log, on average over the
# outage (each kind of trouble once, then at most a line per kind every 10 s; a handful of kinds).
# INFO records are the normal work of what still runs, not the outage's noise.
MAX_WARNINGS_PER_SECOND = 1.0
# While the broker is down: CPU a service may burn waiting for it (cores, averaged over the outage).
MAX_OUTAGE_CPU_CORES = 0.25
# CPU a delivery (an e-mail or a webhook POST, its rows and its log line) may take, at most.
DELIVERY_CPU_SECONDS = 0.005
# The clocks of this process and the services are one machine's: a PATCH is stamped between the
# moment it left and the moment its answer came back, give or take this.
CLOCK_SLACK_SECONDS = 0.05


@pytest_asyncio.fixture(scope="module")
async def fault_run(make_service, smtp_server: Smtp, receiver: Receiver, tmp_path_factory,
                    request) -> AsyncIterator[FaultRun]:
    run_id = uuid.uuid4().hex[:8]
    directory = tmp_path_factory.mktemp("faults")
    prefix = f"faults-{run_id}-"
    started = time.monotonic()
    kafka, postgres, redis = private_infrastructure(directory)
    services = {}
    try:
        await start_infrastructure(kafka, postgres, redis, prefix)
        env = service_env(kafka, postgres, redis, prefix, smtp_server, run_id)
        for name in SERVICES:
            process = make_service(name, **env)
            # A log of its own: other tests' processes of the same name write to the session's logs.
            process.log_path = directory / f"{name}.log"
            services[name] = process.start(wait=False)
        ready = await wait_ready(services, 90)
        late = [n for n, after in ready.items() if after is None]
        assert not late, f"not ready within 90 s: {late}\n" + "\n".join(services[n].tail(1500) for n in late)
        tenants = [ExpectedTenant(f"faults-{run_id}-t{i}", hook_path=f"/faults/{run_id}/t{i}",
                                  routed_severities=profile.routed_severities, user=f"analyst-{i}@partner.example")
                   for i, profile in enumerate(PROFILES)]
        run = FaultRun(services, kafka, postgres, redis, prefix, tenants, LoadStats(), smtp_server, receiver)
        async with httpx.AsyncClient(timeout=30) as http:
            await run_fault_matrix(run, http, run_id)
        yield run
        report = summary(run, time.monotonic() - started)
        (directory / "report.txt").write_text(report)
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        if reporter is not None and capture is not None:
            with capture.global_and_fixture_disabled():  # shown whatever the outcome, as -s would
                reporter.write_line(f"\nfault matrix ({directory / 'report.txt'}):\n{report}")
    finally:
        for process in services.values():
            process.stop()
        kafka.kill()
        redis.kill()
        postgres.remove()


async def settled(run: FaultRun, check: Callable[[], Awaitable[list[str]]]) -> list[str]:
    """``check``'s problems once there are none, or what is left at the shared deadline."""
    deadline = run.ended + SETTLE_SECONDS
    while True:
        problems = await check()
        if not problems or time.monotonic() > deadline:
            return problems
        await asyncio.sleep(1.0)


def brief(problems: list[str], n: int = 15) -> str:
    more = f"\n... and {len(problems) - n} more" if len(problems) > n else ""
    return "\n".join(problems[:n]) + more


def parse_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


async def get_json(http: httpx.AsyncClient, url: str) -> dict | None:
    """A read API answer, or None while it answers 503 (the score cache being rebuilt)."""
    response = await http.get(url, headers=OPERATOR)
    if response.status_code == 503:
        return None
    response.raise_for_status()
    return response.json()


async def read_alerts(http: httpx.AsyncClient, read_url: str, tenant_id: str) -> list[dict] | None:
    url: str | None = f"{read_url}/v1/tenants/{tenant_id}/alerts?top=1000"
    items: list[dict] = []
    while url:
        page = await get_json(http, url if url.startswith("http") else f"{read_url}{url}")
        if page is None:
            return None
        items += page["value"]
        url = page.get("@odata.nextLink")
    return items


def alert_problems(tenant: ExpectedTenant, shown: list[dict]) -> list[str]:
    """Each accepted alert shown once, with its status and its response time (SPEC §3)."""
    problems = []
    counts = Counter(a["id"] for a in shown)
    for alert_id, count in counts.items():
        if alert_id not in tenant.alerts:
            problems.append(f"{tenant.tenant_id}/{alert_id}: shown but never accepted")
        elif count > 1:
            problems.append(f"{tenant.tenant_id}/{alert_id}: shown {count} times")
    by_id = {a["id"]: a for a in shown}
    for alert_id, expected in tenant.alerts.items():
        view = by_id.get(alert_id)
        if view is None:
            problems.append(f"{tenant.tenant_id}/{alert_id}: accepted but not on the read API")
            continue
        problems += [f"{tenant.tenant_id}/{alert_id}: {p}" for p in response_problems(expected, view)]
    return problems


def response_problems(expected: ExpectedAlert, view: dict) -> list[str]:
    problems = []
    if view.get("status") != expected.status:
        problems.append(f"status {view.get('status')!r}, expected {expected.status!r}")
    responded = parse_time(view.get("respondedDateTime"))
    if expected.response is None:
        if responded is not None:
            problems.append(f"responded at {responded} by {view.get('respondedBy')!r}, but no response was sent")
        return problems
    if responded is None:
        return [*problems, f"no response shown; expected one between {expected.response.earliest} and "
                           f"{expected.response.latest} by {expected.response.by}"]
    slack = 0 if expected.response.exact else CLOCK_SLACK_SECONDS
    if not (expected.response.earliest.timestamp() - slack <= responded.timestamp()
            <= expected.response.latest.timestamp() + slack):
        problems.append(f"responded at {responded}, expected between {expected.response.earliest} and "
                        f"{expected.response.latest}")
    if view.get("respondedBy") != expected.response.by:
        problems.append(f"responded by {view.get('respondedBy')!r}, expected {expected.response.by!r}")
    latency = view.get("latencyHours")
    # Recomputed from SPEC §3: stop − start, start = detectedDateTime.
    recomputed = max(0.0, hours(responded - expected.detected))
    if latency is None or abs(latency - recomputed) > 1e-6:
        problems.append(f"latencyHours {latency}, but {responded} − {expected.detected} is {recomputed} h")
    return problems


async def response_time_problems(read_url: str, tenants: list[ExpectedTenant]) -> list[str]:
    """SPEC §3 per tenant: the responded count, the average within the PATCH brackets, compliance.
    (Also the scale-out test's check.)"""
    problems = []
    now = datetime.now(UTC)
    async with httpx.AsyncClient(timeout=30) as http:
        for tenant in tenants:
            figures = await get_json(http, f"{read_url}/v1/tenants/{tenant.tenant_id}/response-time")
            if figures is None:
                problems.append(f"{tenant.tenant_id}: 503")
                continue
            count, bounds = tenant.responded_count(now), tenant.average_bounds_hours(now)
            average = figures["averageResponseTimeInHours"]
            if figures["respondedCount"] != count:
                problems.append(f"{tenant.tenant_id}: respondedCount {figures['respondedCount']}, expected {count}")
            elif bounds is None and average is not None:
                problems.append(f"{tenant.tenant_id}: average {average} h with nothing answered")
            elif bounds is not None and not (bounds[0] - 1e-6 <= (average or -1) <= bounds[1] + 1e-6):
                problems.append(f"{tenant.tenant_id}: average {average} h, expected within {bounds}")
            expected_compliant = tenant.compliance(now)["securityAlertsPromptlyResolved"]
            if figures["compliant"] is not expected_compliant:
                problems.append(f"{tenant.tenant_id}: compliant {figures['compliant']}, "
                                f"expected {expected_compliant}")
    return problems


async def score_problems(read_url: str, tenants: list[ExpectedTenant]) -> list[str]:
    """SPEC §4 per tenant: each requirement's status from what was accepted last, and the formula over
    them. (Also the scale-out test's check.)"""
    problems = []
    now = datetime.now(UTC)
    async with httpx.AsyncClient(timeout=30) as http:
        for tenant in tenants:
            base = f"{read_url}/v1/tenants/{tenant.tenant_id}/security-score"
            shown, requirements = await get_json(http, base), await get_json(http, f"{base}/requirements")
            if shown is None or requirements is None:
                problems.append(f"{tenant.tenant_id}: the score answers 503")
                continue
            compliance = tenant.compliance(now)
            statuses = {r["requirementType"]: r["complianceStatus"] == "compliant" for r in requirements["value"]}
            wrong = {k: statuses.get(k) for k, v in compliance.items() if statuses.get(k) is not v}
            if wrong or shown["currentScore"] != score(compliance):
                problems.append(f"{tenant.tenant_id}: currentScore {shown['currentScore']}, formula "
                                f"{score(compliance)}; requirements shown otherwise: {wrong}")
    return problems


# --- the checks -------------------------------------------------------------------------------------


async def test_every_accepted_alert_is_on_the_read_api_once_with_its_response_time(fault_run: FaultRun):
    read_url = fault_run.services["scoring"].url

    async def check() -> list[str]:
        problems = []
        async with httpx.AsyncClient(timeout=30) as http:
            for tenant in fault_run.tenants:
                shown = await read_alerts(http, read_url, tenant.tenant_id)
                problems += (alert_problems(tenant, shown) if shown is not None
                             else [f"{tenant.tenant_id}: the read API answers 503"])
        return problems

    problems = await settled(fault_run, check)
    total = sum(len(t.alerts) for t in fault_run.tenants)
    assert not problems, f"{len(problems)} problems among {total} alerts:\n{brief(problems)}"
    assert total > 300, f"only {total} alerts were accepted: the load was too thin to prove anything"


async def test_response_time_figures_are_the_average_of_what_was_answered(fault_run: FaultRun):
    read_url = fault_run.services["scoring"].url

    async def check() -> list[str]:
        return await response_time_problems(read_url, fault_run.tenants)

    problems = await settled(fault_run, check)
    assert not problems, brief(problems)
    kinds = {t.compliance(datetime.now(UTC))["securityAlertsPromptlyResolved"] for t in fault_run.tenants}
    assert kinds == {True, False}, "the load should leave prompt (compliant) and late (noncompliant) tenants"


async def test_the_score_of_every_tenant_is_the_formula_over_what_was_accepted(fault_run: FaultRun):
    read_url = fault_run.services["scoring"].url

    async def check() -> list[str]:
        return await score_problems(read_url, fault_run.tenants)

    problems = await settled(fault_run, check)
    assert not problems, brief(problems)


async def test_every_alert_is_mailed_and_posted_once_or_repeated_only_with_the_same_id(fault_run: FaultRun):
    async def check() -> list[str]:
        problems, _ = delivery_problems(fault_run)
        return problems

    problems = await settled(fault_run, check)
    _, counts = delivery_problems(fault_run)
    assert not problems, f"{counts}\n{brief(problems)}"
    delivered = counts["emails"] + counts["webhooks"]
    assert counts["repeats"] <= MAX_REPEAT_SHARE * delivered, (
        f"{counts['repeats']} repeated deliveries of {delivered} (same ids, but more than "
        f"{MAX_REPEAT_SHARE:.0%}): {counts}")


def delivery_problems(run: FaultRun) -> tuple[list[str], Counter]:
    """SPEC §5: one e-mail per alert to the contact, one webhook per alert and matching channel, one
    spending e-mail per customer and month; a repeat carries the first one's Message-ID / key."""
    problems, counts = [], Counter()
    for tenant in run.tenants:
        mails: dict[str, list[str]] = defaultdict(list)
        for message in run.smtp.mail.for_tenant(tenant.tenant_id, "alert"):
            mails[message["X-CSP-Alert-Id"]].append(message["Message-ID"])
        hooks: dict[str, list[str]] = defaultdict(list)
        for call in run.receiver.calls(tenant.hook_path):
            body = call.json
            if body.get("type") != "alert.created":
                problems.append(f"{tenant.tenant_id}: a {body.get('type')!r} webhook on an ordinary channel")
                continue
            hooks[body["alert"]["id"]].append(call.headers.get("idempotency-key", ""))
        wanted_hooks = {a for a, alert in tenant.alerts.items() if tenant.channel_gets(alert)}
        for what, sent, wanted in (("e-mail", mails, set(tenant.alerts)), ("webhook", hooks, wanted_hooks)):
            for alert_id in sorted(wanted - set(sent)):
                problems.append(f"{tenant.tenant_id}/{alert_id}: no {what}")
            for alert_id in sorted(set(sent) - wanted):
                problems.append(f"{tenant.tenant_id}/{alert_id}: a {what} that should not exist")
            for alert_id, ids in sent.items():
                counts[f"{what}s" if what == "webhook" else "emails"] += 1
                counts["repeats"] += len(ids) - 1
                if len(set(ids)) > 1:
                    problems.append(f"{tenant.tenant_id}/{alert_id}: {len(ids)} {what}s with different ids {set(ids)}")
        spending = {m["Message-ID"] for m in run.smtp.mail.for_tenant(tenant.tenant_id, "spending")}
        if len(spending) != len(tenant.spending_notifications):
            problems.append(f"{tenant.tenant_id}: {len(spending)} distinct spending e-mails, expected "
                            f"{len(tenant.spending_notifications)} (one per customer and month)")
    return problems, counts


async def test_the_newest_contact_gets_the_mail_after_old_contact_events_are_redelivered(fault_run: FaultRun):
    async def check() -> list[str]:
        problems = [f"{t.tenant_id}: no probe alert was accepted" for t in fault_run.tenants
                    if t.tenant_id not in fault_run.probes]
        problems += [f"{tenant_id}: the notifier held {held} a minute after the last contact change, not final@"
                     for tenant_id, held in fault_run.contacts_not_at_the_notifier.items()]
        for tenant_id, alert_id in fault_run.probes.items():
            sent = [m["To"] for m in fault_run.smtp.mail.for_tenant(tenant_id, "alert")
                    if m["X-CSP-Alert-Id"] == alert_id]
            if sent != [f"final@{tenant_id}.example"] * len(sent) or not sent:
                problems.append(f"{tenant_id}: probe {alert_id} mailed to {sent}, expected final@{tenant_id}.example")
        return problems

    problems = await settled(fault_run, check)
    assert not problems, brief(problems)


async def test_poison_records_of_every_consumed_topic_reach_the_dead_letter_topic(fault_run: FaultRun):
    assert len(fault_run.poison) == 2 * len(CONSUMERS)

    async def check() -> list[str]:
        dead = Counter()
        for record in await read_all(fault_run.kafka.bootstrap, fault_run.topic("dead-letter")):
            source = dict(record.headers).get("dlq.source")
            if source is not None:
                dead[source.decode()] += 1
        return [f"{p.source}: {dead[p.source]} dead letters, expected one from each of {p.consumers}"
                for p in fault_run.poison if dead[p.source] < len(p.consumers)]

    problems = await settled(fault_run, check)
    assert not problems, brief(problems)


async def test_no_consumer_group_is_left_behind(fault_run: FaultRun):
    groups = {
        "response-time": ["alerts"],
        "scoring": ["requirement-status", "alert-response-times", "deliveries", "customer-mfa", "alerts",
                    "alert-sync", "alert-triage"],
        "notifier": ["alerts", "security-contacts", "notifications", "notification-channels", "delivery-commands",
                     "requirement-status", "escalation-chains"],
        "ingest": ["deliveries"],
    }

    async def check() -> list[str]:
        problems = []
        for service, topics in groups.items():
            lag = await group_lag(fault_run.kafka.bootstrap, f"{fault_run.prefix}{service}",
                                  [fault_run.topic(t) for t in topics])
            problems += [f"{service}: {n} records behind on {where}" for where, n in lag.items() if n]
        return problems

    problems = await settled(fault_run, check)
    assert not problems, brief(problems)


async def test_every_outbox_is_empty_once_settled(fault_run: FaultRun):
    """Whatever was committed during the faults was published in the end: no schema's outbox keeps rows."""
    async def check() -> list[str]:
        conn = await asyncpg.connect(fault_run.postgres.database_url)
        try:
            counts = {schema: await conn.fetchval(f"SELECT count(*) FROM {schema}.outbox")
                      for schema in ("ingest", "response_time", "scoring", "notifier")}
        finally:
            await conn.close()
        return [f"{schema}: {n} events never published" for schema, n in counts.items() if n]

    problems = await settled(fault_run, check)
    assert not problems, brief(problems)


async def test_every_service_is_healthy_at_the_end(fault_run: FaultRun):
    async def check() -> list[str]:
        problems = []
        async with httpx.AsyncClient(timeout=5) as http:
            for name, service in fault_run.services.items():
                if service.proc is None or service.proc.poll() is not None:
                    problems.append(f"{name}: the process is gone:\n{service.tail(1500)}")
                    continue
                try:
                    ready = await http.get(f"{service.url}/health/ready")
                    if ready.status_code != 200:
                        problems.append(f"{name}: /health/ready {ready.status_code} {ready.text[:300]}")
                except httpx.HTTPError as exc:
                    problems.append(f"{name}: /health/ready did not answer: {exc!r}")
        return problems

    problems = await settled(fault_run, check)
    assert not problems, brief(problems)


def test_senders_got_only_2xx_or_503_and_429_with_retry_after(fault_run: FaultRun):
    """SPEC §6: bad input never yields a 5xx, and nothing here was bad input; an outage is a 503 with
    Retry-After (never a 500); a post of what is already known is a duplicate, not an event."""
    stats = fault_run.stats
    assert not stats.server_errors, brief(stats.server_errors)
    assert not stats.refused, brief(stats.refused)
    assert not stats.missing_retry_after, brief(stats.missing_retry_after)
    assert not stats.duplicates_not_counted, brief(stats.duplicates_not_counted)
    assert stats.statuses[503] > 0, "no outage was seen by the senders: the faults did not bite"


def test_every_write_is_accepted_again_once_its_dependency_is_back(fault_run: FaultRun):
    """A sender retrying after Retry-After gets its write accepted once the outage is over: no kind of
    write stays refused while the service says it is ready."""
    assert not fault_run.stats.gave_up, f"operations never accepted: {brief(fault_run.stats.gave_up)}"


def test_each_killed_service_is_ready_again_within_the_bound(fault_run: FaultRun):
    assert set(fault_run.kills) == set(SERVICES)
    assert all(v is not None for v in fault_run.kills.values()), fault_run.kills


def test_while_a_dependency_is_down_its_dependents_report_not_ready_and_recover_by_themselves(fault_run: FaultRun):
    problems = []
    for dependency, outage in fault_run.outages.items():
        for name in DEPENDENTS[dependency]:
            if 503 not in outage.readiness[name]:
                seen = Counter(outage.readiness[name])
                problems.append(f"{dependency} down: {name}'s /health/ready answered {dict(seen)}, never 503")
        for name, after in outage.recovered_after.items():
            if after is None:
                problems.append(f"{dependency} back: {name} not ready again")
    assert set(fault_run.outages) == set(DEPENDENTS)
    assert not problems, "\n".join(problems)


def test_while_a_dependency_is_down_each_service_logs_at_most_a_few_lines_a_second(fault_run: FaultRun):
    problems = []
    for dependency, outage in fault_run.outages.items():
        for name, window in outage.logs.items():
            rate = window.warnings / outage.seconds
            if rate > MAX_WARNINGS_PER_SECOND:
                problems.append(f"{dependency} down {outage.seconds} s: {name} wrote {window.warnings} warnings and "
                                f"errors ({rate:.1f}/s; {window.lines} lines, {window.size} bytes in all); "
                                f"most: {window.top(4)}")
    assert not problems, "\n".join(problems)


def test_while_the_broker_is_down_no_service_spins(fault_run: FaultRun):
    # The notifier's worker needs no broker: deliveries due when it went down go on being sent (and
    # logged, one line each), which is work, not spinning; what is left beyond it must be idle.
    outage = fault_run.outages["kafka"]
    idle = {name: cores - outage.logs[name].deliveries * DELIVERY_CPU_SECONDS / outage.seconds
            for name, cores in outage.cpu_cores.items()}
    spinning = {name: c for name, c in idle.items() if c > MAX_OUTAGE_CPU_CORES}
    assert not spinning, (f"CPU (cores) while the broker was down: {outage.cpu_cores}; deliveries made meanwhile: "
                          f"{ {name: window.deliveries for name, window in outage.logs.items()} }")


# --- the summary ------------------------------------------------------------------------------------


def summary(run: FaultRun, seconds: float) -> str:
    stats = run.stats
    alerts = sum(len(t.alerts) for t in run.tenants)
    responded = sum(1 for t in run.tenants for a in t.alerts.values() if a.response is not None)
    _, deliveries = delivery_problems(run)
    lines = [
        f"run {seconds:.0f} s, load {run.load_seconds} s; {len(run.tenants)} tenants, {alerts} alerts "
        f"({responded} answered); requests {stats.requests}, answers {dict(stats.statuses)}, "
        f"connection errors {stats.connection_errors}",
        f"operations accepted: {dict(stats.accepted_ops)}",
        f"deliveries: {dict(deliveries)}; republished: {dict(run.republished)}",
        f"kills (s to ready): {run.kills}",
        "timeline: " + "; ".join(f"+{at - run.timeline[0][0]:.0f}s {what}" for at, what in run.timeline),
    ]
    for dependency, outage in run.outages.items():
        lines.append(f"{dependency} down {outage.seconds} s; write API answered {dict(outage.write_answers)}; "
                     f"ready again after {outage.recovered_after}")
        for name in outage.logs:
            window = outage.logs[name]
            lines.append(f"  {name:14} {window.warnings:6} warnings+ ({window.warnings / outage.seconds:6.1f}/s), "
                         f"{window.records} records, {window.size} bytes; cpu {outage.cpu_cores[name]:.2f} cores; "
                         f"ready statuses {dict(Counter(outage.readiness[name]))}")
            for kind, n in window.top(3):
                lines.append(f"      {n:6} × {kind}")
    return "\n".join(lines)
