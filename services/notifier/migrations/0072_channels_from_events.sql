-- Channels come from the notification-channels topic (#11): the write API owns their configuration
-- and publishes each change; the notifier keeps its own copy, with the secrets it signs with opened.
-- occurred_at is that of the event in force, so an older event never replaces a newer one (NULL:
-- written by the write API itself before #11, replaced by any event). A deleted channel stays as a
-- tombstone (deleted, without URL or secrets) for the same reason: an older event must not bring it back.
ALTER TABLE notification_channels
    ADD COLUMN occurred_at timestamptz,
    ADD COLUMN deleted boolean NOT NULL DEFAULT false,
    ALTER COLUMN url DROP NOT NULL,
    ALTER COLUMN secret DROP NOT NULL,
    ADD CONSTRAINT notification_channels_live_ones_have_url_and_secret
        CHECK (deleted OR (url IS NOT NULL AND secret IS NOT NULL));
