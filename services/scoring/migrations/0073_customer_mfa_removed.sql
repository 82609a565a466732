-- A customer the tenant's latest report left out (customer-mfa-removed, #11) stays in customer_mfa as
-- a tombstone: removed, with the removal's time and no figures. Its time is what an older
-- customer-mfa-observed arriving late (a replay, a consumer catching up) is compared with, so it
-- cannot bring the customer back; a newer one does. After an empty report the tombstones also hold
-- the tenant's newest report time. The read API lists no tombstone.
ALTER TABLE customer_mfa
    ADD COLUMN removed boolean NOT NULL DEFAULT false,
    ALTER COLUMN customer_name DROP NOT NULL,
    ALTER COLUMN admins DROP NOT NULL,
    ALTER COLUMN admins_with_mfa DROP NOT NULL,
    ALTER COLUMN non_admins_with_mfa DROP NOT NULL,
    ALTER COLUMN total_users DROP NOT NULL,
    ADD CONSTRAINT customer_mfa_figures_unless_removed CHECK (
        removed = (customer_name IS NULL) AND removed = (admins IS NULL) AND removed = (admins_with_mfa IS NULL)
        AND removed = (non_admins_with_mfa IS NULL) AND removed = (total_users IS NULL));
