-- The Partner Center connection (#12, docs/graph.md): per tenant, the app registration the write API
-- signs in to Microsoft Graph with, the state of its polls, and per alert that came from Partner
-- Center, where it stands with Partner Center's copy (the write-back queue is that table itself).

-- One connection per tenant. The secret (client secret or certificate with its private key) is only
-- ever stored sealed (shared.sealed, SEALING_KEYS). Several instances share the polls through a lease.
CREATE TABLE graph_connections (
    tenant_id              text        PRIMARY KEY,
    directory_id           text        NOT NULL,   -- the Entra directory (tenant) id or domain
    client_id              text        NOT NULL,   -- the application (client) id
    credential_type        text        NOT NULL CHECK (credential_type IN ('clientSecret', 'certificate')),
    sealed_credentials     text        NOT NULL,   -- graph.credentials.to_sealable, sealed
    certificate_thumbprint text,                   -- SHA-1, upper-case hex, as Entra shows it
    enabled                boolean     NOT NULL DEFAULT true,
    -- +1 on every PUT: a poll of an older generation does not record its outcome.
    generation             bigint      NOT NULL DEFAULT 1,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    next_poll_at           timestamptz NOT NULL DEFAULT now(),
    lease_owner            text,                   -- the instance polling it, until lease_until
    lease_until            timestamptz,
    last_poll_at           timestamptz,
    last_success_at        timestamptz,
    last_error             text,
    last_error_at          timestamptz,
    consecutive_failures   integer     NOT NULL DEFAULT 0,
    last_poll_alerts       integer     NOT NULL DEFAULT 0,   -- how many alerts the last finished poll read
    -- The poll cursor: the start time of the last successful poll (null: the next poll reads all).
    changes_since          timestamptz
);
CREATE INDEX graph_connections_due ON graph_connections (next_poll_at) WHERE enabled;

-- One row per alert that came from Partner Center: kept when the connection is deleted, so a new
-- connection resumes the write-backs still pending. A pending row is the newest response recorded
-- here that Partner Center has not taken yet (a later response replaces it).
CREATE TABLE graph_alert_sync (
    tenant_id               text        NOT NULL,
    alert_id                text        NOT NULL,
    state                   text        NOT NULL CHECK (state IN ('synced', 'pending', 'failed')),
    last_synced_at          timestamptz,            -- when both copies last agreed
    graph_activity_at       timestamptz,            -- newest activity seen in Graph's copy
    pending_status          text,                   -- the change to write back (pending, failed)
    pending_resolved_reason text,
    changed_at              timestamptz,            -- when and by whom that change was made here
    changed_by              text,
    attempts                integer     NOT NULL DEFAULT 0,
    next_attempt_at         timestamptz,
    lease_until             timestamptz,            -- a write-back in flight, until then
    last_error              text,
    PRIMARY KEY (tenant_id, alert_id)
);
CREATE INDEX graph_alert_sync_due ON graph_alert_sync (next_attempt_at) WHERE state = 'pending';
