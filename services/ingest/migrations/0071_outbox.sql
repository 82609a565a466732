-- The write API's outbox (#11): shared/outbox.py's OUTBOX_DDL, copied (a migration is frozen once applied).

-- Events waiting to be published (shared/outbox.py): written in the transaction of the change,
-- deleted by the relay once the broker has them.
CREATE TABLE outbox (
    id         bigserial   PRIMARY KEY,
    topic      text        NOT NULL,            -- logical topic (shared.events.Topic), without prefix
    key        bytea       NOT NULL,
    value      bytea       NOT NULL,
    headers    jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);
