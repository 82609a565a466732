-- Foundation: this service's idempotency ledger, and the alerts as the response-time service knows
-- them (deepened by later migrations). (Until #11 this file also made the API keys, now the auth
-- schema's 0001, and one ledger every consumer shared.)

-- An event id recorded here has been applied by that consumer; it is inserted in the same
-- transaction as the event's effect, so a redelivered event is dropped and a crash mid-way
-- leaves neither.
CREATE TABLE processed_events (
    consumer     text        NOT NULL,
    event_id     uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX processed_events_processed_at ON processed_events (processed_at);

CREATE TABLE alerts (
    tenant_id          text        NOT NULL,
    alert_id           text        NOT NULL,
    display_name       text,
    alert_type         text,
    severity           text,
    status             text        NOT NULL,
    customer_tenant_id text,
    is_test            boolean     NOT NULL DEFAULT false,
    detected_at        timestamptz,
    clock_started_at   timestamptz NOT NULL,
    alert              jsonb       NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, alert_id)
);
CREATE INDEX alerts_tenant_status ON alerts (tenant_id, status);
