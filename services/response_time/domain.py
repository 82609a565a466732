"""Pure response-time rules of SPEC §3: no I/O here."""

from __future__ import annotations

from datetime import datetime

from shared.events import AlertCreated


def clock_start(event: AlertCreated) -> datetime:
    """The clock starts at ``detectedDateTime``; if absent, when the alert was first ingested."""
    return event.alert.detected_date_time or event.ingested_date_time
