-- The audit log of configuration changes (security contact, channels, API keys, webhook secrets and,
-- later, connections). Each entry is written in the same transaction as the change it records, so
-- nothing is audited that did not happen and nothing happens unaudited. Entries never hold secrets.
-- tenant_id NULL: a change of the deployment itself (an API key of every tenant), listed by
-- GET /v1/audit (operators) rather than a tenant's GET /v1/tenants/{t}/audit.
CREATE TABLE audit_log (
    entry_id    bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   text,
    occurred_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    user_id     text        NOT NULL,     -- who: the key's user, or the CLI's --actor
    key_id      text        NOT NULL,     -- from which key: its id, 'operator' or 'cli'
    action      text        NOT NULL,     -- e.g. security-contact-set, channel-deleted, key-revoked
    target      text        NOT NULL,     -- e.g. security-contact, channels/jira, keys/<keyId>
    changes     jsonb       NOT NULL DEFAULT '{}'
);
-- Newest first by entry id (the order entries were written), per tenant and for the deployment.
CREATE INDEX audit_log_tenant_newest_first ON audit_log (tenant_id, entry_id DESC);
