"""Response time: per-alert latency and the rolling 30-day average (SPEC §3), in PostgreSQL."""
