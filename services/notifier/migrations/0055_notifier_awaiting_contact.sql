-- An e-mail to the security contact skipped because the tenant had no contact yet waits for one:
-- when a contact arrives (the contacts and alerts topics have no order between them), the notifier
-- sends those still worth sending (docs/notifier.md, "No security contact"). Cleared once sent
-- again, or once the alert is answered or resolved.
ALTER TABLE notification_deliveries ADD COLUMN awaiting_contact boolean NOT NULL DEFAULT false;
CREATE INDEX notification_deliveries_awaiting_contact
    ON notification_deliveries (tenant_id, last_attempt_at) WHERE awaiting_contact;
