"""Scoring: the live security score in Redis (SPEC §4), and the read API (port 8082)."""
