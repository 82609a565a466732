-- Ingest: a version per alert state (the event that made version N has an id derived from it, so a
-- state published again after a failed attempt keeps its event id), and per-tenant webhook secrets.
ALTER TABLE ingest_alert_state ADD COLUMN version integer NOT NULL DEFAULT 1;

-- Standard Webhooks secrets (`whsec_<base64>`) a tenant's feed signs with. The two newest
-- unrevoked ones are active, so a sender can move to a new secret without a gap. A tenant with
-- none uses the deployment's WEBHOOK_SECRET. The secret itself is needed to check an HMAC, so it is
-- stored as it is; restrict access to this table.
CREATE TABLE ingest_webhook_secrets (
    secret_id  bigserial   PRIMARY KEY,
    tenant_id  text        NOT NULL,
    secret     text        NOT NULL CHECK (secret LIKE 'whsec\_%'),
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
CREATE INDEX ingest_webhook_secrets_active ON ingest_webhook_secrets (tenant_id, created_at DESC)
    WHERE revoked_at IS NULL;
