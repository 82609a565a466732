"""Write → visible on the read API: from the answer to ``POST /alerts`` until ``GET /alerts/{id}`` on the
read API answers 200.

The probe listens to the tenant's change stream on the read API (``GET /changes``, server-sent events):
each hint that an alert changed makes it ask ``GET /alerts/{id}`` once, and the first 200's arrival
ends the alert's measurement (a 404, the hint of the alert's creation coming before the response-time
row the route answers from, waits for the next hint). Hints are best effort (a read API under pressure
may drop some), so every 100 ms one query asks PostgreSQL which of the alerts answered more than 100 ms
ago and not yet visible the read model (``scoring.alert_response_times``, the table ``GET /alerts/{id}``
reads) holds, and those are asked too.
Requests go through ``bench.tools.rawhttp`` (tens of microseconds each, where httpx took a millisecond
and made the generator the bottleneck). The same probe serves the idle baseline (one alert at a time)
and the steady load (an open-loop generator: alerts sent at fixed times whatever the answers, so a slow
system cannot slow the offered load down).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

import asyncpg

from bench.tools.rawhttp import Connection, HTTPError, Pool

FALLBACK_SECONDS = 0.1
# Detected when sent, as a live feed's alerts are (see post_alert.lua).
ALERT = ('{{"id":"{id}","displayName":"Unusual sign-in","severity":"high","status":"active",'
         '"detectedDateTime":"{detected}","isTest":"false","customerTenantId":"c1",'
         '"affectedResources":[{{"resourceId":"vm-1","resourceType":"virtualMachine"}}]}}')


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# Requests in flight at once (kept-alive connections per API): a sender waiting for a free one shows as
# lateness against the schedule.
IN_FLIGHT = 128


@dataclass
class Visibility:
    pool: asyncpg.Pool
    write_url: str
    read_url: str
    tenant: str
    headers: dict[str, str]
    answered: dict[str, float] = field(default_factory=dict)  # alert id -> when its POST was answered
    visible_ms: dict[str, float] = field(default_factory=dict)
    post_ms: list[float] = field(default_factory=list)
    post_errors: int = 0
    reads: int = 0  # GET /alerts/{id} asked
    read_errors: int = 0  # GET /alerts/{id} failed on the socket (asked again)
    hints: int = 0  # alert changes the stream told
    found_by_fallback: int = 0  # alerts found by the PostgreSQL query, not by a hint
    _hinted_early: set[str] = field(default_factory=set)  # a hint before the POST's answer was read
    _confirming: set[str] = field(default_factory=set)
    _hinted_again: set[str] = field(default_factory=set)
    _tasks: set[asyncio.Task] = field(default_factory=set)
    _posting: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(IN_FLIGHT))
    _ready: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._write = Pool(self.write_url, IN_FLIGHT)
        self._read = Pool(self.read_url, IN_FLIGHT)
        self._post_headers = {**self.headers, "Content-Type": "application/json"}

    def close(self) -> None:
        self._write.close()
        self._read.close()

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
            status, _ = await self._write.request("POST", f"/v1/tenants/{self.tenant}/alerts", self._post_headers,
                                                  ALERT.format(id=alert_id, detected=_now()).encode())
        except HTTPError:
            self.post_errors += 1
            return
        answered = time.perf_counter()
        if status != 202:
            self.post_errors += 1
            return
        self.post_ms.append((answered - started) * 1000)
        self.answered[alert_id] = answered
        if alert_id in self._hinted_early:
            self._hinted_early.discard(alert_id)
            self._check(alert_id)

    def _check(self, alert_id: str) -> None:
        if alert_id in self.visible_ms:
            return
        if alert_id in self._confirming:  # a read in flight may have been answered before this change
            self._hinted_again.add(alert_id)
            return
        self._confirming.add(alert_id)
        task = asyncio.create_task(self._confirm(alert_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _confirm(self, alert_id: str) -> None:
        # One read per hint: an alert's first hint (its alert-created event applied) comes before the
        # response-time row that GET /alerts/{id} answers from, and polling until then was most of the
        # read API's load (hundreds of reads per alert under lag). A 404 waits for the next hint (or the
        # fallback query) instead.
        try:
            self.reads += 1
            found = (await self._read.request("GET", f"/v1/tenants/{self.tenant}/alerts/{alert_id}",
                                              self.headers))[0] == 200
        except HTTPError:
            self.read_errors += 1
            found = False
        if found:
            self.visible_ms[alert_id] = (time.perf_counter() - self.answered[alert_id]) * 1000
        self._confirming.discard(alert_id)
        if alert_id in self._hinted_again:
            self._hinted_again.discard(alert_id)
            self._check(alert_id)

    async def watch(self) -> None:
        """Runs until cancelled: the change stream, and the fallback query beside it."""
        fallback = asyncio.create_task(self._fallback())
        try:
            await self._listen()
        finally:
            fallback.cancel()

    async def ready(self, within_seconds: float = 10) -> None:
        """Returns once the change stream is subscribed (every change after it is told)."""
        await asyncio.wait_for(self._ready.wait(), within_seconds)

    async def _listen(self) -> None:
        while True:
            connection = Connection(self._read.host, self._read.port)
            buffer = b""
            try:
                async for chunk in connection.stream(f"/v1/tenants/{self.tenant}/changes",
                                                     {**self.headers, "Accept": "text/event-stream"}):
                    buffer += chunk.replace(b"\r\n", b"\n")
                    *events, buffer = buffer.split(b"\n\n")
                    for event in events:
                        self._on_event(event)
            except HTTPError:
                self.read_errors += 1
            await asyncio.sleep(0.1)  # the stream ended: subscribe again (the fallback covers the gap)

    def _on_event(self, event: bytes) -> None:
        name, data = "message", b""
        for line in event.split(b"\n"):
            if line.startswith(b"event:"):
                name = line[6:].strip().decode()
            elif line.startswith(b"data:"):
                data += line[5:].strip()
        if name == "ready":
            self._ready.set()
        elif name == "change":
            alert_id = json.loads(data).get("alertId")
            if alert_id is None:
                return
            self.hints += 1
            if alert_id in self.answered:
                self._check(alert_id)
            elif alert_id not in self.visible_ms:
                self._hinted_early.add(alert_id)

    async def _fallback(self) -> None:
        while True:
            await asyncio.sleep(FALLBACK_SECONDS)
            old = time.perf_counter() - FALLBACK_SECONDS
            waiting = [a for a, at in self.answered.items()
                       if at < old and a not in self._confirming and a not in self.visible_ms]
            if waiting:
                rows = await self.pool.fetch(
                    "SELECT alert_id FROM scoring.alert_response_times WHERE tenant_id = $1 AND alert_id = ANY($2)",
                    self.tenant, waiting)
                for row in rows:
                    if row[0] not in self._confirming:
                        self.found_by_fallback += 1
                        self._check(row[0])

    @property
    def pending(self) -> int:
        return len(self.answered) - len(self.visible_ms)

    async def until_visible(self, within_seconds: float) -> bool:
        deadline = time.monotonic() + within_seconds
        while self.pending and time.monotonic() < deadline:  # noqa: ASYNC110 - the watcher sets no event
            await asyncio.sleep(0.002)
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
