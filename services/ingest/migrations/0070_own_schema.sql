-- In-place upgrade of the single-schema layout (#11): ingest's tables move from public into this
-- schema with their rows, indexes, constraints and owned sequences (ALTER TABLE ... SET SCHEMA
-- takes them along). On a database installed with the schemas there is nothing in public: every
-- statement is a no-op.
ALTER TABLE IF EXISTS public.ingest_alert_state SET SCHEMA ingest;
ALTER TABLE IF EXISTS public.ingest_webhook_secrets SET SCHEMA ingest;
ALTER TABLE IF EXISTS public.ingest_webhook_ids SET SCHEMA ingest;
ALTER TABLE IF EXISTS public.security_contacts SET SCHEMA ingest;
ALTER TABLE IF EXISTS public.security_contact_changes SET SCHEMA ingest;
ALTER TABLE IF EXISTS public.signal_reports SET SCHEMA ingest;
ALTER TABLE IF EXISTS public.customer_mfa SET SCHEMA ingest;
ALTER TABLE IF EXISTS public.customer_spending SET SCHEMA ingest;
ALTER TABLE IF EXISTS public.spending_notifications SET SCHEMA ingest;
