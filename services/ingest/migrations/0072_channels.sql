-- Ticketing channels belong to the write API (#11): it owns their configuration and publishes each
-- change on the compacted notification-channels topic (secrets sealed); the notifier keeps its copy
-- from there. Until now they lived in the notifier's notification_channels, written by ingest.
CREATE TABLE channels (
    tenant_id             text        NOT NULL,
    name                  text        NOT NULL,
    url                   text        NOT NULL,
    secret                text        NOT NULL,   -- whsec_<base64>; sealed (shared.sealed) in every event
    previous_secret       text,                   -- the secret it replaced, signing beside it until
    previous_secret_until timestamptz,            -- the end of the rotation overlap
    routes                jsonb       NOT NULL DEFAULT '[]'::jsonb,
    escalation            boolean     NOT NULL DEFAULT false,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    -- false: no event told of this channel yet (copied at the upgrade); the write API publishes it at
    -- start-up, so the compacted topic holds every channel.
    announced             boolean     NOT NULL DEFAULT true,
    PRIMARY KEY (tenant_id, name)
);

-- An upgraded deployment: its channels are in the single-schema table, still in public here (the
-- ingest's migrations run before the notifier's 0070 moves that table into its own schema).
DO $$
BEGIN
    IF to_regclass('public.notification_channels') IS NOT NULL THEN
        INSERT INTO channels (tenant_id, name, url, secret, previous_secret, previous_secret_until, routes,
                              escalation, created_at, updated_at, announced)
        SELECT tenant_id, name, url, secret, previous_secret, previous_secret_until, routes, escalation,
               created_at, updated_at, false
        FROM public.notification_channels;
    END IF;
END
$$;
