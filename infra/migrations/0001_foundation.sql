-- Foundation: the idempotency ledger every consumer writing to PostgreSQL shares, and the
-- alerts as the response-time service knows them (deepened by later migrations).

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

-- API keys other than the operator's: only a SHA-256 digest of each key is kept.
CREATE TABLE api_keys (
    key_digest text        PRIMARY KEY,
    tenant_id  text,                       -- NULL: every tenant
    role       text        NOT NULL CHECK (role IN ('adminAgent', 'securityAdministrator', 'securityReader')),
    user_id    text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
