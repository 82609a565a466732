"""The delivery loop against a broker that never answers: dead letters wait, deliveries do not."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid

import pytest

from services.notifier import domain
from services.notifier.config import Settings
from services.notifier.transports import Transports
from services.notifier.worker import DeliveryWorker
from shared.dead_letters import DeadLetter
from tests.services.notifier.helpers import alert_created
from tests.support.polling import eventually


class HungBroker:
    """A broker that takes the records and never acknowledges them until released.

    (The shared Kafka of the tests cannot be made to hang, so this stands in for it; the loop's
    only use of the broker is ``publish``.)
    """

    def __init__(self) -> None:
        self.released = asyncio.Event()
        self.attempts = 0
        self.published: list[dict] = []

    async def publish(self, body: bytes, **_: object) -> None:
        self.attempts += 1
        await self.released.wait()
        self.published.append(json.loads(body))


@pytest.mark.timeout(90)
async def test_a_hung_broker_delays_the_dead_letters_not_the_deliveries_and_loses_none(
    notifier_db_url, notifier_pool, smtp_server, tenant_id
):
    settings = Settings(
        environment="development",
        database_url=notifier_db_url,
        smtp_host="127.0.0.1",
        smtp_port=smtp_server.port,
        smtp_timeout_seconds=4,
        webhook_timeout_seconds=4,
        delivery_lease_seconds=6,
        worker_poll_seconds=0.1,
        dead_letter_publish_timeout_seconds=0.5,
        requirement_help_url="https://help.example/",
    )
    dead = uuid.uuid4()
    await notifier_pool.execute(
        """INSERT INTO notification_deliveries (delivery_id, tenant_id, subject_id, alert_id, channel, kind,
                                                state, payload, attempts, last_error, last_attempt_at,
                                                dead_at, dead_letter_published)
           VALUES ($1, $2, 'a1', 'a1', 'webhook:jira', 'alert', 'dead', '{}'::jsonb, 3, 'HTTP 503',
                   now(), now(), false)""",
        dead, tenant_id,
    )
    broker = HungBroker()
    worker = DeliveryWorker(settings, notifier_pool, broker, Transports(settings, notifier_pool, http=None))
    loop = asyncio.create_task(worker.run())
    try:
        await eventually(lambda: broker.attempts, within=10, what="the dead letter's publish to hang")

        # An alert arrives while the broker hangs: its e-mail goes out all the same.
        await notifier_pool.execute(
            "INSERT INTO notifier_contacts (tenant_id, name, email, occurred_at) VALUES ($1, 'SOC', $2, now())",
            tenant_id, "soc@partner.example")
        await notifier_pool.execute(
            """INSERT INTO notification_deliveries (delivery_id, tenant_id, subject_id, alert_id, channel, kind,
                                                    payload)
               VALUES ($1, $2, 'a2', 'a2', $3, 'alert', $4::jsonb)""",
            domain.delivery_id(tenant_id, "a2", domain.CONTACT_EMAIL, "alert"), tenant_id, domain.CONTACT_EMAIL,
            alert_created(tenant_id, "a2").model_dump_json())
        worker.wake()
        await eventually(lambda: smtp_server.mail.for_tenant(tenant_id), within=15, what="the e-mail")

        # The dead letter is not lost: still to publish, and tried again after each timeout.
        await eventually(lambda: broker.attempts >= 3, within=10, what="the publish to be tried again")
        assert not await notifier_pool.fetchval(
            "SELECT dead_letter_published FROM notification_deliveries WHERE delivery_id = $1", dead)

        broker.released.set()  # the broker answers again
        await eventually(
            lambda: notifier_pool.fetchval(
                "SELECT dead_letter_published FROM notification_deliveries WHERE delivery_id = $1", dead),
            within=10, what="the dead letter published",
        )
        letter = next(DeadLetter.model_validate(e) for e in broker.published
                      if e["delivery"]["deliveryId"] == str(dead))
        assert (letter.kind, letter.tenant_id, letter.delivery.last_error) == ("dead-delivery", tenant_id, "HTTP 503")
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
