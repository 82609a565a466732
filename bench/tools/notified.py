"""Alert → its e-mail to the security contact: alerts of tenants that have a contact, each timed from its
POST's 202 on the write API to its e-mail's arrival at the bench's SMTP server (``bench/tools/mailbox.py``).

The issue (#15) says a burst of 50,000 alerts delayed notifications by minutes; ``make bench`` measures the
delay idle (one alert at a time) and while the pipeline phase posts its burst of another tenant's alerts
(one alert every ``interval`` seconds, open loop: sent on schedule whatever the answers).

The notifier groups a tenant's alerts into a digest once its contact had ``STORM_THRESHOLD`` (5) of them
within two minutes (a storm): an alert so grouped gets no e-mail of its own. So each probe tenant takes
``ALERTS_PER_TENANT`` alerts at most besides the first (the one that shows its contact is known), and the
probe spreads its alerts over several tenants.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import httpx

from bench.tools.mailbox import Mailbox

CONTACT = {"name": "Bench SOC", "email": "soc@bench.example", "phone": "+44 20 7946 0000"}
# Below the notifier's default storm threshold (5 alerts of a tenant within its window), the first included.
ALERTS_PER_TENANT = 3


class Notified:
    def __init__(self, client: httpx.AsyncClient, ingest_url: str, mailbox: Mailbox, auth: dict[str, str],
                 alert: Callable[[str], dict]) -> None:
        self._client = client
        self._ingest_url = ingest_url
        self._mailbox = mailbox
        self._auth = auth
        self._alert = alert
        self._tag = uuid.uuid4().hex[:6]
        self._turns: list[str] = []  # the tenant of each alert to come, in turn
        self.tenants: list[str] = []
        self.seconds: list[float] = []  # POST's 202 -> e-mail, of each alert whose e-mail came
        self.sent = 0
        self.missing = 0  # accepted, no e-mail within the wait
        self.post_errors = 0
        self.not_sent = 0  # due while every tenant had taken its alerts
        self.unready = 0  # tenants whose first e-mail never came (prepare)

    async def prepare(self, tenants: int, timeout: float) -> None:
        """``tenants`` tenants, each with a security contact the notifier sends to: a first alert's e-mail came
        (within ``timeout`` s; those whose did not are counted in ``unready`` and left out)."""
        self.tenants = [f"bench-contact-{self._tag}-{index}" for index in range(tenants)]
        answers = await asyncio.gather(*(
            self._client.put(f"{self._url(tenant)}/security-contact", json=CONTACT, headers=self._auth)
            for tenant in self.tenants))
        if refused := [a for a in answers if a.status_code not in (200, 201)]:
            raise RuntimeError(f"PUT security-contact: {refused[0].status_code} {refused[0].text[:300]}")
        # A contact's event may reach the notifier after the alert's: that alert's e-mail waits for it (a
        # delivery skipped for want of a contact is sent once one is set), so one alert each is enough.
        ready = await asyncio.gather(*(self._first(tenant, timeout) for tenant in self.tenants))
        # A tenant whose first e-mail never came takes no probe alert: reported, as every phase reports what it
        # reached rather than stopping the bench.
        self.unready = ready.count(False)
        usable = [tenant for tenant, came in zip(self.tenants, ready, strict=True) if came]
        self._turns = [tenant for _ in range(ALERTS_PER_TENANT) for tenant in usable]
        self._turns.reverse()  # popped from the end: each tenant in turn

    async def one(self, timeout: float) -> None:
        """Post one alert and wait (at most ``timeout`` s) for its e-mail."""
        if not self._turns:
            self.not_sent += 1
            return
        tenant = self._turns.pop()
        alert_id = f"probe-{uuid.uuid4().hex[:12]}"
        answered = await self._post(tenant, alert_id)
        if answered is None:
            return
        arrived = await self._mailbox.wait_for(tenant, alert_id, timeout)
        if arrived is None:
            self.missing += 1
        else:
            self.seconds.append(max(0.0, arrived - answered))

    async def one_at_a_time(self, count: int, timeout: float) -> None:
        for _ in range(count):
            await self.one(timeout)

    async def every(self, interval: float, stop: asyncio.Event, timeout: float) -> None:
        """An alert every ``interval`` s until ``stop`` is set, each waited for (at most ``timeout`` s)."""
        waits: list[asyncio.Task] = []
        started = time.monotonic()
        while not stop.is_set():
            waits.append(asyncio.create_task(self.one(timeout)))
            delay = started + len(waits) * interval - time.monotonic()
            if delay > 0:
                try:
                    async with asyncio.timeout(delay):
                        await stop.wait()
                except TimeoutError:
                    pass
        await asyncio.gather(*waits)

    def _url(self, tenant: str) -> str:
        return f"{self._ingest_url}/v1/tenants/{tenant}"

    async def _first(self, tenant: str, timeout: float) -> bool:
        alert_id = f"ready-{uuid.uuid4().hex[:12]}"
        return await self._accepted(tenant, alert_id) and await self._mailbox.wait_for(
            tenant, alert_id, timeout) is not None

    async def _post(self, tenant: str, alert_id: str) -> float | None:
        """POST a probe alert; when its 202 came (monotonic), None if it was refused."""
        self.sent += 1
        if not await self._accepted(tenant, alert_id):
            self.post_errors += 1
            return None
        return time.monotonic()

    async def _accepted(self, tenant: str, alert_id: str) -> bool:
        answer = await self._client.post(f"{self._url(tenant)}/alerts", json=self._alert(alert_id),
                                         headers=self._auth)
        return answer.status_code == 202
