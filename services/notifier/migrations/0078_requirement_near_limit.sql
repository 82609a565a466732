-- At-risk warnings (#13): whether some open alert of the tenant was near 24 hours (the response-time
-- status's openAlertNearLimit), so that warning too goes out once per change of state, not per status.
ALTER TABLE requirement_states ADD COLUMN near_limit boolean NOT NULL DEFAULT false;
