-- Response time: per tenant, when its figures may next change with no new event (a response
-- leaving the 30-day window, or atRisk flipping as open alerts age). The status publisher wakes at
-- the earliest one instead of waiting for its periodic sweep.
ALTER TABLE response_time_tenants ADD COLUMN next_edge_at timestamptz;
CREATE INDEX response_time_tenants_next_edge ON response_time_tenants (next_edge_at)
    WHERE next_edge_at IS NOT NULL;
