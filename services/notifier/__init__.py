"""Notifier: alerts to the security contact (SMTP) and ticketing webhooks (SPEC §5)."""
