"""The machine and the stack a bench ran on, and the report it writes (``docs/benchmarks.md``)."""

from __future__ import annotations

import asyncio
import os
import platform
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench.tools import wrk
from bench.tools.stack import REPO, Stack, kafka_broker


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_total() -> str:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return "unknown"


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()


async def describe() -> dict[str, str]:
    changed = [line for line in _git("status", "--porcelain", "--", "services", "shared").splitlines() if line]
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _git("rev-parse", "--short", "HEAD") + (
            f" with {len(changed)} uncommitted change(s) under services/ and shared/ (the tree as it was)"
            if changed else ""),
        "CPU": f"{_cpu_model()}, {os.cpu_count()} logical core(s)",
        "memory": _memory_total(),
        "kernel": f"{platform.system()} {platform.release()}",
        "Python": sys.version.split()[0],
        "wrk": await wrk.version(),
        "load before (1/5/15 min)": loadavg(),
    }


async def describe_stack(stack: Stack) -> dict[str, str]:
    found = {"PostgreSQL": await stack.pool.fetchval("SHOW server_version"),
             "Redis": (await stack.redis.info("server"))["redis_version"]}
    broker = kafka_broker()
    if broker:
        cmdline = await asyncio.to_thread(Path(f"/proc/{broker.pid}/cmdline").read_text, errors="replace")
        version = re.search(r"kafka_[\d.]+-([\d.]+)\.jar", cmdline) or re.search(r"kafka[_-]([\d.]+)", cmdline)
        found["Kafka"] = f"{version.group(1) if version else 'version unknown'} (one local broker)"
    else:
        found["Kafka"] = f"{stack.bootstrap} (not started by this project: its CPU is not measured)"
    return found


def document(table: str, notes: str, details: dict[str, str], sizes: str) -> str:
    machine = "\n".join(f"- {name}: {value}" for name, value in details.items())
    return f"""# Benchmarks

Written by `make bench` (`bench/system.py`); every figure below comes from the one run described here.
Each figure stands beside its baseline measured in the same run: on a shared machine compare ratios
within a run, not absolute figures across runs.

{table}

{notes}

## How it was measured

- The four services run as processes, as `make run` starts them (`ENVIRONMENT=development`; the write
  API as one process unless `INGEST_WORKERS` says otherwise), on a database, Kafka topics and Redis keys
  of the bench run alone (removed at the end). A service's CPU and memory are those of all its processes.
- Every alert posted is new and detected when it is sent, as a live feed's are, of a tenant with no
  security contact or channel. (Before 2026-12-02 the bench's alerts were detected on 2026-11-27, days
  before they were sent: each one's reminder and escalation fell due the moment it arrived, which was
  most of the notifier's work per alert.)
- Closed loop: wrk (Debian's), 32 connections, 2 threads; a Lua script posts a new alert per request
  with the operator key (or a list of 100 new alerts, `bench/tools/post_alert_list.lua`). A non-2xx answer
  is an error, not counted as served.
- Rounds: each endpoint and its baseline run in turn, several rounds, the baseline first in one round
  and second in the next; the ratio is the median of the rounds' ratios (every round's is given), and
  the figures shown are those of the round of the median. On this shared machine one pair's ratio
  moved by a third from one minute to the next; the median of interleaved rounds moves less. After
  each write API run the bench waits until every consumer group has drained, so one round's
  pipeline work does not slow the next round.
- Baselines: bare FastAPI endpoints on the same uvicorn stack: the POST parses the alert as the write
  API does and awaits one Kafka acknowledgement (idempotent producer, acks=all); the GET answers the
  JSON held in one Redis key (the read API's answer for the same tenant). Lists of 100: Prometheus
  Alertmanager from Debian's package (`infra/scripts/bench_tools.sh` installs it), one instance, no
  cluster, a route to a receiver that sends nothing, taking lists of 100 new alerts (the same name,
  severity, customer and resource, a unique id label each) on `POST /api/v2/alerts`
  (`bench/tools/alertmanager_list.lua`). It holds them in memory only; the write API answers once
  each alert is in PostgreSQL and its event acknowledged by the broker.
- The write API with its consumers paused: in the same rounds as its single posts (and as its lists of
  100, for half as long: the pipeline takes its alerts through after), the same posts while
  the processes of response time, the read API and the notifier are stopped (SIGSTOP, their whole
  process group) for the wrk run, resumed after it (they catch up, and the bench waits until every
  group has drained). The write API, its relay, the broker and PostgreSQL run as ever: the ratio is
  the write API's own cost beside the bare endpoint's, without the pipeline's work on the same cores.
- Drained: every consumer group (response-time, scoring, notifier, ingest) at lag 0 (end offsets
  minus committed offsets from the Kafka admin API, aiokafka) and every service's outbox empty,
  twice in a row.
- Write → visible: from the POST's 202 until `GET /alerts/{{id}}` on the read API answers 200; the
  bench listens to the tenant's change stream (`GET /changes`) and asks the API once for the alert each
  hint names (a 404 waits for the next hint); a query every 100 ms finds in PostgreSQL any the stream did
  not tell. The steady load is open loop (sent on a fixed schedule whatever the answers) over bare
  HTTP/1.1 keep-alive connections (`bench/tools/rawhttp.py`), so the generator is not the bottleneck.
  Hop by hop (`bench/tools/hops.py`): a consumer outside every group reads the `alerts` topic and
  `alert-response-times`, and each record's CreateTime (made by the relay that published it, on this
  machine's clock) splits each alert's time into the write API's relay and the read API (the broker,
  its fetch wait and batch, the hint and the read): the read API shows a new alert from its
  `alert-created`. Beside them, response time (the broker, its fetch wait, its batch, its relay), whose
  event the read API applies over the alert's row afterwards.
- CPU: utime + stime from `/proc/<pid>/stat` of each service's process, of the Kafka broker's JVM,
  of PostgreSQL (the postmaster, its backends, and the backends it reaped: cutime + cstime) and of
  Redis, before and after (single posts: each write API wrk run until drained, summed over the rounds;
  lists of 100: the pipeline run until drained), per 1,000 accepted alerts. The servers also serve
  anything else using them at the time. "Each service" is each service's processes; "all together"
  is everything, servers included.
  PostgreSQL's share of each service: the CPU of the backends of the bench database whose
  `application_name` names it (each service's pool and outbox relay name themselves,
  `shared.db.application_name`), found in `pg_stat_activity`.
- Memory: VmRSS and VmHWM (peak) from `/proc/<pid>/status` at the end of the run.
- Sizes: {sizes}.

## Machine

{machine}
"""
