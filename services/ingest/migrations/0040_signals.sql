-- Security contact and requirement signals (SPEC §4, §5): the current state the write API keeps
-- so it answers after restarts, and the ledger that makes the 80 % spending notification once.

-- The contact in force per tenant; a cleared contact is a deleted row.
CREATE TABLE security_contacts (
    tenant_id   text        PRIMARY KEY,
    name        text        NOT NULL,
    email       text        NOT NULL,
    phone       text        NOT NULL,
    updated_by  text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- When each tenant's latest report of a kind was observed: a report observed before the applied
-- one arrives late and changes nothing.
CREATE TABLE signal_reports (
    tenant_id   text        NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('customer-mfa', 'spending')),
    observed_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, kind)
);

-- Per-customer MFA statistics of the latest report; searched by customer name on the read API.
-- The extension lives in public, beside the schemas (not in the first schema that asks for it), so
-- its operator classes are named the same from every schema.
CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public;
CREATE TABLE customer_mfa (
    tenant_id           text        NOT NULL,
    customer_tenant_id  text        NOT NULL,
    customer_name       text        NOT NULL,
    admins              integer     NOT NULL CHECK (admins >= 0),
    admins_with_mfa     integer     NOT NULL CHECK (admins_with_mfa BETWEEN 0 AND admins),
    non_admins_with_mfa integer     NOT NULL CHECK (non_admins_with_mfa >= 0),
    total_users         integer     NOT NULL CHECK (total_users >= admins),
    observed_at         timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, customer_tenant_id)
);
-- Case-insensitive substring search (ILIKE '%text%') uses the trigram index; the listing order
-- (by name within a tenant) uses the b-tree.
CREATE INDEX customer_mfa_name_trgm ON customer_mfa USING gin (customer_name public.gin_trgm_ops);
CREATE INDEX customer_mfa_tenant_name ON customer_mfa (tenant_id, lower(customer_name), customer_tenant_id);

-- Per-customer budget and spend of the latest spending report.
CREATE TABLE customer_spending (
    tenant_id           text        NOT NULL,
    customer_tenant_id  text        NOT NULL,
    customer_name       text,
    month               text        NOT NULL CHECK (month ~ '^\d{4}-(0[1-9]|1[0-2])$'),
    monthly_budget      numeric     CHECK (monthly_budget > 0),
    current_month_spend numeric     NOT NULL CHECK (current_month_spend >= 0),
    observed_at         timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, customer_tenant_id)
);

-- One row per tenant, customer and month whose 80 % notification was published: the insert that
-- succeeds decides "once"; it commits only after the broker acknowledged the notification.
CREATE TABLE spending_notifications (
    tenant_id          text        NOT NULL,
    customer_tenant_id text        NOT NULL,
    month              text        NOT NULL,
    threshold_percent  integer     NOT NULL,
    budget             numeric     NOT NULL,
    spend              numeric     NOT NULL,
    event_id           uuid        NOT NULL,
    notified_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, customer_tenant_id, month, threshold_percent)
);
