-- One-click response links (#13, shared/action_links.py) that recorded a response: a link works once.
-- A row is written in the transaction that records the response, so a replay or a double click finds
-- it (the alert's row lock orders them) and changes nothing. A link that changed nothing is not here.
CREATE TABLE used_action_links (
    link_id    text        PRIMARY KEY,
    tenant_id  text        NOT NULL,
    alert_id   text        NOT NULL,
    action     text        NOT NULL,
    recipient  text        NOT NULL,
    issued_at  timestamptz NOT NULL,
    used_at    timestamptz NOT NULL DEFAULT now()
);
