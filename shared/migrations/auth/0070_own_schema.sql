-- In-place upgrade of the single-schema layout (#11): the API keys and the audit log move from
-- public into this schema with their rows, indexes, constraints and owned sequences (ALTER TABLE
-- ... SET SCHEMA takes them along). On a database installed with the schemas there is nothing in
-- public: every statement is a no-op.
ALTER TABLE IF EXISTS public.api_keys SET SCHEMA auth;
ALTER TABLE IF EXISTS public.audit_log SET SCHEMA auth;
