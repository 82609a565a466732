-- GET /alerts pages with a position (skiptoken: the last alert's clock start and id) rather than an
-- offset: a deep page is an index range scan, and alerts arriving meanwhile do not shift the pages.
-- A row comparison (clock_started_at, alert_id) < (…) follows the index only if both columns run the
-- same way, so ties on the clock start are now ordered by alert id descending too.
DROP INDEX IF EXISTS alerts_newest_first;
DROP INDEX IF EXISTS alerts_status_newest_first;
CREATE INDEX alerts_newest_first ON alerts (tenant_id, clock_started_at DESC, alert_id DESC);
CREATE INDEX alerts_status_newest_first ON alerts (tenant_id, status, clock_started_at DESC, alert_id DESC);
