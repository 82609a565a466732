"""Write → visible on the read API: from the answer to ``POST /alerts`` until ``GET /alerts/{id}`` on the
read API answers 200.

One watcher asks PostgreSQL every 5 ms which of the answered alerts the read model
(``scoring.alert_response_times``, the table ``GET /alerts/{id}`` reads) holds now, in one query for all
of them (cheap, unlike polling the API for each alert); for each one it sees, ``GET /alerts/{id}`` is
asked until it answers 200, and that answer's arrival ends the alert's measurement. The same probe
serves the idle baseline (one alert at a time) and the steady load (an open-loop generator: alerts sent
at fixed times whatever the answers, so a slow system cannot slow the offered load down).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import asyncpg
import httpx

POLL_SECONDS = 0.005
ALERT = ('{{"id":"{id}","displayName":"Unusual sign-in","severity":"high","status":"active",'
         '"detectedDateTime":"2026-11-27T08:00:00+01:00","isTest":"false","customerTenantId":"c1",'
         '"affectedResources":[{{"resourceId":"vm-1","resourceType":"virtualMachine"}}]}}')


# Requests in flight at once: httpx queues requests beyond its connections in a pool whose work grows with
# the queue (thousands queued made this bench the bottleneck); a sender waiting here instead shows as
# lateness against the schedule.
IN_FLIGHT = 128


@dataclass
class Visibility:
    pool: asyncpg.Pool
    client: httpx.AsyncClient  # at least IN_FLIGHT connections
    write_url: str
    read_url: str
    tenant: str
    headers: dict[str, str]
    answered: dict[str, float] = field(default_factory=dict)  # alert id -> when its POST was answered
    visible_ms: dict[str, float] = field(default_factory=dict)
    post_ms: list[float] = field(default_factory=list)
    post_errors: int = 0
    read_errors: int = 0  # GET /alerts/{id} failed on the socket (asked again)
    _confirming: set[str] = field(default_factory=set)
    _tasks: set[asyncio.Task] = field(default_factory=set)
    _posting: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(IN_FLIGHT))
    _reading: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(IN_FLIGHT))

    async def post(self, alert_id: str) -> None:
        async with self._posting:
            await self._post(alert_id)

    async def post_holding_slot(self, alert_id: str) -> None:
        """``post`` for a caller that has already acquired a slot."""
        try:
            await self._post(alert_id)
        finally:
            self._posting.release()

    async def _post(self, alert_id: str) -> None:
        started = time.perf_counter()
        try:
            response = await self.client.post(f"{self.write_url}/v1/tenants/{self.tenant}/alerts",
                                              content=ALERT.format(id=alert_id),
                                              headers={**self.headers, "Content-Type": "application/json"})
        except httpx.HTTPError:
            self.post_errors += 1
            return
        answered = time.perf_counter()
        if response.status_code != 202:
            self.post_errors += 1
            return
        self.post_ms.append((answered - started) * 1000)
        self.answered[alert_id] = answered

    async def _confirm(self, alert_id: str) -> None:
        url = f"{self.read_url}/v1/tenants/{self.tenant}/alerts/{alert_id}"
        while True:  # noqa: ASYNC110 - polling the API is what is measured
            try:
                async with self._reading:
                    found = (await self.client.get(url, headers=self.headers)).status_code == 200
                if found:
                    break
            except httpx.HTTPError:
                self.read_errors += 1
            await asyncio.sleep(POLL_SECONDS)
        self.visible_ms[alert_id] = (time.perf_counter() - self.answered[alert_id]) * 1000

    async def watch(self) -> None:
        """Runs until cancelled."""
        while True:
            waiting = [a for a in self.answered if a not in self._confirming]
            if waiting:
                rows = await self.pool.fetch(
                    "SELECT alert_id FROM scoring.alert_response_times WHERE tenant_id = $1 AND alert_id = ANY($2)",
                    self.tenant, waiting)
                for row in rows:
                    self._confirming.add(row[0])
                    task = asyncio.create_task(self._confirm(row[0]))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            await asyncio.sleep(POLL_SECONDS)

    @property
    def pending(self) -> int:
        return len(self.answered) - len(self.visible_ms)

    async def until_visible(self, within_seconds: float) -> bool:
        deadline = time.monotonic() + within_seconds
        while self.pending and time.monotonic() < deadline:  # noqa: ASYNC110 - the watcher sets no event
            await asyncio.sleep(0.01)
        return not self.pending


@dataclass
class Steady:
    sent: int
    offered_rate: float  # alerts per second actually offered (from the first send to the last)
    late_p99_ms: float  # how late the generator sent, against its schedule (its own bottleneck)


async def one_at_a_time(probe: Visibility, count: int, tag: str, within_seconds: float = 10) -> None:
    for n in range(count):
        await probe.post(f"{tag}-{n}")
        await probe.until_visible(within_seconds)


async def open_loop(probe: Visibility, rate: float, seconds: float, tag: str) -> Steady:
    """Sends ``rate * seconds`` alerts on schedule; stops early, after twice ``seconds``, when the system
    takes them slower than that (every slot busy): ``Steady.sent`` says how many went."""
    count = int(rate * seconds)
    late: list[float] = []
    posts = []
    started = time.perf_counter()
    for n in range(count):
        due = started + n / rate
        if (wait := due - time.perf_counter()) > 0:
            await asyncio.sleep(wait)
        await probe._posting.acquire()  # a free slot: the send is late by any wait here
        if time.perf_counter() - started > 2 * seconds:
            probe._posting.release()
            break
        late.append((time.perf_counter() - due) * 1000)
        posts.append(asyncio.create_task(probe.post_holding_slot(f"{tag}-{n}")))
    last_sent = time.perf_counter()
    await asyncio.gather(*posts)
    late.sort()
    sent = len(posts)
    return Steady(sent, (sent - 1) / (last_sent - started) if sent > 1 else float("nan"),
                  late[min(len(late) - 1, round(0.99 * (len(late) - 1)))])
