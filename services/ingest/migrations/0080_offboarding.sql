-- Tenant offboarding (#18). Tombstones: an outbox row with no value is published as a record with a
-- null value, deleting its key from a compacted topic (shared/outbox.py enqueue_tombstones).
ALTER TABLE outbox ALTER COLUMN value DROP NOT NULL;

-- Tenants offboarded (#18, shared/offboarding.py's OFFBOARDED_TENANTS_DDL, copied): nothing of them is
-- kept, every later write for them is refused (410) and every later event of them dropped. A row stays
-- for good: the tenant id is retired.
CREATE TABLE offboarded_tenants (
    tenant_id     text        PRIMARY KEY,
    offboarded_at timestamptz NOT NULL       -- the occurredDateTime of the tenant-offboarded event
);
