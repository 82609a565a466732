-- Microsoft Teams as a channel kind (#13). A channel is a webhook (the signed JSON, as every channel
-- before) or a Teams channel (an Adaptive Card to an incoming-webhook or Workflows URL), which has no
-- secret: Teams verifies no signature. Existing channels, and events that name no kind, are webhooks.
ALTER TABLE notification_channels
    ADD COLUMN kind text NOT NULL DEFAULT 'webhook' CHECK (kind IN ('webhook', 'teams')),
    DROP CONSTRAINT notification_channels_live_ones_have_url_and_secret,
    ADD CONSTRAINT notification_channels_live_ones_have_url_and_secret
        CHECK (deleted OR (url IS NOT NULL AND (secret IS NOT NULL OR kind = 'teams')));
