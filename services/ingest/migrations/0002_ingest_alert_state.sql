-- The last known state of each alert as ingest saw it: what decides created / updated /
-- duplicate. Shared by every ingest instance; rows are locked while a decision is published.
CREATE TABLE ingest_alert_state (
    tenant_id      text        NOT NULL,
    alert_id       text        NOT NULL,
    alert          jsonb       NOT NULL,
    first_seen_at  timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, alert_id)
);
