"""What the write API keeps of the notifier's deliveries (``deliveries_store``), on the real PostgreSQL:
a delivery change of a tenant being offboarded waits for the offboarding and is then dropped, in the
apply's own transaction (#18), so no row of the tenant outlives its offboarding."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from services.ingest import deliveries_store
from shared import offboarding
from shared.events import Actor, ActorType, DeliveriesGrouped, DeliveryChanged, DeliveryView, GroupedDelivery


def delivery_changed(tenant_id: str) -> DeliveryChanged:
    at = datetime.now(UTC) - timedelta(minutes=5)
    view = DeliveryView(id=uuid.uuid4(), alert_id="a1", subject="a1", channel="webhook:jira", kind="alert",
                        state="dead", recipient="https://tickets.example/hook", attempts=3,
                        created_date_time=at, last_attempt_date_time=at)
    return DeliveryChanged(tenant_id=tenant_id, occurred_date_time=at, delivery=view)


async def apply(db_pool, *events: DeliveryChanged | DeliveriesGrouped) -> int:
    return await deliveries_store.apply_deliveries_changed(db_pool, events)


async def rows_of(db_pool, tenant_id: str) -> int:
    return await db_pool.fetchval("SELECT count(*) FROM deliveries WHERE tenant_id = $1", tenant_id)


async def test_a_change_applied_while_its_tenant_is_offboarded_waits_and_leaves_no_row(db_pool, tenant_id):
    other = f"{tenant_id}-other"
    async with db_pool.acquire() as offboarder:
        offboarding_it = offboarder.transaction()
        await offboarding_it.start()
        await offboarding.lock_for_offboarding(offboarder, tenant_id)
        applying = asyncio.create_task(apply(db_pool, delivery_changed(tenant_id)))
        # Another tenant's change is not held up meanwhile.
        assert await asyncio.wait_for(apply(db_pool, delivery_changed(other)), 10) == 1
        await asyncio.sleep(0.5)
        assert not applying.done(), "the apply must wait for the offboarding in progress"
        await offboarding.record_offboarded(offboarder, tenant_id, datetime.now(UTC))
        await offboarding_it.commit()
    assert await asyncio.wait_for(applying, 10) == 0
    assert await rows_of(db_pool, tenant_id) == 0, "the offboarding committed first: the change is dropped"
    assert await rows_of(db_pool, other) == 1

    # And once offboarded, a change told later (a replay) is dropped too, without waiting.
    assert await asyncio.wait_for(apply(db_pool, delivery_changed(tenant_id)), 10) == 0
    assert await rows_of(db_pool, tenant_id) == 0


async def test_a_batch_keeps_each_deliverys_newest_view_once_whatever_its_order_and_repeats(db_pool, tenant_id):
    first = delivery_changed(tenant_id)
    later = first.model_copy(update={
        "event_id": uuid.uuid4(), "occurred_date_time": first.occurred_date_time + timedelta(minutes=1),
        "delivery": first.delivery.model_copy(update={"state": "delivered"})})
    other = delivery_changed(tenant_id)
    # The later change before the first, the first twice: 3 applied (the repeat counted once).
    assert await apply(db_pool, later, first, first, other) == 3
    states = dict(await db_pool.fetch("SELECT delivery_id, state FROM deliveries WHERE tenant_id = $1", tenant_id))
    assert states == {first.delivery.id: "delivered", other.delivery.id: "dead"}
    # The batch consumed again (a crash before its offsets were committed): nothing applied twice.
    assert await apply(db_pool, later, first, other) == 0
    # An older change in a later batch leaves the newer view.
    assert await apply(db_pool, first.model_copy(update={"event_id": uuid.uuid4()})) == 1
    state = await db_pool.fetchval("SELECT state FROM deliveries WHERE delivery_id = $1", first.delivery.id)
    assert state == "delivered"


async def test_a_deliveries_grouped_event_records_each_delivery_it_names_grouped_and_not_redeliverable(
    db_pool, tenant_id
):
    grouped = DeliveriesGrouped(tenant_id=tenant_id, digest_id=uuid.uuid4(), channel="email:contact",
                                created_date_time=datetime.now(UTC),
                                deliveries=[GroupedDelivery(id=uuid.uuid4(), alert_id=f"a{n}") for n in range(3)])
    assert await apply(db_pool, grouped, grouped) == 1
    states = dict(await db_pool.fetch("SELECT delivery_id, state FROM deliveries WHERE tenant_id = $1", tenant_id))
    assert states == {d.id: "grouped" for d in grouped.deliveries}
    assert await apply(db_pool, grouped) == 0
    answer = await deliveries_store.request_redelivery(db_pool, tenant_id, grouped.deliveries[1].id,
                                                       Actor(type=ActorType.user, id="soc"))
    assert (answer.state, answer.requested) == ("grouped", False)
