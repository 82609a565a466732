"""The delivery loop needs no broker: what it records waits in the outbox until a relay publishes it."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
import pytest

from services.notifier import domain, store
from services.notifier.config import Settings
from services.notifier.transports import Transports
from services.notifier.worker import DeliveryWorker
from shared import outbox
from shared.dead_letters import DeadLetter
from shared.egress import webhook_client
from tests.services.notifier.helpers import alert_created, deliveries, set_channel
from tests.support.kafka import read_topic
from tests.support.polling import eventually

HOUR = 3600.0


@pytest.mark.timeout(90)
async def test_without_a_broker_deliveries_go_on_and_a_dead_letter_waits_in_the_outbox_until_a_relay_runs(
    notifier_db_url, notifier_pool, smtp_server, receiver, tenant_id, kafka_bootstrap, topic_prefix
):
    settings = Settings(
        environment="development",
        database_url=notifier_db_url,
        kafka_topic_prefix=topic_prefix,
        smtp_host="127.0.0.1",
        smtp_port=smtp_server.port,
        smtp_timeout_seconds=4,
        webhook_timeout_seconds=4,
        delivery_lease_seconds=6,
        worker_poll_seconds=0.1,
        requirement_help_url="https://help.example/",
    )
    path = f"/{tenant_id}/broken"
    receiver.script(path, (400, {}))
    await set_channel(notifier_pool, tenant_id, "broken", receiver.url(path))
    await notifier_pool.execute(
        "INSERT INTO notifier_contacts (tenant_id, name, email, occurred_at) VALUES ($1, 'SOC', $2, now())",
        tenant_id, "soc@partner.example")
    await store.record_alert_created(notifier_pool, alert_created(tenant_id, "a1"), HOUR, 20 * HOUR)

    # No relay runs: for this notifier the broker is away.
    async with webhook_client(True, follow_redirects=False) as http:
        worker = DeliveryWorker(settings, notifier_pool, Transports(settings, notifier_pool, http))
        loop = asyncio.create_task(worker.run())
        try:
            await eventually(lambda: smtp_server.mail.for_tenant(tenant_id), within=15, what="the e-mail")
            await eventually(lambda: deliveries(notifier_pool, tenant_id, channel="webhook:broken", state="dead"),
                             within=15, what="the dead webhook")
        finally:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
    [dead] = await deliveries(notifier_pool, tenant_id, channel="webhook:broken")
    source = f"delivery {dead['delivery_id']} to webhook:broken"
    assert await notifier_pool.fetchval(
        "SELECT count(*) FROM outbox WHERE topic = 'dead-letter' AND headers->>'dlq.source' = $1", source) == 1

    relay = outbox.OutboxRelay(settings, schema="notifier", client_id="notifier-test-outbox")
    await relay.start()
    try:
        [record] = await read_topic(kafka_bootstrap, f"{topic_prefix}dead-letter", count=1, timeout=30,
                                    predicate=lambda r: r["headers"].get("dlq.source") == source)
    finally:
        await relay.close()
    letter = DeadLetter.model_validate(record["value"])
    assert (letter.kind, letter.tenant_id) == ("dead-delivery", tenant_id)
    assert letter.delivery.last_error.startswith("HTTP 400")


class _SentTransports:
    async def send(self, row):
        return domain.Attempt("delivered", recipient="soc@partner.example")


async def _line_when_the_outcome_fails(monkeypatch, caplog, error: Exception, delivery_id: str) -> logging.LogRecord:
    """Send a delivery whose outcome cannot be recorded (``error``): the one line the worker writes."""
    async def failing(*args, **kwargs):
        raise error

    monkeypatch.setattr(store, "record_outcome", failing)
    settings = Settings(environment="development", requirement_help_url="https://help.example/")
    worker = DeliveryWorker(settings, pool=None, transports=_SentTransports())
    row = {"delivery_id": delivery_id, "kind": "alert", "subject_id": "a1", "channel": "email", "attempts": 1}
    with caplog.at_level(logging.INFO, logger="services.notifier.worker"):
        assert await worker._deliver(row) is None
    [line] = [r for r in caplog.records if r.name == "services.notifier.worker"]
    return line


@pytest.mark.parametrize("error", [
    asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    ConnectionRefusedError(111, "Connection refused"),
])
async def test_an_outcome_the_database_cannot_take_is_one_warning_of_one_kind_whatever_the_error(
    monkeypatch, caplog, error
):
    """The database going away under a batch of sends in flight: a line per send, each with its own
    traceback and failure site, was a storm the repeat limiter could not fold into one kind."""
    line = await _line_when_the_outcome_fails(monkeypatch, caplog, error, "d-1")
    assert line.levelno == logging.WARNING and line.exc_info is None
    assert line.msg.startswith("outcome of a delivery could not be recorded (the database does not answer")
    assert type(error).__name__ in line.getMessage() and "d-1" in line.getMessage()


async def test_an_outcome_that_fails_for_another_reason_is_an_error_with_its_traceback(monkeypatch, caplog):
    line = await _line_when_the_outcome_fails(monkeypatch, caplog, KeyError("state"), "d-2")
    assert line.levelno == logging.ERROR and line.exc_info is not None and "d-2" in line.getMessage()
