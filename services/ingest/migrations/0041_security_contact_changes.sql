-- When each tenant's security contact last changed (set or cleared). The contact row disappears
-- on DELETE, so this row keeps the time of the latest change: the next change is stamped strictly
-- later, and the newest securityContactProvided observation is always the last committed change.
CREATE TABLE security_contact_changes (
    tenant_id  text        PRIMARY KEY,
    changed_at timestamptz NOT NULL
);
-- Contacts set before this migration: their change time is the row's updated_at.
INSERT INTO security_contact_changes (tenant_id, changed_at)
SELECT tenant_id, updated_at FROM security_contacts;
