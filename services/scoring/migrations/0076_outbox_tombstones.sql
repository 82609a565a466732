-- Tombstones (#18, offboarding): an outbox row with no value is published as a record with a null
-- value, deleting its key from a compacted topic (shared/outbox.py enqueue_tombstones).
ALTER TABLE outbox ALTER COLUMN value DROP NOT NULL;
