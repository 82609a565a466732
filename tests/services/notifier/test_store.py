"""The delivery log's bookkeeping in PostgreSQL: redelivery vs. the dead-letter outbox, and pruning."""

from __future__ import annotations

import uuid

import asyncpg

from services.ingest import channels_store
from services.notifier import domain, store
from tests.services.notifier.helpers import alert_created


async def insert_delivery(
    pool: asyncpg.Pool, tenant_id: str, subject: str, state: str, *, age_days: float = 0,
    dead_letter_published: bool = True,
) -> uuid.UUID:
    delivery_id = uuid.uuid4()
    await pool.execute(
        """INSERT INTO notification_deliveries (delivery_id, tenant_id, subject_id, alert_id, channel, kind,
                                                state, payload, attempts, dead_at, dead_letter_published,
                                                updated_at)
           VALUES ($1, $2, $3, $3, 'webhook:jira', 'alert', $4, '{}'::jsonb, 1,
                   CASE WHEN $4 = 'dead' THEN now() END, $5, now() - make_interval(secs => $6))""",
        delivery_id, tenant_id, subject, state, dead_letter_published, age_days * 86400,
    )
    return delivery_id


async def unpublished(pool: asyncpg.Pool, tenant_id: str) -> list[asyncpg.Record]:
    return [r for r in await store.unpublished_dead_letters(pool, 10_000) if r["tenant_id"] == tenant_id]


async def test_a_redelivery_drops_the_unpublished_dead_letter_and_a_second_death_gets_its_own(
    notifier_pool, tenant_id
):
    # The delivery died while Kafka was down: its dead-letter event is still to publish.
    delivery_id = await insert_delivery(notifier_pool, tenant_id, "a1", "dead", dead_letter_published=False)
    assert [r["redeliveries"] for r in await unpublished(notifier_pool, tenant_id)] == [0]

    row, requeued = await channels_store.redeliver(notifier_pool, tenant_id, delivery_id)
    assert requeued and row["state"] == "pending"
    assert await notifier_pool.fetchval(
        "SELECT dead_letter_published FROM notification_deliveries WHERE delivery_id = $1", delivery_id
    )
    assert await unpublished(notifier_pool, tenant_id) == []  # no stale "dead-lettered" for a live row

    # It dies again: that death is published, under the redelivery count it died at.
    claimed = await notifier_pool.fetchrow(
        "SELECT delivery_id, attempts FROM notification_deliveries WHERE delivery_id = $1", delivery_id
    )
    dead = domain.Decision("dead")
    assert await store.record_outcome(notifier_pool, claimed, dead, domain.Attempt("permanent", "HTTP 400"))
    assert [r["redeliveries"] for r in await unpublished(notifier_pool, tenant_id)] == [1]


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

    deleted_deliveries, deleted_timers = await store.prune_finished(notifier_pool, keep_days=90)
    assert deleted_deliveries >= 4 and deleted_timers >= 2  # other tests' rows are all recent

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
