-- Outbound signature rotation (SPEC §6: several signatures during a secret's rotation). When a
-- channel's secret is replaced, the previous one keeps signing beside it until
-- previous_secret_until, so the receiver can switch to the new secret without rejecting anything.
ALTER TABLE notification_channels
    ADD COLUMN previous_secret       text,
    ADD COLUMN previous_secret_until timestamptz;
