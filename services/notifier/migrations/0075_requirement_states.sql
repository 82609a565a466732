-- At-risk warnings (#13): the last state of each requirement of each tenant, as the requirement-status
-- topic told it, so a warning goes out on a change of state and never on a repeat.
CREATE TABLE requirement_states (
    tenant_id         text        NOT NULL,
    requirement_type  text        NOT NULL,
    compliance_status text        NOT NULL,
    at_risk           boolean     NOT NULL,
    observed_at       timestamptz NOT NULL,   -- the newest observation applied; an older one is ignored
    PRIMARY KEY (tenant_id, requirement_type)
);
