-- Response time: an alert resolved with no partner response is "closed unanswered" (neither in the
-- average nor open; docs/response-time.md). The open set is then the unanswered alerts not resolved,
-- so the open-alerts index holds only those and stays O(open), not O(history).
CREATE INDEX alerts_open_unresolved_clock ON alerts (tenant_id, clock_started_at)
    WHERE NOT is_test AND responded_at IS NULL AND status <> 'resolved';
DROP INDEX IF EXISTS alerts_open_clock;
