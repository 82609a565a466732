-- Each alert's timeline and triage (#18), built from the events the read API consumes
-- (services/scoring/timeline.py makes an entry of an event, timeline_store.py keeps it), never from
-- another service's tables.

-- One row per entry of an alert's timeline (GET /alerts/{alertId}/timeline, newest first). entry_key
-- says which events are one entry: `received`, `responded` (once per alert), `delivery:<id>` (one per
-- delivery, updated in place), `updated:<eventId>`, `assignment:<eventId>`, `note:<noteId>`,
-- `sync:<eventId>`. Like every read-model row, an entry only moves to a newer event of its key (as_of).
CREATE TABLE alert_timeline (
    tenant_id   text        NOT NULL,
    alert_id    text        NOT NULL,
    entry_key   text        NOT NULL,
    type        text        NOT NULL CONSTRAINT alert_timeline_type CHECK (type IN (
                    'received', 'updated', 'notified', 'reminded', 'escalated', 'assigned', 'unassigned',
                    'noted', 'responded', 'synced')),
    occurred_at timestamptz NOT NULL,               -- when it happened
    tie_order   smallint    NOT NULL,               -- the order of entries of one instant (timeline.TIE_ORDER)
    actor       text,                               -- who did it; null when nobody acted
    details     jsonb       NOT NULL,               -- what the event told, by type
    as_of       timestamptz NOT NULL,               -- occurredDateTime of the event this row holds
    event_id    uuid        NOT NULL,
    PRIMARY KEY (tenant_id, alert_id, entry_key)
);
-- Newest first, ties in the order things happen, then by key: the keyset of the route's paging.
CREATE INDEX alert_timeline_newest_first
    ON alert_timeline (tenant_id, alert_id, occurred_at DESC, tie_order DESC, entry_key DESC);

-- Each alert's triage, from alert-triage (the write API's): who it is assigned to (the newest
-- alert-assigned; null: nobody) and how many notes it has. Joined to its alert at read time (GET
-- /alerts: assignedTo, notesCount, ?assignee=), so either may arrive first.
CREATE TABLE alert_triage (
    tenant_id           text        NOT NULL,
    alert_id            text        NOT NULL,
    assignee            text,
    assigned_at         timestamptz,                -- occurredDateTime of the assignment this row holds
    assignment_event_id uuid,
    notes_count         integer     NOT NULL DEFAULT 0 CONSTRAINT alert_triage_notes_count CHECK (notes_count >= 0),
    PRIMARY KEY (tenant_id, alert_id)
);
CREATE INDEX alert_triage_assignee ON alert_triage (tenant_id, lower(assignee));
