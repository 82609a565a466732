-- API keys managed through the write API and the CLI: a stable public id (the digest and the key are
-- never shown again after creation), who made the key, an optional expiry, when it was last used
-- (written at most about once a minute per key and process) and an optional rate limit of its own
-- (NULL: the deployment's API_KEY_RATE_PER_SECOND / API_KEY_RATE_BURST).
-- A volatile default is evaluated per row, so every existing key gets an id of its own.
ALTER TABLE api_keys
    ADD COLUMN key_id          uuid             NOT NULL DEFAULT gen_random_uuid(),
    ADD COLUMN created_by      text,
    ADD COLUMN expires_at      timestamptz,
    ADD COLUMN last_used_at    timestamptz,
    ADD COLUMN rate_per_second double precision CHECK (rate_per_second > 0),
    ADD COLUMN rate_burst      integer          CHECK (rate_burst >= 1);
ALTER TABLE api_keys ADD CONSTRAINT api_keys_key_id_unique UNIQUE (key_id);
-- GET /v1/keys: newest first, by position (created_at, key_id), optionally of one tenant.
CREATE INDEX api_keys_newest_first ON api_keys (created_at DESC, key_id DESC);
CREATE INDEX api_keys_tenant_newest_first ON api_keys (tenant_id, created_at DESC, key_id DESC);
