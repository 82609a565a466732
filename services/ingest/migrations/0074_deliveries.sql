-- What the write API knows of the notifier's deliveries (#11), from the delivery-changed events of the
-- compacted deliveries topic: enough to answer a redelivery request with 404 (unknown), 409 (not dead)
-- or 202 and the delivery's view. Rebuilt from the topic into an empty table.
CREATE TABLE deliveries (
    delivery_id uuid        PRIMARY KEY,
    tenant_id   text        NOT NULL,
    state       text        NOT NULL,
    view        jsonb       NOT NULL,       -- shared.events.DeliveryView, as the event carried it
    changed_at  timestamptz NOT NULL,       -- the event's occurredDateTime: the newest change wins
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The consumer's idempotency ledger (shared.db.claim_event): an event id recorded here was applied.
CREATE TABLE IF NOT EXISTS processed_events (
    consumer     text        NOT NULL,
    event_id     uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX IF NOT EXISTS processed_events_processed_at ON processed_events (processed_at);
