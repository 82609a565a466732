"""``deliveries-grouped`` (#15): the alerts a storm's digest took in, one event for a transaction's, each
standing for its delivery's ``delivery-changed`` as the notifier's log shows a grouped row (pure)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from shared.events import DeliveriesGrouped, DeliveryChanged, DeliveryView, GroupedDelivery, delivery_changes

AT = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def grouped(*alert_ids: str) -> DeliveriesGrouped:
    return DeliveriesGrouped(tenant_id="t1", occurred_date_time=AT, digest_id=uuid.uuid4(), channel="webhook:soc",
                             created_date_time=AT, deliveries=[GroupedDelivery(id=uuid.uuid4(), alert_id=a)
                                                               for a in alert_ids])


def test_each_delivery_it_names_is_the_change_a_grouped_row_of_the_digest_would_publish():
    event = grouped("a1", "a2")
    expected = [DeliveryChanged(event_id=event.event_id, occurred_date_time=AT, tenant_id="t1", delivery=DeliveryView(
        id=d.id, alert_id=d.alert_id, subject=d.alert_id, channel="webhook:soc", kind="alert", state="grouped",
        created_date_time=AT, digest_id=event.digest_id)) for d in event.deliveries]
    changes = event.changes()
    assert changes == expected
    assert [c.model_dump_json() for c in changes] == [e.model_dump_json() for e in expected]
    # Read back from its record as a consumer does, the same.
    assert DeliveriesGrouped.model_validate_json(event.record_value()).changes() == expected


def test_a_batch_stands_for_its_changes_in_order_and_the_event_is_keyed_by_its_first_delivery():
    first, second = grouped("a1", "a2"), grouped("a3")
    alone = DeliveryChanged(tenant_id="t1", delivery=DeliveryView(
        id=uuid.uuid4(), subject="digest:a1", channel="webhook:soc", kind="digest", state="pending",
        created_date_time=AT))
    assert [c.delivery.subject for c in delivery_changes([first, alone, second])] == ["a1", "a2", "digest:a1", "a3"]
    assert first.kafka_key() == f"t1:{first.deliveries[0].id}".encode()


def test_an_event_naming_no_delivery_is_refused():
    with pytest.raises(ValidationError, match="deliveries"):
        DeliveriesGrouped(tenant_id="t1", digest_id=uuid.uuid4(), channel="email:contact", created_date_time=AT,
                          deliveries=[])
