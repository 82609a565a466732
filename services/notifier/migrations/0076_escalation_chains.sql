-- Escalation chains per tenant (#13). The notifier's copy of each tenant's chain, from the compacted
-- escalation-chains topic (the write API owns it): the steps in order, [{afterMinutes, email | channel}].
-- occurred_at is that of the event in force, so an older event never replaces a newer one; a removed
-- chain stays as a row with steps NULL for the same reason (an older event must not bring it back).
CREATE TABLE escalation_chains (
    tenant_id   text        PRIMARY KEY,
    steps       jsonb,
    occurred_at timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- An alert of a tenant with a chain gets one escalation timer per step: step n (from 1) of the chain,
-- told by the chain in force when it fires. Step 0 is the reminder and the deployment's single
-- escalation, as every timer before chains (existing rows take 0).
ALTER TABLE notification_timers
    ADD COLUMN step smallint NOT NULL DEFAULT 0,
    ADD CONSTRAINT notification_timers_steps_are_escalations CHECK (step = 0 OR (kind = 'escalation' AND step > 0)),
    DROP CONSTRAINT notification_timers_pkey,
    ADD CONSTRAINT notification_timers_pkey PRIMARY KEY (tenant_id, alert_id, kind, step);
