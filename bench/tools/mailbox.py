"""The security contact's mailbox of a bench run: a real SMTP server (aiosmtpd, in a thread of the bench's
process) on the port the notifier sends to, noting when each alert's e-mail arrived.

It reads the headers the notifier's e-mail transport writes (``X-CSP-Tenant``, ``X-CSP-Alert-Id``,
``X-CSP-Delivery-Kind``) and keeps the first arrival of each alert's ``alert`` e-mail, on the bench's
monotonic clock (``time.monotonic`` is one clock for every thread of a process), so the time from a POST's
answer to its e-mail is one subtraction.
"""

from __future__ import annotations

import asyncio
import threading
import time
from email.parser import BytesHeaderParser
from email.policy import default

from aiosmtpd.controller import Controller


class Mailbox:
    """aiosmtpd handler: each alert e-mail's arrival, by (tenant, alert id)."""

    def __init__(self) -> None:
        self._arrived: dict[tuple[str, str], float] = {}
        self._waiters: dict[tuple[str, str], tuple[asyncio.AbstractEventLoop, asyncio.Future]] = {}
        self._lock = threading.Lock()
        self._parser = BytesHeaderParser(policy=default)
        self.messages = 0

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd's naming)
        now = time.monotonic()
        headers = self._parser.parsebytes(envelope.content)
        tenant, alert_id = headers["X-CSP-Tenant"], headers["X-CSP-Alert-Id"]
        waiter = None
        with self._lock:
            self.messages += 1
            if headers["X-CSP-Delivery-Kind"] == "alert" and tenant and alert_id:
                key = (str(tenant), str(alert_id))
                self._arrived.setdefault(key, now)
                waiter = self._waiters.pop(key, None)
        if waiter is not None:  # woken in its own loop (this one is the SMTP server's, in its thread)
            loop, future = waiter
            loop.call_soon_threadsafe(lambda: future.done() or future.set_result(now))
        return "250 Message accepted"

    def arrived(self, tenant_id: str, alert_id: str) -> float | None:
        with self._lock:
            return self._arrived.get((tenant_id, alert_id))

    async def wait_for(self, tenant_id: str, alert_id: str, timeout: float) -> float | None:
        """When the alert's e-mail arrived (monotonic), waiting at most ``timeout`` s; None if it did not."""
        key = (tenant_id, alert_id)
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._lock:
            if (arrived := self._arrived.get(key)) is not None:
                return arrived
            self._waiters[key] = (loop, future)
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            return self.arrived(tenant_id, alert_id)
        finally:
            with self._lock:
                if self._waiters.get(key, (None, None))[1] is future:
                    del self._waiters[key]


class MailServer:
    """The SMTP server of a :class:`Mailbox` on ``port`` (127.0.0.1), from ``start`` until ``stop``."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.mailbox = Mailbox()
        self._controller = Controller(self.mailbox, hostname="127.0.0.1", port=port)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()
