-- An alert answered by a partner or resolved, as the notifier learnt it (alert-updated): from then
-- on an e-mail about it that waited for a security contact is no longer sent (docs/notifier.md,
-- "No security contact"). Written, and read, under the tenant's contact lock, so a contact arriving
-- and an answer arriving at once see each other in one order or the other. Kept as long as the
-- delivery log (DELIVERY_LOG_RETENTION_DAYS).
CREATE TABLE notifier_closed_alerts (
    tenant_id  text        NOT NULL,
    alert_id   text        NOT NULL,
    reason     text        NOT NULL,             -- domain.why_timers_end: the first that closed it
    closed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, alert_id)
);
CREATE INDEX notifier_closed_alerts_closed_at ON notifier_closed_alerts (closed_at);

-- An e-mail made due again once a contact arrived (a catch-up): an answer or a resolution that
-- comes before it is sent cancels it.
ALTER TABLE notification_deliveries ADD COLUMN catch_up boolean NOT NULL DEFAULT false;

-- Until now "answered or resolved since" was read from cancelled timers; the e-mails still waiting
-- whose alert's timers are cancelled would never have been sent: they wait no more.
UPDATE notification_deliveries d SET awaiting_contact = false, updated_at = now()
WHERE d.awaiting_contact
  AND EXISTS (SELECT 1 FROM notification_timers t
              WHERE t.tenant_id = d.tenant_id AND t.alert_id = d.alert_id AND t.state = 'cancelled');
