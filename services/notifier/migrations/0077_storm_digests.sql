-- Storm grouping (#13). Past STORM_THRESHOLD new alerts for a tenant within STORM_WINDOW_SECONDS on one
-- channel that people read (the contact's e-mail, a Teams channel), each further alert is not sent on
-- its own: its delivery is 'grouped' into a digest (a delivery of kind 'digest' whose payload lists
-- the alerts) that goes out once, STORM_DIGEST_WAIT_SECONDS after it opened or as soon as it is full.
-- Each alert keeps its own row (its log says which digest carried it) and its own timers.
ALTER TABLE notification_deliveries
    DROP CONSTRAINT notification_deliveries_state_check,
    ADD CONSTRAINT notification_deliveries_state_check
        CHECK (state IN ('pending', 'delivered', 'dead', 'skipped', 'cancelled', 'grouped')),
    ADD COLUMN digest_id uuid;   -- a grouped delivery's digest

-- How many alerts a channel of a tenant was given lately: the storm's measure.
CREATE INDEX notification_deliveries_recent_alerts ON notification_deliveries (tenant_id, channel, created_at)
    WHERE kind = 'alert';
-- The digest still open for more alerts, per tenant and channel.
CREATE INDEX notification_deliveries_open_digests ON notification_deliveries (tenant_id, channel)
    WHERE kind = 'digest' AND state = 'pending' AND attempts = 0;
