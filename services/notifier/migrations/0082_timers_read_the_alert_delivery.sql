-- A timer's alert (#15): new timers keep no copy of the alert-created event; each reads it, when it fires,
-- from its alert's delivery to the security contact (kind 'alert', channel 'email:contact'), which every
-- new alert is given in the transaction that schedules its timers (logged pending, skipped or grouped).
-- Two copies of ~1 KB per alert were a sixth of the database's writes under load. The rows of before
-- keep theirs, and are read first.
ALTER TABLE notification_timers ALTER COLUMN payload DROP NOT NULL;
