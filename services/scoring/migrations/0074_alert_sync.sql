-- Each alert's sync state with Partner Center (#12), as the write API's Graph connector tells it
-- (alert-sync: GET /alerts, /alerts/{alertId} show it as partnerCenterSync). Kept apart from
-- alert_response_times: the two come from different topics, in either order, and meet only at read
-- time (a LEFT JOIN on the key), so a sync state that arrives before its alert shows once the alert
-- does. An alert with no row here did not come from Partner Center. Like every read-model table,
-- a row only moves to a newer event of its key.
CREATE TABLE alert_sync (
    tenant_id      text        NOT NULL,
    alert_id       text        NOT NULL,
    state          text        NOT NULL CONSTRAINT alert_sync_state CHECK (state IN ('synced', 'pending', 'failed')),
    last_synced_at timestamptz,                     -- when Partner Center's copy and ours last agreed
    pending_status text,                            -- the status waiting to be written back
    attempts       integer     NOT NULL CONSTRAINT alert_sync_attempts CHECK (attempts >= 0),
    last_error     text,                            -- why the last write-back failed
    changed_at     timestamptz NOT NULL,            -- occurredDateTime of the event this row holds
    event_id       uuid        NOT NULL,
    PRIMARY KEY (tenant_id, alert_id)
);
