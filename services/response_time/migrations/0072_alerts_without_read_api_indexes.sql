-- The read API answers /alerts and /response-time from its own read model of alert-response-times
-- (#11); nothing pages or filters this table any more, so the indexes that served it only cost writes.
-- The figures' partial indexes (alerts_responded_window, alerts_open_unresolved_clock) stay.
DROP INDEX IF EXISTS alerts_newest_first;
DROP INDEX IF EXISTS alerts_status_newest_first;
DROP INDEX IF EXISTS alerts_tenant_status;
