-- Response time (SPEC §3): per alert, the first partner response (write-once) and its latency,
-- with the indexes that keep the 30-day figures an index range scan (O(window + open alerts),
-- never O(history)); and per tenant, the last requirement status published.

ALTER TABLE alerts
    ADD COLUMN ingested_at   timestamptz,
    -- false while only an alert-updated has arrived (its alert-created is late)
    ADD COLUMN created_seen  boolean     NOT NULL DEFAULT true,
    -- when the stored state (status, alert) was current: an older state never overwrites a newer one
    ADD COLUMN state_as_of   timestamptz,
    ADD COLUMN responded_at  timestamptz,
    ADD COLUMN responded_by  text,
    -- responded_at - clock_started_at in whole microseconds, clamped to 0
    ADD COLUMN latency_us    bigint,
    ADD CONSTRAINT alerts_response_complete CHECK ((responded_at IS NULL) = (latency_us IS NULL));

UPDATE alerts SET state_as_of = updated_at WHERE state_as_of IS NULL;
ALTER TABLE alerts ALTER COLUMN state_as_of SET NOT NULL;

-- The rolling window: sum(latency_us) over responded_at > now - 30 days, index-only.
CREATE INDEX alerts_responded_window ON alerts (tenant_id, responded_at) INCLUDE (latency_us)
    WHERE NOT is_test AND responded_at IS NOT NULL;
-- Open alerts: count, oldest and age sum.
CREATE INDEX alerts_open_clock ON alerts (tenant_id, clock_started_at)
    WHERE NOT is_test AND responded_at IS NULL;
-- GET /alerts: newest first, by clock start.
CREATE INDEX alerts_newest_first ON alerts (tenant_id, clock_started_at DESC, alert_id);
CREATE INDEX alerts_status_newest_first ON alerts (tenant_id, status, clock_started_at DESC, alert_id);

-- Tenants whose alerts changed since their figures were last evaluated. Applying events only
-- inserts here (ON CONFLICT DO NOTHING: no row lock, no write when already marked); the status
-- publisher deletes a mark before it evaluates, so it never blocks the consumer.
CREATE TABLE response_time_dirty (
    tenant_id  text        PRIMARY KEY,
    marked_at  timestamptz NOT NULL DEFAULT now()
);

-- Per tenant, what was last published as the securityAlertsPromptlyResolved status. The row is
-- locked while a new status is evaluated and published, so instances never interleave.
CREATE TABLE response_time_tenants (
    tenant_id         text        PRIMARY KEY,
    last_key          jsonb,               -- the figures that decide whether to publish
    last_figures      jsonb,               -- everything published last time, as insights
    last_published_at timestamptz,
    evaluated_at      timestamptz
);
