"""Pure rules for when both sides changed an alert (no I/O; tested in tests/services/ingest/graph)."""

from __future__ import annotations

from datetime import datetime

from shared.alerts import Alert

# How the write API records the system as the author of an activity-log entry (SPEC §3).
SYSTEM = "system"


def _is(author: str | None, client_id: str) -> bool:
    return (author or "").strip().lower() == client_id.strip().lower()


def own_echo_as_system(alert: Alert, client_id: str, local: Alert | None = None) -> Alert:
    """``alert`` as Partner Center reports it, with the changes made by our own application (the echo
    of a write-back: Graph names the application that changed it) attributed to the system.

    The response was recorded here when a person made it, with their name and time; the echo must
    not count as a second response, nor as a person's. For the same reason, when Partner Center says
    our application resolved the alert, who resolved it and when stay ours (``local``'s).
    """
    update: dict = {}
    if any(_is(log.updated_by, client_id) for log in alert.activity_logs):
        update["activity_logs"] = [
            log.model_copy(update={"updated_by": SYSTEM}) if _is(log.updated_by, client_id) else log
            for log in alert.activity_logs
        ]
    if _is(alert.resolved_by, client_id) and local is not None:
        update["resolved_by"] = local.resolved_by
        update["resolved_on_date_time"] = local.resolved_on_date_time
    return alert.model_copy(update=update) if update else alert


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


def differs(polled: Alert, local: Alert) -> bool:
    """Partner Center's copy and ours disagree on the response (status or resolvedReason)."""
    return ("status" in polled.model_fields_set and polled.status != local.status) or (
        "resolved_reason" in polled.model_fields_set and polled.resolved_reason != local.resolved_reason
    )


def _responses(local: Alert) -> list:
    return [
        log for log in local.activity_logs
        if log.updated_date_time is not None and log.status_from != log.status_to
        and (log.updated_by or "").strip().lower() not in ("", SYSTEM)
    ]


def local_response_time(local: Alert) -> datetime | None:
    """When a person last changed the alert's status here (its activity log); None if nobody did (its
    state then came from a feed or the system, and Partner Center's copy is as good)."""
    return max((log.updated_date_time for log in _responses(local)), default=None)


def local_responder(local: Alert) -> str | None:
    """Who made the last of those changes."""
    responses = _responses(local)
    return max(responses, key=lambda log: log.updated_date_time).updated_by if responses else None
