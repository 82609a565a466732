-- Scoring (SPEC §4): PostgreSQL is the durable source of the score; Redis only caches it and is
-- rebuilt from these tables when it loses its data.

-- The idempotency ledger of this service's consumer: an event id recorded here has been applied; it
-- is inserted in the same transaction as the event's effect, so a redelivered event is dropped and
-- a crash mid-way leaves neither. (Each schema has its own since #11.)
CREATE TABLE processed_events (
    consumer     text        NOT NULL,
    event_id     uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX processed_events_processed_at ON processed_events (processed_at);

-- The winning (newest) status per tenant and requirement. Upserts only replace a row with a newer
-- observation (ties broken by event id), so late or replayed events never regress a status.
CREATE TABLE requirement_status (
    tenant_id         text        NOT NULL,
    requirement_type  text        NOT NULL,
    compliance_status text        NOT NULL CHECK (compliance_status IN ('compliant', 'noncompliant')),
    observed_at       timestamptz NOT NULL,
    event_id          uuid        NOT NULL,
    source            text        NOT NULL,
    insights          jsonb       NOT NULL DEFAULT '{}',
    applied_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, requirement_type)
);

-- The last score of each tenant; its row is locked while a change is decided, so several
-- scoring instances agree on one history.
CREATE TABLE score_state (
    tenant_id                     text             PRIMARY KEY,
    current_score                 double precision,
    projected_score               double precision,
    compliant_requirements_count  integer,
    total_requirements_count      integer,
    score_updated_at              timestamptz,     -- when the score last changed
    refreshed_at                  timestamptz      -- when a status was last applied
);

-- One entry per score change; also the outbox of score-changed events (published_at NULL: not yet).
CREATE TABLE score_history (
    id                            bigserial        PRIMARY KEY,
    tenant_id                     text             NOT NULL,
    event_id                      uuid             NOT NULL UNIQUE,
    created_at                    timestamptz      NOT NULL,
    score                         double precision NOT NULL,
    projected_score               double precision NOT NULL,
    previous_score                double precision,
    compliant_requirements_count  integer          NOT NULL,
    total_requirements_count      integer          NOT NULL,
    published_at                  timestamptz
);
CREATE INDEX score_history_tenant_created ON score_history (tenant_id, created_at DESC, id DESC);
CREATE INDEX score_history_unpublished ON score_history (tenant_id, id) WHERE published_at IS NULL;
