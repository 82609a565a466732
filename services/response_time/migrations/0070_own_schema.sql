-- In-place upgrade of the single-schema layout (#11): the response-time service's tables move from
-- public into this schema with their rows, indexes, constraints and owned sequences (ALTER TABLE
-- ... SET SCHEMA takes them along). On a database installed with the schemas there is nothing in
-- public: every statement is a no-op.
ALTER TABLE IF EXISTS public.alerts SET SCHEMA response_time;
ALTER TABLE IF EXISTS public.response_time_dirty SET SCHEMA response_time;
ALTER TABLE IF EXISTS public.response_time_tenants SET SCHEMA response_time;

-- This consumer's entries of the ledger every consumer shared: what was applied before the upgrade
-- stays applied. On the upgrade path 0001_foundation.sql (which makes the table on a fresh install)
-- was taken over from the old ledger, not run, so the table is made here. The runner drops
-- public.processed_events once every component has taken its rows.
CREATE TABLE IF NOT EXISTS processed_events (
    consumer     text        NOT NULL,
    event_id     uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX IF NOT EXISTS processed_events_processed_at ON processed_events (processed_at);
DO $$
BEGIN
    IF to_regclass('public.processed_events') IS NOT NULL THEN
        INSERT INTO processed_events (consumer, event_id, processed_at)
        SELECT consumer, event_id, processed_at FROM public.processed_events WHERE consumer = 'response-time'
        ON CONFLICT DO NOTHING;
    END IF;
END
$$;
