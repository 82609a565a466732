"""Real protocol peers for the tests: an SMTP server (aiosmtpd) and an HTTP receiver (a ticketing
system), each collecting what it was sent, scriptable to fail, slow down or hold an answer."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

from tests.support.processes import free_port

# --- a real SMTP server ---------------------------------------------------------------------------


class MailCollector:
    """aiosmtpd handler keeping every message; can hold the next one before answering 250."""

    def __init__(self) -> None:
        self.messages: list[tuple[float, EmailMessage]] = []
        self._lock = threading.Lock()
        self._hold: threading.Event | None = None
        self.holding = threading.Event()

    def hold_next(self) -> threading.Event:
        """The next message is kept, then the server waits for the returned event to answer."""
        self._hold = threading.Event()
        self.holding.clear()
        return self._hold

    async def handle_DATA(self, server, session, envelope) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append((time.time(), message))
            hold, self._hold = self._hold, None
        if hold is not None:
            self.holding.set()
            await asyncio.to_thread(hold.wait, 60)
        return "250 Message accepted"

    def for_tenant(self, tenant_id: str, kind: str | None = None) -> list[EmailMessage]:
        with self._lock:
            return [
                m
                for _, m in self.messages
                if m["X-CSP-Tenant"] == tenant_id and (kind is None or m["X-CSP-Delivery-Kind"] == kind)
            ]

    def times(self, tenant_id: str, alert_id: str, kind: str) -> list[float]:
        with self._lock:
            return [
                t
                for t, m in self.messages
                if m["X-CSP-Tenant"] == tenant_id
                and m["X-CSP-Alert-Id"] == alert_id
                and m["X-CSP-Delivery-Kind"] == kind
            ]


@dataclass
class Smtp:
    port: int
    mail: MailCollector


def run_smtp_server() -> Iterator[Smtp]:
    mail = MailCollector()
    port = free_port()
    controller = Controller(mail, hostname="127.0.0.1", port=port)
    controller.start()
    yield Smtp(port, mail)
    controller.stop()


# --- a real HTTP receiver ---------------------------------------------------------------------------


@dataclass
class Received:
    time: float
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A ticketing system: answers each path from a script (then 200), dedupes by Idempotency-Key."""

    port: int = 0
    requests: list[Received] = field(default_factory=list)
    scripts: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    holds: dict[str, threading.Event] = field(default_factory=dict)
    tickets: dict[str, set[str]] = field(default_factory=dict)  # path -> keys it acted upon
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, *answers: tuple[int, dict[str, str]]) -> None:
        with self.lock:
            self.scripts[path] = list(answers)

    def hold_next(self, path: str) -> threading.Event:
        event = threading.Event()
        with self.lock:
            self.holds[path] = event
        return event

    def calls(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def effective(self, path: str) -> set[str]:
        with self.lock:
            return set(self.tickets.get(path, set()))

    def answer(
        self, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], threading.Event | None]:
        with self.lock:
            script = self.scripts.get(path) or []
            status, extra = script.pop(0) if script else (200, {})
            self.requests.append(Received(time.time(), path, headers, body, status))
            if 200 <= status < 300:
                # Acted upon once per key, as a receiver deduping by Idempotency-Key would.
                self.tickets.setdefault(path, set()).add(headers.get("idempotency-key", ""))
            return status, extra, self.holds.pop(path, None)


def run_receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            if len(body) < length:
                # The sender was killed between its headers and the end of its body: a real server
                # never sees such a request, so it is neither recorded nor acted upon.
                self.close_connection = True
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, hold = state.answer(self.path, headers, body)
            if hold is not None:
                hold.wait(60)
            try:
                self.send_response(status)
                for key, value in extra.items():
                    self.send_header(key, value)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")
            except OSError:
                pass  # the sender was killed meanwhile

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


