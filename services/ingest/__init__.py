"""Ingest: the write API (port 8081). Webhooks and API calls in, events out to Kafka."""
