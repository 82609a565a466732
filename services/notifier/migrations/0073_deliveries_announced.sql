-- Each change of a delivery is published as a delivery-changed event in its transaction (#11), and
-- the dead letter of a dead delivery goes through the outbox too. The deliveries already in the log
-- were never published: they are marked here (existing rows take false, new ones true) and the
-- notifier announces each once (store.announce_unannounced_deliveries), with the dead letter a dead
-- one still had to publish (dead_letter_published false; nothing sets that any more).
ALTER TABLE notification_deliveries ADD COLUMN announced boolean NOT NULL DEFAULT false;
ALTER TABLE notification_deliveries ALTER COLUMN announced SET DEFAULT true;
CREATE INDEX notification_deliveries_unannounced ON notification_deliveries (delivery_id) WHERE NOT announced;
