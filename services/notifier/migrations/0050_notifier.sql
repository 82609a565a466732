-- Notifier (SPEC §5): ticketing channels, the security contact as the notifier knows it, the
-- delivery log (one row per tenant, subject, channel and kind: exactly one effective delivery)
-- and the reminder/escalation timers. All state lives here so it survives restarts.

-- The idempotency ledger of this service's consumer: an event id recorded here has been applied; it
-- is inserted in the same transaction as the event's effect, so a redelivered event is dropped and
-- a crash mid-way leaves neither. (Each schema has its own since #11.)
CREATE TABLE processed_events (
    consumer     text        NOT NULL,
    event_id     uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX processed_events_processed_at ON processed_events (processed_at);

-- Ticketing webhooks, written by the write API (PUT /channels/{name}), read by the notifier.
CREATE TABLE notification_channels (
    tenant_id   text        NOT NULL,
    name        text        NOT NULL,
    url         text        NOT NULL,
    secret      text        NOT NULL,            -- whsec_<base64>: needed in clear to sign
    routes      jsonb       NOT NULL DEFAULT '[]'::jsonb,
    escalation  boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name)
);

-- The tenant's security contact, from security-contact-changed events (email NULL once cleared).
CREATE TABLE notifier_contacts (
    tenant_id    text        PRIMARY KEY,
    name         text,
    email        text,
    occurred_at  timestamptz NOT NULL,           -- of the event in force: an older one never wins
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- One row per intended delivery. delivery_id is derived from the unique key (uuid5), so it is
-- also the Idempotency-Key receivers dedupe by. A row being sent stays 'pending' with
-- next_attempt_at pushed to the end of its lease: a notifier killed mid-delivery leaves it to be
-- taken again once the lease expires.
CREATE TABLE notification_deliveries (
    delivery_id      uuid        PRIMARY KEY,
    tenant_id        text        NOT NULL,
    subject_id       text        NOT NULL,       -- the alert id, or spending:<customer>:<month>
    alert_id         text,
    channel          text        NOT NULL,       -- email:contact | email:escalation | webhook:<name>
    kind             text        NOT NULL,       -- alert | reminder | escalation | spending
    state            text        NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'delivered', 'dead', 'skipped', 'cancelled')),
    payload          jsonb       NOT NULL,       -- what to send: the event it comes from
    recipient        text,                       -- where it went (address or URL), set when sent
    attempts         integer     NOT NULL DEFAULT 0,
    redeliveries     integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_attempt_at  timestamptz,
    last_status_code integer,
    last_error       text,
    delivered_at     timestamptz,
    dead_at          timestamptz,
    dead_letter_published boolean NOT NULL DEFAULT true,   -- false: DeliveryDeadLettered still to publish
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, subject_id, channel, kind)
);
CREATE INDEX notification_deliveries_due ON notification_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX notification_deliveries_tenant_state ON notification_deliveries (tenant_id, state, created_at DESC);
CREATE INDEX notification_deliveries_unpublished ON notification_deliveries (dead_at) WHERE NOT dead_letter_published;

-- Reminder (detection + 1 h) and escalation (detection + 20 h) per alert; a partner response
-- cancels them; when due, the worker turns a timer into delivery rows in one transaction.
CREATE TABLE notification_timers (
    tenant_id   text        NOT NULL,
    alert_id    text        NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('reminder', 'escalation')),
    due_at      timestamptz NOT NULL,
    state       text        NOT NULL DEFAULT 'scheduled' CHECK (state IN ('scheduled', 'fired', 'cancelled')),
    payload     jsonb       NOT NULL,            -- the alert-created event
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, alert_id, kind)
);
CREATE INDEX notification_timers_due ON notification_timers (due_at) WHERE state = 'scheduled';
