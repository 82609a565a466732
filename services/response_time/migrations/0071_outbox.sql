-- The response-time service's transactional outbox (#11): the per-alert alert-response-time-changed
-- events and the requirement statuses are written here in the transaction of the change; the relay
-- (shared/outbox.py) publishes them. Text of shared.outbox.OUTBOX_DDL, copied (a migration is frozen
-- once applied).
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

-- An existing deployment upgrading in place: the read API's read model is built from
-- alert-response-times, so every alert already known is published once, as it is stored (a fresh
-- database has none). The JSON is AlertResponseTimeChanged's (shared/events.py); its eventId is in
-- the headers too, as the relay's producer sends every event.
INSERT INTO outbox (topic, key, value, headers)
SELECT 'alert-response-times',
       convert_to(tenant_id || ':' || alert_id, 'UTF8'),
       convert_to(json_build_object(
           'eventId', event_id,
           'eventType', 'alert-response-time-changed',
           'schemaVersion', 1,
           'occurredDateTime', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           'tenantId', tenant_id,
           'alertId', alert_id,
           'alert', alert,
           'status', status,
           'isTest', is_test,
           'clockStartedDateTime', to_char(clock_started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           'respondedDateTime', to_char(responded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           'respondedBy', responded_by,
           'latencyUs', latency_us)::text, 'UTF8'),
       jsonb_build_object('content-type', 'application/json', 'eventType', 'alert-response-time-changed',
                          'eventId', event_id::text, 'tenantId', tenant_id)
FROM (SELECT gen_random_uuid() AS event_id, * FROM alerts) AS known
ORDER BY tenant_id, alert_id;
