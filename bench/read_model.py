"""The read API's read model: ``GET /response-time`` figures and a deep ``GET /alerts`` page.

Fills the read model's ``alert_response_times`` table (scoring schema, ``services/scoring/read_model.py``)
of a fresh database with one tenant's long history (``BENCH_READ_MODEL_HISTORY`` alerts answered long
ago, default a million, plus 5000 answered in the window and 200 open), then in the same run measures
(a) the figures through the partial indexes (``read_model.current_figures``), beside the naive scan of
    all the tenant's alerts (baseline);
(b) a page of ``GET /alerts`` 90% down that tenant's list, by position (skiptoken) beside by offset
    (skip, baseline).
The bench database is removed at the end.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

import asyncpg

from bench.support import Measurement, ratio_line, run_id
from services.scoring import read_model
from shared.db import apply_migrations, create_pool

HISTORY = int(os.environ.get("BENCH_READ_MODEL_HISTORY", "1000000"))
READS = 200

# The same figures as read_model._AGGREGATES, computed the naive way: every alert the tenant ever had.
_NAIVE_FIGURES = """
    SELECT count(*) FILTER (WHERE responded_at > $2) AS responded_count,
           COALESCE(sum(latency_us) FILTER (WHERE responded_at > $2), 0) AS responded_latency_us,
           count(*) FILTER (WHERE responded_at IS NULL AND status <> 'resolved') AS open_count,
           min(clock_started_at) FILTER (WHERE responded_at IS NULL AND status <> 'resolved')
               AS oldest_open_started_at
    FROM alert_response_times WHERE tenant_id = $1 AND NOT is_test"""


async def fill_history(pool: asyncpg.Pool, tenant_id: str, history: int) -> None:
    """``history`` alerts answered long ago, 5000 answered in the window, 200 open, in one tenant: the
    rows the read model's events would leave (each with the id of the event it holds)."""
    await pool.execute(
        """INSERT INTO alert_response_times (tenant_id, alert_id, alert, status, is_test, clock_started_at,
                                             responded_at, responded_by, latency_us, state_as_of, event_id)
           SELECT $1, 'h' || i, jsonb_build_object('id', 'h' || i), 'resolved', false,
                  now() - interval '400 days' + i * interval '1 second',
                  now() - interval '399 days' + i * interval '1 second', 'ana', 86400000000, now(),
                  gen_random_uuid()
           FROM generate_series(1, $2) AS i""", tenant_id, history)
    await pool.execute(
        """INSERT INTO alert_response_times (tenant_id, alert_id, alert, status, is_test, clock_started_at,
                                             responded_at, responded_by, latency_us, state_as_of, event_id)
           SELECT $1, 'w' || i, jsonb_build_object('id', 'w' || i), 'resolved', false,
                  now() - i * interval '5 minutes' - interval '3 hours', now() - i * interval '5 minutes',
                  'ana', 10800000000, now(), gen_random_uuid()
           FROM generate_series(1, 5000) AS i""", tenant_id)
    await pool.execute(
        """INSERT INTO alert_response_times (tenant_id, alert_id, alert, status, is_test, clock_started_at,
                                             state_as_of, event_id)
           SELECT $1, 'o' || i, jsonb_build_object('id', 'o' || i), 'active', false,
                  now() - i * interval '1 minute', now(), gen_random_uuid()
           FROM generate_series(1, 200) AS i""", tenant_id)
    await pool.execute("ANALYZE alert_response_times")


async def timed_reads(name: str, reads: int, read) -> Measurement:
    latencies = []
    started = time.monotonic()
    for _ in range(reads):
        t0 = time.perf_counter()
        await read()
        latencies.append((time.perf_counter() - t0) * 1000)
    return Measurement(name, reads, time.monotonic() - started, latencies)


async def figures(pool: asyncpg.Pool, tenant_id: str) -> None:
    current = await read_model.current_figures(pool, tenant_id, datetime.now(UTC))
    assert current.responded_count == 5000 and current.open_count == 200, current
    naive = await timed_reads("naive scan of the tenant's alerts (baseline)", 5, lambda: pool.fetchrow(
        _NAIVE_FIGURES, tenant_id, datetime.now(UTC) - timedelta(days=30)))
    indexed = await timed_reads("GET /response-time figures (index ranges)", READS,
                                lambda: read_model.current_figures(pool, tenant_id, datetime.now(UTC)))
    print(naive.line())
    print(indexed.line())
    print(ratio_line(indexed, naive))


async def deep_page(pool: asyncpg.Pool, tenant_id: str) -> None:
    """GET /alerts far down the list: a page of 100 after 90% of the tenant's alerts, by position
    (skiptoken, the subject) beside by offset (skip, the baseline)."""
    depth = (HISTORY + 5200) * 9 // 10
    [last] = await read_model.list_alerts(pool, tenant_id, status=None, responded=None, top=1, skip=depth - 1)
    after = (last["clock_started_at"], last["alert_id"])

    def page(**where):
        return read_model.list_alerts(pool, tenant_id, status=None, responded=None, top=100, **where)

    by_offset, by_position = await page(skip=depth), await page(after=after)
    assert [r["alert_id"] for r in by_offset] == [r["alert_id"] for r in by_position]
    offset = await timed_reads(f"GET /alerts page at {depth} by skip (baseline)", 5, lambda: page(skip=depth))
    position = await timed_reads(f"GET /alerts page at {depth} by skiptoken", READS, lambda: page(after=after))
    print(offset.line())
    print(position.line())
    print(ratio_line(position, offset))


async def main() -> None:
    admin_url = os.environ.get("DATABASE_URL", "postgresql://csp:csp@127.0.0.1:5432/csp_triage")
    database = f"csp_bench_{run_id()}"
    database_url = f"{admin_url.rpartition('/')[0]}/{database}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{database}"')
    try:
        await apply_migrations(database_url)
        pool = await create_pool(database_url, schema="scoring", max_size=2)
        tenant_id = "bench-history-tenant"
        try:
            started = time.monotonic()
            await fill_history(pool, tenant_id, HISTORY)
            print(f"  {HISTORY + 5200} alerts of one tenant in the read model ({HISTORY} answered long ago, "
                  f"5000 in the window, 200 open), filled in {time.monotonic() - started:.1f} s")
            await figures(pool, tenant_id)
            await deep_page(pool, tenant_id)
        finally:
            await pool.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()
