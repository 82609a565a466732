-- Tenants offboarded (#18, services/scoring/offboarding.py; shared/offboarding.py's
-- OFFBOARDED_TENANTS_DDL, copied): recorded in the transaction that deleted everything this service
-- held of the tenant. From then on every event of the tenant is dropped, one still in flight or one a
-- rebuild replays from the topics. A row stays for good: the tenant id is retired.
CREATE TABLE offboarded_tenants (
    tenant_id     text        PRIMARY KEY,
    offboarded_at timestamptz NOT NULL       -- the occurredDateTime of the tenant-offboarded event
);
