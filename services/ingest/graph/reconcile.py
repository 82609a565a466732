"""Pure rules for when both sides changed an alert (no I/O; tested in tests/services/ingest/graph)."""

from __future__ import annotations

from shared.alerts import Alert

# How the write API records the system as the author of an activity-log entry (SPEC §3).
SYSTEM = "system"


def own_echo_as_system(alert: Alert, client_id: str) -> Alert:
    """``alert`` as Partner Center reports it, with the activity entries made by our own application
    (the echo of a write-back: Graph names the application that changed it) attributed to the system.

    The response was recorded here when a person made it, with their name and time; the echo must
    not count as a second response, nor as a person's.
    """
    own = client_id.strip().lower()
    if not any((log.updated_by or "").strip().lower() == own for log in alert.activity_logs):
        return alert
    logs = [
        log.model_copy(update={"updated_by": SYSTEM}) if (log.updated_by or "").strip().lower() == own else log
        for log in alert.activity_logs
    ]
    return alert.model_copy(update={"activity_logs": logs})


def keep_local_response(polled: Alert, local: Alert) -> Alert:
    """``polled`` with our ``status`` and ``resolvedReason`` (and when and by whom it was resolved):
    a response recorded here that Partner Center has not taken yet is newer than its copy."""
    return polled.model_copy(
        update={
            "status": local.status,
            "resolved_reason": local.resolved_reason,
            "resolved_on_date_time": local.resolved_on_date_time,
            "resolved_by": local.resolved_by,
        }
    )
