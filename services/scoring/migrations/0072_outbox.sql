-- One way to publish (#11): score-changed events go through the outbox of shared/outbox.py, written
-- in the transaction that changes the score. score_history stays the history; its published_at
-- column (the outbox it used to be) goes, and the changes it still held unpublished move to the
-- outbox first, in their order, as the events they would have been.

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

INSERT INTO outbox (topic, key, value, headers, created_at)
SELECT 'score-changes',
       convert_to(tenant_id, 'UTF8'),
       convert_to(json_build_object(
           'eventId', event_id,
           'eventType', 'score-changed',
           'schemaVersion', 1,
           'occurredDateTime', to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           'tenantId', tenant_id,
           'currentScore', score,
           'projectedScore', projected_score,
           'previousScore', previous_score,
           'compliantRequirementsCount', compliant_requirements_count,
           'totalRequirementsCount', total_requirements_count)::text, 'UTF8'),
       jsonb_build_object('content-type', 'application/json', 'eventType', 'score-changed',
                          'eventId', event_id::text, 'tenantId', tenant_id),
       created_at
FROM score_history WHERE published_at IS NULL ORDER BY id;

DROP INDEX IF EXISTS score_history_unpublished;
ALTER TABLE score_history DROP COLUMN published_at;
