-- Each alert's triage (#18): who it is assigned to, and the notes people leave on it. The write API owns
-- both and tells each change on the compacted alert-triage topic (alert-assigned, alert-note-added);
-- the read API keeps its view from there. Neither is a status change of the alert.

-- The alert's assignment. An unassigned alert keeps its row (assignee NULL, who unassigned it and when),
-- so the next change's time still comes after it (each event later than the one before).
CREATE TABLE alert_assignments (
    tenant_id    text        NOT NULL,
    alert_id     text        NOT NULL,
    assignee     text,                   -- an e-mail address; NULL: unassigned
    assigned_by  text        NOT NULL,   -- the user of the key that made the last change
    assigned_at  timestamptz NOT NULL,   -- the last change's time: the occurredDateTime of its event
    PRIMARY KEY (tenant_id, alert_id)
);

-- Notes, kept as written (never edited): listed newest first, by (created_at, note_id).
CREATE TABLE alert_notes (
    note_id     uuid        PRIMARY KEY,
    tenant_id   text        NOT NULL,
    alert_id    text        NOT NULL,
    text        text        NOT NULL,    -- 1..4000 characters, trimmed, no control characters but \n and \t
    author      text        NOT NULL,    -- the user of the key that wrote it
    created_at  timestamptz NOT NULL     -- the occurredDateTime of its event
);
CREATE INDEX alert_notes_newest ON alert_notes (tenant_id, alert_id, created_at DESC, note_id DESC);
