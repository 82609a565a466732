-- Foundation of the auth schema (the key store shared/auth.py keeps for both APIs; split from the
-- single-schema 0001_foundation.sql, whose version it keeps).

-- API keys other than the operator's: only a SHA-256 digest of each key is kept.
CREATE TABLE api_keys (
    key_digest text        PRIMARY KEY,
    tenant_id  text,                       -- NULL: every tenant
    role       text        NOT NULL CHECK (role IN ('adminAgent', 'securityAdministrator', 'securityReader')),
    user_id    text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
