-- Customer MFA crosses to the read API as customer-mfa-observed events (#11), written with each report.
-- Rows stored before (announced false) are published once at start-up; new rows are announced as written.
ALTER TABLE customer_mfa ADD COLUMN announced boolean NOT NULL DEFAULT false;
ALTER TABLE customer_mfa ALTER COLUMN announced SET DEFAULT true;
