-- The read API's read model (#11): what other services own and the read API shows, kept from their
-- events (services/scoring/read_model.py). Each row is the newest event of its key: an event older
-- than the stored one (by its own time) changes nothing, so replaying a topic from the beginning
-- rebuilds these tables as they were.

-- Each alert as the response-time service knows it (alert-response-times: GET /alerts, /response-time).
CREATE TABLE alert_response_times (
    tenant_id        text        NOT NULL,
    alert_id         text        NOT NULL,
    alert            jsonb       NOT NULL,          -- the alert's latest known state (SPEC §2 fields)
    status           text        NOT NULL,
    is_test          boolean     NOT NULL,
    clock_started_at timestamptz NOT NULL,
    responded_at     timestamptz,                   -- the first partner response
    responded_by     text,
    latency_us       bigint,                        -- responded_at - clock_started_at, clamped to 0
    state_as_of      timestamptz NOT NULL,          -- occurredDateTime of the event this row holds
    event_id         uuid        NOT NULL,
    PRIMARY KEY (tenant_id, alert_id),
    CONSTRAINT alert_response_times_response_complete CHECK ((responded_at IS NULL) = (latency_us IS NULL))
);
-- The figures of SPEC §3 as two index range scans, O(window + open alerts), never O(history)
-- (the same shape as the response-time service's own alerts table).
CREATE INDEX alert_response_times_responded_window ON alert_response_times (tenant_id, responded_at)
    INCLUDE (latency_us) WHERE NOT is_test AND responded_at IS NOT NULL;
CREATE INDEX alert_response_times_open_unresolved_clock ON alert_response_times (tenant_id, clock_started_at)
    WHERE NOT is_test AND responded_at IS NULL AND status <> 'resolved';
-- GET /alerts: newest first by clock start, ties by alert id, both descending (keyset paging).
CREATE INDEX alert_response_times_newest_first
    ON alert_response_times (tenant_id, clock_started_at DESC, alert_id DESC);
CREATE INDEX alert_response_times_status_newest_first
    ON alert_response_times (tenant_id, status, clock_started_at DESC, alert_id DESC);

-- Each notification and its last attempt (deliveries: GET /deliveries).
CREATE TABLE deliveries (
    tenant_id   text        NOT NULL,
    delivery_id uuid        NOT NULL,
    alert_id    text,
    state       text        NOT NULL,
    created_at  timestamptz NOT NULL,
    view        jsonb       NOT NULL,               -- the delivery as the notifier shows it (DeliveryView)
    changed_at  timestamptz NOT NULL,               -- occurredDateTime of the event this row holds
    event_id    uuid        NOT NULL,
    PRIMARY KEY (tenant_id, delivery_id)
);
CREATE INDEX deliveries_newest_first ON deliveries (tenant_id, created_at DESC, delivery_id);
CREATE INDEX deliveries_state_newest_first ON deliveries (tenant_id, state, created_at DESC, delivery_id);
CREATE INDEX deliveries_alert ON deliveries (tenant_id, alert_id);

-- Each customer's MFA figures (customer-mfa: GET /customers/mfa). A report replaces the previous
-- one, so a customer it leaves out is gone: the read API lists only the customers of the tenant's
-- newest report (observed_at equal to the tenant's latest).
CREATE TABLE customer_mfa (
    tenant_id           text        NOT NULL,
    customer_tenant_id  text        NOT NULL,
    customer_name       text        NOT NULL,
    admins              integer     NOT NULL,
    admins_with_mfa     integer     NOT NULL,
    non_admins_with_mfa integer     NOT NULL,
    total_users         integer     NOT NULL,
    observed_at         timestamptz NOT NULL,
    event_id            uuid        NOT NULL,
    PRIMARY KEY (tenant_id, customer_tenant_id)
);
-- Case-insensitive substring search uses the trigram index (pg_trgm lives in public, see the ingest
-- schema's 0040); the listing order the b-tree; the newest report the last.
CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public;
CREATE INDEX customer_mfa_name_trgm ON customer_mfa USING gin (customer_name public.gin_trgm_ops);
CREATE INDEX customer_mfa_tenant_name ON customer_mfa (tenant_id, lower(customer_name), customer_tenant_id);
CREATE INDEX customer_mfa_tenant_observed ON customer_mfa (tenant_id, observed_at);
