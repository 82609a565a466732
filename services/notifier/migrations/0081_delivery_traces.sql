-- Traces (#16): the W3C trace context (traceparent) of the alert event, or other event, that made each
-- delivery, so the delivery worker sends its e-mail or POST in that trace (the webhook's) rather than in
-- one of its own. A timer keeps its alert's, for the reminder or escalation it fires later. NULL with
-- tracing off (the default), and for the rows of before: those are sent in a trace of their own.
ALTER TABLE notification_deliveries ADD COLUMN traceparent text;
ALTER TABLE notification_timers ADD COLUMN traceparent text;
