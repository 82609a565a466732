-- Microsoft Teams as a channel kind (#13). A channel is a webhook (the signed JSON, as every channel
-- before: a secret, rotated with an overlap) or a Teams channel (an Adaptive Card to an incoming-webhook
-- or Workflows URL), which has no secret at all: Teams verifies no signature. Existing channels are webhooks.
ALTER TABLE channels
    ADD COLUMN kind text NOT NULL DEFAULT 'webhook' CHECK (kind IN ('webhook', 'teams')),
    ALTER COLUMN secret DROP NOT NULL,
    ADD CONSTRAINT channels_secrets_fit_the_kind CHECK (
        CASE kind WHEN 'webhook' THEN secret IS NOT NULL
                  ELSE secret IS NULL AND previous_secret IS NULL AND previous_secret_until IS NULL END);
