-- Ingest: the webhook-id of each accepted signed post, per tenant, for ten minutes (a signature is
-- valid five minutes either side of its timestamp, so no replay of a post older than that passes the
-- signature check). A repeat of a remembered id is answered as a duplicate without processing, so a
-- replayed earlier post cannot restore an older state. Old rows are pruned opportunistically.
CREATE TABLE ingest_webhook_ids (
    tenant_id   text        NOT NULL,
    webhook_id  text        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, webhook_id)
);
CREATE INDEX ingest_webhook_ids_received_at ON ingest_webhook_ids (received_at);
