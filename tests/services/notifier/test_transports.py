"""One send is bounded as a whole, not per SMTP command: a relay that answers every command just
inside the per-command timeout must not outlive the delivery's lease (another worker would send again)."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from services.notifier import domain
from services.notifier.config import Settings
from services.notifier.transports import Transports
from tests.services.notifier.helpers import alert_created

REPLY_DELAY = 1.5  # under SMTP_TIMEOUT_SECONDS, so no single command times out


class SlowSmtp:
    """An SMTP relay that takes REPLY_DELAY to answer each command; records the messages it accepts."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def reply(self, writer: asyncio.StreamWriter, line: str) -> None:
        await asyncio.sleep(REPLY_DELAY)
        writer.write(line.encode() + b"\r\n")
        await writer.drain()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self.reply(writer, "220 slow.example ESMTP")
            while line := await reader.readline():
                command = line.decode().strip().upper()
                if command.startswith(("EHLO", "HELO")):
                    await self.reply(writer, "250 slow.example")
                elif command == "DATA":
                    await self.reply(writer, "354 go ahead")
                    body = b""
                    while (chunk := await reader.readline()) not in (b".\r\n", b""):
                        body += chunk
                    self.messages.append(body)
                    await self.reply(writer, "250 queued")
                elif command == "QUIT":
                    await self.reply(writer, "221 bye")
                    break
                else:
                    await self.reply(writer, "250 ok")
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> int:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def __aexit__(self, *exc) -> None:
        assert self.server is not None
        self.server.close()


def escalation_row(tenant_id: str) -> dict:
    created = alert_created(tenant_id, "slow-1")
    return {
        "delivery_id": uuid.uuid4(),
        "tenant_id": tenant_id,
        "subject_id": "slow-1",
        "alert_id": "slow-1",
        "channel": domain.ESCALATION_EMAIL,
        "kind": "escalation",
        "payload": created.model_dump_json(by_alias=True),
        "attempts": 1,
        "redeliveries": 0,
    }


@pytest.mark.timeout(60)
async def test_a_send_slower_than_the_lease_is_cut_short_as_a_transient_failure():
    relay = SlowSmtp()
    async with relay as port:
        settings = Settings(
            environment="development",
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_timeout_seconds=2,
            webhook_timeout_seconds=2,
            delivery_lease_seconds=3,
            escalation_email="escalations@partner.example",
            requirement_help_url="https://help.example/",
        )
        # ~7 commands × 1.5 s: each inside its own timeout, the whole far past the 3 s lease.
        assert settings.send_bound_seconds < settings.delivery_lease_seconds
        transports = Transports(settings, pool=None, http=None)
        started = time.monotonic()
        attempt = await transports.send(escalation_row("tenant-slow-smtp"))
        took = time.monotonic() - started
    assert attempt.outcome == "transient", attempt
    assert "longer than" in (attempt.error or "")
    assert took < 5 * REPLY_DELAY  # cut short: the whole conversation would take 7 replies or more
    assert relay.messages == []  # nothing half-sent: the retry (same Message-ID) is the one delivery
    assert domain.decide(1, attempt, domain.RetryPolicy(3, 0.2, 2, 10)).state == "pending"
