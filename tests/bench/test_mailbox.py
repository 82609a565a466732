"""The bench's mailbox (``bench/tools/mailbox.py``): a real SMTP server, sent to with aiosmtplib as the
notifier sends, noting when each alert's own e-mail arrived."""

from __future__ import annotations

import asyncio
import time
from email.message import EmailMessage

import aiosmtplib
import pytest

from bench.tools.mailbox import MailServer
from tests.support.processes import free_port


def _mail(tenant: str, alert_id: str, kind: str) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "csp@localhost", "soc@bench.example", f"alert {alert_id}"
    message["X-CSP-Tenant"], message["X-CSP-Alert-Id"], message["X-CSP-Delivery-Kind"] = tenant, alert_id, kind
    message.set_content("body")
    return message


@pytest.fixture
def mail_server():
    server = MailServer(free_port())
    server.start()
    yield server
    server.stop()


async def test_a_waiter_gets_the_arrival_of_its_alert_e_mail_and_nothing_else(mail_server: MailServer) -> None:
    mailbox = mail_server.mailbox
    waiting = asyncio.create_task(mailbox.wait_for("t1", "a1", timeout=10))
    before = time.monotonic()
    # A reminder of the alert and another tenant's alert of the same id are not its e-mail.
    for message in (_mail("t1", "a1", "reminder"), _mail("t2", "a1", "alert"), _mail("t1", "a1", "alert")):
        await aiosmtplib.send(message, hostname="127.0.0.1", port=mail_server.port)
    arrived = await waiting
    assert arrived is not None and before <= arrived <= time.monotonic()
    assert mailbox.messages == 3
    # The first arrival stays; one that came before anyone waited is found at once.
    await aiosmtplib.send(_mail("t1", "a1", "alert"), hostname="127.0.0.1", port=mail_server.port)
    assert await mailbox.wait_for("t1", "a1", timeout=0.01) == arrived
    assert mailbox.arrived("t2", "a1") is not None


async def test_a_waiter_whose_e_mail_never_comes_gets_none_after_its_timeout(mail_server: MailServer) -> None:
    started = time.monotonic()
    assert await mail_server.mailbox.wait_for("t1", "never", timeout=0.2) is None
    assert time.monotonic() - started >= 0.2
