-- Each tenant's escalation chain (#13): who is told, in order, how long after an alert's detection while
-- it is still unanswered. The write API owns it and publishes each change on the compacted
-- escalation-chains topic (key: the tenant); the notifier keeps its copy from there.
-- A removed chain keeps its row with steps NULL, so the next change's time still comes after it
-- (each change's event is later than the one before, whatever the clock did).
CREATE TABLE escalation_chains (
    tenant_id   text        PRIMARY KEY,
    steps       jsonb,                  -- [{afterMinutes, email | channel}, ...] in order; NULL: removed
    updated_by  text        NOT NULL,   -- the user of the key that made the last change
    created_at  timestamptz NOT NULL,   -- when this chain was set after none
    updated_at  timestamptz NOT NULL    -- the last change's time: the occurredDateTime of its event
);
