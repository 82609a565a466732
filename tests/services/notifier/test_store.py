"""The delivery log's bookkeeping in PostgreSQL: its events in the outbox (a death's dead letter, a
redelivery, the deliveries of before the events), and pruning."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta

import asyncpg
import pytest

from services.notifier import domain, store
from shared.db import create_pool
from shared.dead_letters import DeadLetter
from shared.events import Actor, ActorType, DeliveryChanged, RedeliveryRequested
from shared.wire import utcnow
from tests.services.notifier.helpers import alert_created, contact_changed, partner_response, waits_for_a_lock

HOUR = 3600.0
SKIP = domain.Decision("skipped")


async def insert_delivery(
    pool: asyncpg.Pool, tenant_id: str, subject: str, state: str, *, age_days: float = 0,
    dead_letter_published: bool = True, announced: bool = True,
) -> uuid.UUID:
    """A delivery row written as it is (``announced`` false, ``dead_letter_published`` false: as a
    notifier of before #11 left it)."""
    delivery_id = uuid.uuid4()
    await pool.execute(
        """INSERT INTO notification_deliveries (delivery_id, tenant_id, subject_id, alert_id, channel, kind,
                                                state, payload, attempts, dead_at, dead_letter_published,
                                                announced, updated_at)
           VALUES ($1, $2, $3, $3, 'webhook:jira', 'alert', $4, '{}'::jsonb, 1,
                   CASE WHEN $4 = 'dead' THEN now() END, $5, $6, now() - make_interval(secs => $7))""",
        delivery_id, tenant_id, subject, state, dead_letter_published, announced, age_days * 86400,
    )
    return delivery_id


async def outbox_of(pool: asyncpg.Pool, tenant_id: str) -> tuple[list[DeliveryChanged], list[DeadLetter]]:
    """The tenant's delivery-changed events and dead letters waiting in the notifier's outbox, in order
    (no relay runs in these tests)."""
    rows = await pool.fetch(
        "SELECT topic, value, headers FROM outbox WHERE headers->>'tenantId' = $1 ORDER BY id", tenant_id)
    changes = [DeliveryChanged.model_validate_json(r["value"]) for r in rows if r["topic"] == "deliveries"]
    letters = []
    for row in (r for r in rows if r["topic"] == "dead-letter"):
        letters.append(DeadLetter.model_validate_json(row["value"]))
        assert json.loads(row["headers"]) == letters[-1].headers()  # as publish_dead_letter sends them
    return changes, letters


def redelivery(tenant_id: str, delivery_id: uuid.UUID) -> RedeliveryRequested:
    return RedeliveryRequested(tenant_id=tenant_id, delivery_id=delivery_id, actor=Actor(type=ActorType.user))


async def test_a_death_publishes_its_change_and_dead_letter_and_a_death_after_a_redelivery_its_own(
    notifier_pool, tenant_id
):
    delivery_id = await insert_delivery(notifier_pool, tenant_id, "a1", "pending")
    dead, refused = domain.Decision("dead"), domain.Attempt("permanent", "HTTP 400", status_code=400)
    claimed = await notifier_pool.fetchrow(
        "SELECT delivery_id, attempts FROM notification_deliveries WHERE delivery_id = $1", delivery_id)
    assert await store.record_outcome(notifier_pool, claimed, dead, refused) == "dead"
    changes, letters = await outbox_of(notifier_pool, tenant_id)
    assert [(c.delivery.state, c.delivery.last_status_code) for c in changes] == [("dead", 400)]
    assert [(letter.kind, letter.delivery.delivery_id, letter.reason) for letter in letters] == [
        ("dead-delivery", str(delivery_id), "HTTP 400")]

    assert await store.requeue_dead(notifier_pool, redelivery(tenant_id, delivery_id)) == (True, "pending")
    # Not dead any more: another command changes nothing and publishes nothing.
    assert await store.requeue_dead(notifier_pool, redelivery(tenant_id, delivery_id)) == (False, "pending")
    command = redelivery(tenant_id, uuid.uuid4())
    assert await store.requeue_dead(notifier_pool, command) == (False, None)
    assert await store.requeue_dead(notifier_pool, command) is None  # applied before

    # It dies again: a dead letter of its own (another id: another death), after the requeue's change.
    claimed = await notifier_pool.fetchrow(
        """UPDATE notification_deliveries SET attempts = attempts + 1 WHERE delivery_id = $1
           RETURNING delivery_id, attempts""", delivery_id)
    assert await store.record_outcome(notifier_pool, claimed, dead, refused) == "dead"
    changes, letters = await outbox_of(notifier_pool, tenant_id)
    assert [(c.delivery.state, c.delivery.redeliveries) for c in changes] == [
        ("dead", 0), ("pending", 1), ("dead", 1)]
    assert len(letters) == 2 and letters[0].event_id != letters[1].event_id
    assert changes[-1].delivery == store.delivery_view(await notifier_pool.fetchrow(
        "SELECT * FROM notification_deliveries WHERE delivery_id = $1", delivery_id))


async def test_the_deliveries_of_before_the_events_are_published_once_with_the_dead_letters_left_unpublished(
    notifier_pool, tenant_id
):
    # As a notifier of before #11 left them (migration 0073 marks them unannounced).
    delivered = await insert_delivery(notifier_pool, tenant_id, "a1", "delivered", announced=False)
    published_dead = await insert_delivery(notifier_pool, tenant_id, "a2", "dead", announced=False)
    unpublished_dead = await insert_delivery(notifier_pool, tenant_id, "a3", "dead", announced=False,
                                             dead_letter_published=False)

    assert await store.announce_unannounced_deliveries(notifier_pool, batch_size=2) >= 3
    changes, letters = await outbox_of(notifier_pool, tenant_id)
    assert sorted((c.delivery.id, c.delivery.state) for c in changes) == sorted(
        [(delivered, "delivered"), (published_dead, "dead"), (unpublished_dead, "dead")])
    assert [letter.delivery.delivery_id for letter in letters] == [str(unpublished_dead)]

    assert await store.announce_unannounced_deliveries(notifier_pool) == 0
    assert len((await outbox_of(notifier_pool, tenant_id))[0]) == 3


async def test_finished_deliveries_and_timers_older_than_the_retention_are_pruned(notifier_pool, tenant_id):
    old = {
        state: await insert_delivery(notifier_pool, tenant_id, f"old-{state}", state, age_days=91)
        for state in ("delivered", "dead", "skipped", "cancelled", "pending")
    }
    unpublished_dead = await insert_delivery(
        notifier_pool, tenant_id, "old-dead-unpublished", "dead", age_days=91, dead_letter_published=False
    )
    recent = await insert_delivery(notifier_pool, tenant_id, "recent", "delivered", age_days=10)
    for alert_id, state, age_days in (("t-fired", "fired", 91), ("t-cancelled", "cancelled", 91),
                                      ("t-scheduled", "scheduled", 91), ("t-recent", "fired", 10)):
        await notifier_pool.execute(
            """INSERT INTO notification_timers (tenant_id, alert_id, kind, due_at, state, payload, updated_at)
               VALUES ($1, $2, 'reminder', now(), $3, '{}'::jsonb, now() - make_interval(secs => $4))""",
            tenant_id, alert_id, state, age_days * 86400,
        )

    # Marks of closed alerts: an old one is kept while a delivery of its alert is left.
    for alert_id, age_days in (("old-closed", 91), ("old-pending", 91), ("recently-closed", 10)):
        await notifier_pool.execute(
            """INSERT INTO notifier_closed_alerts (tenant_id, alert_id, reason, closed_at)
               VALUES ($1, $2, 'a partner response', now() - make_interval(secs => $3))""",
            tenant_id, alert_id, age_days * 86400,
        )

    deleted_deliveries, deleted_timers, deleted_marks = await store.prune_finished(notifier_pool, keep_days=90)
    assert deleted_deliveries >= 4 and deleted_timers >= 2 and deleted_marks >= 1  # others' rows are recent

    left = {
        r["delivery_id"]
        for r in await notifier_pool.fetch(
            "SELECT delivery_id FROM notification_deliveries WHERE tenant_id = $1", tenant_id
        )
    }
    assert left == {old["pending"], unpublished_dead, recent}
    timers = await notifier_pool.fetch(
        "SELECT alert_id FROM notification_timers WHERE tenant_id = $1 ORDER BY alert_id", tenant_id
    )
    assert [t["alert_id"] for t in timers] == ["t-recent", "t-scheduled"]
    marks = await notifier_pool.fetch(
        "SELECT alert_id FROM notifier_closed_alerts WHERE tenant_id = $1 ORDER BY alert_id", tenant_id
    )
    assert [m["alert_id"] for m in marks] == ["old-pending", "recently-closed"]


async def test_a_due_timer_of_a_test_alert_or_with_an_unreadable_payload_is_cancelled_not_fired(
    notifier_pool, tenant_id
):
    # Timers scheduled before test alerts stopped getting them, and a row no version can read: each
    # ends as cancelled, sends nothing, and does not stop the timers due beside it.
    test_alert = alert_created(tenant_id, "test", isTest=True).model_dump_json()
    ordinary = alert_created(tenant_id, "ordinary").model_dump_json()
    for alert_id, payload in (("test", test_alert), ("unreadable", "{}"), ("ordinary", ordinary)):
        await notifier_pool.execute(
            """INSERT INTO notification_timers (tenant_id, alert_id, kind, due_at, payload)
               VALUES ($1, $2, 'reminder', now() - interval '1 second', $3::jsonb)""",
            tenant_id, alert_id, payload,
        )
    while await store.fire_due_timers(notifier_pool, escalation_email=False, limit=100):
        pass
    states = dict(await notifier_pool.fetch(
        "SELECT alert_id, state FROM notification_timers WHERE tenant_id = $1", tenant_id))
    assert states == {"test": "cancelled", "unreadable": "cancelled", "ordinary": "fired"}
    reminders = await notifier_pool.fetch(
        "SELECT subject_id FROM notification_deliveries WHERE tenant_id = $1 AND kind = 'reminder'", tenant_id)
    assert [r["subject_id"] for r in reminders] == ["ordinary"]


async def test_a_timer_reads_its_alert_from_the_alerts_delivery_to_the_contact_which_outlives_it(
    notifier_pool, tenant_id
):
    # Timers keep no copy of the alert (migration 0082): the alert's e-mail to the contact holds it, and
    # pruning keeps that row while a timer of the alert is scheduled, however old it is.
    for alert_id in ("kept", "gone"):
        assert await store.record_alert_created(notifier_pool, alert_created(tenant_id, alert_id), 3600, 72000)
    assert await notifier_pool.fetchval(
        "SELECT count(*) FROM notification_timers WHERE tenant_id = $1 AND payload IS NULL", tenant_id) == 4
    await notifier_pool.execute(
        """UPDATE notification_deliveries SET updated_at = now() - interval '91 days', dead_letter_published = true
           WHERE tenant_id = $1""", tenant_id)
    await store.prune_finished(notifier_pool, keep_days=90)
    assert await notifier_pool.fetchval(
        "SELECT count(*) FROM notification_deliveries WHERE tenant_id = $1 AND channel = $2 AND kind = 'alert'",
        tenant_id, domain.CONTACT_EMAIL) == 2

    # One alert's row gone all the same (by hand): its timer is cancelled, the other fires with its alert.
    await notifier_pool.execute(
        "DELETE FROM notification_deliveries WHERE tenant_id = $1 AND subject_id = 'gone'", tenant_id)
    await notifier_pool.execute(
        """UPDATE notification_timers SET due_at = now() - interval '1 second'
           WHERE tenant_id = $1 AND kind = 'reminder'""", tenant_id)
    while await store.fire_due_timers(notifier_pool, escalation_email=False, limit=100):
        pass
    states = dict(await notifier_pool.fetch(
        "SELECT alert_id, state FROM notification_timers WHERE tenant_id = $1 AND kind = 'reminder'", tenant_id))
    assert states == {"kept": "fired", "gone": "cancelled"}
    reminder = await notifier_pool.fetchval(
        "SELECT payload FROM notification_deliveries WHERE tenant_id = $1 AND kind = 'reminder'", tenant_id)
    assert json.loads(reminder)["alert"]["displayName"] == "Unusual activity kept"


async def test_a_skip_for_want_of_a_contact_that_arrived_during_the_send_is_due_again_not_skipped(
    notifier_pool, tenant_id
):
    # The send read "no contact"; the contact arrived (and found the row still pending) before the
    # skip was recorded. Recording it as skipped would lose the e-mail for good.
    async def claimed_email(subject: str) -> asyncpg.Record:
        await insert_delivery(notifier_pool, tenant_id, subject, "pending")
        await notifier_pool.execute(
            "UPDATE notification_deliveries SET channel = 'email:contact' WHERE tenant_id = $1 AND subject_id = $2",
            tenant_id, subject)
        return await notifier_pool.fetchrow(
            "SELECT delivery_id, tenant_id, attempts FROM notification_deliveries "
            "WHERE tenant_id = $1 AND subject_id = $2", tenant_id, subject)

    skip = domain.Decision("skipped")
    before = await claimed_email("before-the-contact")
    assert await store.record_outcome(notifier_pool, before, skip, domain.NO_CONTACT) == "skipped"

    await notifier_pool.execute(
        "INSERT INTO notifier_contacts (tenant_id, name, email, occurred_at) VALUES ($1, 'SOC', $2, now())",
        tenant_id, "soc@partner.example")
    during = await claimed_email("during-the-send")
    assert await store.record_outcome(notifier_pool, during, skip, domain.NO_CONTACT) == "pending"

    rows = {r["subject_id"]: (r["state"], r["awaiting_contact"]) for r in await notifier_pool.fetch(
        "SELECT subject_id, state, awaiting_contact FROM notification_deliveries WHERE tenant_id = $1", tenant_id)}
    assert rows == {"before-the-contact": ("skipped", True), "during-the-send": ("pending", False)}


async def claim_contact_email(pool: asyncpg.Pool, tenant_id: str, alert_id: str) -> asyncpg.Record:
    """The alert's e-mail to the contact taken for a send as the worker takes it (this row alone:
    the worker's claim would take other tests' rows too)."""
    return await pool.fetchrow(
        """UPDATE notification_deliveries
           SET attempts = attempts + 1, last_attempt_at = now(), next_attempt_at = now() + interval '1 minute'
           WHERE tenant_id = $1 AND subject_id = $2 AND channel = 'email:contact' AND kind = 'alert'
           RETURNING delivery_id, tenant_id, subject_id, alert_id, channel, kind, payload, attempts, redeliveries""",
        tenant_id, alert_id,
    )


async def contact_email_state(pool: asyncpg.Pool, tenant_id: str, alert_id: str) -> tuple[str, bool]:
    row = await pool.fetchrow(
        """SELECT state, awaiting_contact FROM notification_deliveries
           WHERE tenant_id = $1 AND subject_id = $2 AND channel = 'email:contact' AND kind = 'alert'""",
        tenant_id, alert_id,
    )
    return row["state"], row["awaiting_contact"]


@pytest.mark.parametrize("timers", ["none (a test alert)", "all fired"])
async def test_an_alert_answered_while_its_no_contact_send_was_in_flight_is_not_emailed_when_the_contact_comes(
    notifier_pool, tenant_id, timers
):
    # The answer comes while the send looks for a contact: the row does not wait for one yet, and no
    # timer is left to cancel. Once the skip is recorded and the contact arrives, nothing is sent.
    # The contact was there when the alert came and is cleared before the send (a tenant known to
    # have none gets the e-mail logged skipped at once: no send looks for one).
    await notifier_pool.execute(
        "INSERT INTO notifier_contacts (tenant_id, name, email, occurred_at) VALUES ($1, 'SOC', $2, now() - "
        "interval '1 hour')", tenant_id, "old@partner.example")
    if timers == "all fired":
        created = alert_created(tenant_id, "answered")
        # Escalation due on arrival: the alert gets that timer alone, and it fires at once.
        await store.record_alert_created(notifier_pool, created, reminder_after=-2, escalation_after=-1)
        while await store.fire_due_timers(notifier_pool, escalation_email=False, limit=100):
            pass
        assert {r["state"] for r in await notifier_pool.fetch(
            "SELECT state FROM notification_timers WHERE tenant_id = $1", tenant_id)} == {"fired"}
    else:
        created = alert_created(tenant_id, "answered", isTest=True)
        await store.record_alert_created(notifier_pool, created, HOUR, 20 * HOUR)
    await notifier_pool.execute("UPDATE notifier_contacts SET email = NULL WHERE tenant_id = $1", tenant_id)
    sending = await claim_contact_email(notifier_pool, tenant_id, "answered")

    await store.record_alert_updated(notifier_pool, partner_response(created))
    assert await store.record_outcome(notifier_pool, sending, SKIP, domain.NO_CONTACT) == "skipped"
    assert await store.record_contact(notifier_pool, contact_changed(tenant_id, "soc@partner.example"), HOUR) == 0

    assert await contact_email_state(notifier_pool, tenant_id, "answered") == ("skipped", False)


async def test_a_contact_and_a_partner_response_applied_at_once_send_no_email_about_the_answered_alert(
    notifier_db_url, notifier_pool, tenant_id
):
    # The alert's e-mail was skipped for want of a contact; its timers are still scheduled. The
    # contact (catching up) and the partner response are applied at the same time, forced into the
    # order that once sent the e-mail: the catch-up has read the row and waits to lock it, then the
    # response is applied (a third session holds the row until both are there).
    created = alert_created(tenant_id, "raced")
    await store.record_alert_created(notifier_pool, created, HOUR, 20 * HOUR)
    # (No contact when the alert came: logged skipped, waiting for one, at once.)
    assert await contact_email_state(notifier_pool, tenant_id, "raced") == ("skipped", True)
    sending = await notifier_pool.fetchrow(
        """SELECT delivery_id FROM notification_deliveries
           WHERE tenant_id = $1 AND subject_id = 'raced' AND channel = 'email:contact'""", tenant_id)

    # One connection each, so each pool's session (its pid) is known.
    contact_pool, response_pool = [await create_pool(notifier_db_url, schema="notifier", max_size=1) for _ in range(2)]
    contact_pid, response_pid = [await p.fetchval("SELECT pg_backend_pid()") for p in (contact_pool, response_pool)]
    blocker = await asyncpg.connect(notifier_db_url, server_settings={"search_path": "notifier"})
    try:
        async with blocker.transaction():
            await blocker.execute(
                "SELECT 1 FROM notification_deliveries WHERE delivery_id = $1 FOR UPDATE", sending["delivery_id"]
            )
            applying_contact = asyncio.create_task(
                store.record_contact(contact_pool, contact_changed(tenant_id, "soc@partner.example"), HOUR)
            )
            await waits_for_a_lock(blocker, contact_pid)
            applying_response = asyncio.create_task(
                store.record_alert_updated(response_pool, partner_response(created))
            )
            await waits_for_a_lock(blocker, response_pid)
        await asyncio.wait_for(asyncio.gather(applying_contact, applying_response), 30)
    finally:
        await blocker.close()
        for pool in (contact_pool, response_pool):
            await pool.close()

    assert applying_contact.result() == 1  # the catch-up made the e-mail due...
    assert applying_response.result() == 2  # ...then the response cancelled the reminder and the escalation
    # ...and the e-mail, not sent yet: the alert is answered.
    assert await contact_email_state(notifier_pool, tenant_id, "raced") == ("cancelled", False)


async def test_a_change_made_later_is_told_as_later_even_by_a_transaction_that_began_earlier(
    notifier_db_url, notifier_pool, tenant_id
):
    # Consumers of the deliveries topic keep each delivery's newest change. A partner response starts
    # applying (and waits for the tenant's contact lock, held here); meanwhile a failed attempt of the
    # alert's reminder is recorded; then the response cancels the reminder. The cancellation is the
    # last change, though its transaction began first: it must be told as the newest.
    created = alert_created(tenant_id, "a1")
    reminder = await insert_delivery(notifier_pool, tenant_id, "a1", "pending")
    await notifier_pool.execute(
        "UPDATE notification_deliveries SET kind = 'reminder', payload = $2::jsonb WHERE delivery_id = $1",
        reminder, created.model_dump_json())
    claimed = await notifier_pool.fetchrow(
        "SELECT delivery_id, tenant_id, attempts FROM notification_deliveries WHERE delivery_id = $1", reminder)

    response_pool = await create_pool(notifier_db_url, schema="notifier", max_size=1)
    response_pid = await response_pool.fetchval("SELECT pg_backend_pid()")
    blocker = await asyncpg.connect(notifier_db_url, server_settings={"search_path": "notifier"})
    try:
        async with blocker.transaction():
            await blocker.execute("SELECT pg_advisory_xact_lock(hashtextextended('notifier-contact:' || $1, 0))",
                                  tenant_id)
            applying_response = asyncio.create_task(
                store.record_alert_updated(response_pool, partner_response(created)))
            await waits_for_a_lock(blocker, response_pid)
            retry = domain.Decision("pending", 60)
            assert await store.record_outcome(notifier_pool, claimed, retry, domain.Attempt("transient", "HTTP 503"))
        assert await asyncio.wait_for(applying_response, 30) == 0  # no timer, one delivery cancelled
    finally:
        await blocker.close()
        await response_pool.close()

    changes, _ = await outbox_of(notifier_pool, tenant_id)
    assert [c.delivery.state for c in changes] == ["pending", "cancelled"]
    assert changes[1].occurred_date_time > changes[0].occurred_date_time


# --- alerts nobody receives, alerts in batches (#15) -------------------------------------------------------


async def test_the_email_of_a_tenant_without_a_contact_is_logged_skipped_at_once_and_told_once(
    notifier_pool, tenant_id
):
    # Nobody to send it to: the e-mail is logged as the worker would have left it (skipped, waiting
    # for a contact) with no claim, no send and one change told, not two (pending, then skipped). The
    # escalation of an alert that arrives already older than 20 hours (fired at once) likewise.
    old = alert_created(tenant_id, "old", detectedDateTime=(utcnow() - timedelta(hours=21)).isoformat())
    assert await store.record_alert_created(notifier_pool, old, HOUR, 20 * HOUR)
    while await store.fire_due_timers(notifier_pool, escalation_email=False, limit=100):
        pass
    rows = await notifier_pool.fetch(
        """SELECT kind, state, last_error, awaiting_contact, attempts, last_attempt_at IS NOT NULL AS skipped_at
           FROM notification_deliveries WHERE tenant_id = $1 ORDER BY kind""", tenant_id)
    assert [tuple(r) for r in rows] == [
        ("alert", "skipped", "no security contact", True, 0, True),
        ("escalation", "skipped", "no security contact", True, 0, True)]
    changes, _ = await outbox_of(notifier_pool, tenant_id)
    assert [(c.delivery.kind, c.delivery.state) for c in changes] == [("alert", "skipped"), ("escalation", "skipped")]

    # With a contact the e-mail is due as ever.
    other = f"{tenant_id}-with-contact"
    await store.record_contact(notifier_pool, contact_changed(other, "soc@partner.example"), HOUR)
    assert await store.record_alert_created(notifier_pool, alert_created(other, "a1"), HOUR, 20 * HOUR)
    assert await contact_email_state(notifier_pool, other, "a1") == ("pending", False)
    changes, _ = await outbox_of(notifier_pool, other)
    assert [c.delivery.state for c in changes] == ["pending"]


async def test_a_batch_of_alert_events_is_applied_in_order_each_event_once(notifier_pool, tenant_id):
    await store.record_contact(notifier_pool, contact_changed(tenant_id, "soc@partner.example"), HOUR)
    first, second = alert_created(tenant_id, "a1"), alert_created(tenant_id, "a2")
    answered = partner_response(first)
    events = [first, second, first, answered]  # an id twice in one batch counts once

    assert await store.apply_alert_events(notifier_pool, events, store.AlertsBatch(HOUR, 20 * HOUR)) == (2, 2)
    # Consumed again (a crash before the offsets were committed): nothing more.
    assert await store.apply_alert_events(notifier_pool, events, store.AlertsBatch(HOUR, 20 * HOUR)) == (0, 0)

    timers = {(r["alert_id"], r["kind"]): r["state"] for r in await notifier_pool.fetch(
        "SELECT alert_id, kind, state FROM notification_timers WHERE tenant_id = $1", tenant_id)}
    assert timers == {("a1", "reminder"): "cancelled", ("a1", "escalation"): "cancelled",
                      ("a2", "reminder"): "scheduled", ("a2", "escalation"): "scheduled"}
    assert [(r["subject_id"], r["state"]) for r in await notifier_pool.fetch(
        "SELECT subject_id, state FROM notification_deliveries WHERE tenant_id = $1 ORDER BY subject_id",
        tenant_id)] == [("a1", "pending"), ("a2", "pending")]
    assert await notifier_pool.fetchval("SELECT count(*) FROM notifier_closed_alerts WHERE tenant_id = $1",
                                        tenant_id) == 1


async def test_a_contact_committing_while_an_alert_is_applied_is_waited_for_and_the_email_is_due(
    notifier_db_url, notifier_pool, tenant_id
):
    # The contact's transaction holds the tenant's contact lock (as record_contact does) and has not
    # committed: the alert's batch waits for it, then sees the contact. (Without the wait it would
    # log the e-mail as waiting for a contact that, committed just before, never looks for it again.)
    batch_pool = await create_pool(notifier_db_url, schema="notifier", max_size=1)
    batch_pid = await batch_pool.fetchval("SELECT pg_backend_pid()")
    contact = await asyncpg.connect(notifier_db_url, server_settings={"search_path": "notifier"})
    try:
        async with contact.transaction():
            await contact.execute("SELECT pg_advisory_xact_lock(hashtextextended('notifier-contact:' || $1, 0))",
                                  tenant_id)
            await contact.execute(
                "INSERT INTO notifier_contacts (tenant_id, name, email, occurred_at) VALUES ($1, 'SOC', $2, now())",
                tenant_id, "soc@partner.example")
            applying = asyncio.create_task(store.apply_alert_events(
                batch_pool, [alert_created(tenant_id, "a1")], store.AlertsBatch(HOUR, 20 * HOUR)))
            await waits_for_a_lock(contact, batch_pid)
        assert await asyncio.wait_for(applying, 30) == (1, 0)
    finally:
        await contact.close()
        await batch_pool.close()
    assert await contact_email_state(notifier_pool, tenant_id, "a1") == ("pending", False)
