"""Pure rules of the Partner Center connection (no I/O; tested in tests/services/ingest/graph/test_domain.py).

What a connection's ids look like, which alerts a poll asks Graph for, how long a failed poll or
write-back waits, when Partner Center last touched an alert, and the sync state an event tells.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from shared.events import AlertSyncChanged, PartnerCenterSync, PartnerCenterSyncState
from shared.wire import parse_utc

# An Entra id (directory or application): a GUID, as the portal shows it.
GUID_PATTERN = r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"
# A directory is named by its id or by one of its domains (`contoso.onmicrosoft.com`): both sign in.
# (No look-ahead: pydantic's regex engine has none; a name's length is bounded where it is taken.)
DOMAIN_PATTERN = r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
DIRECTORY_ID_PATTERN = f"({GUID_PATTERN})|({DOMAIN_PATTERN})"
DIRECTORY_ID_MAX_LENGTH = 253

# A poll after the first asks for every open alert and those resolved since the last poll began,
# less this margin: clocks of Graph and of this host differ, and an alert resolved while the last
# poll was reading must not fall between two polls (one read twice is a duplicate, no event).
RESOLVED_LOOKBACK = timedelta(minutes=10)

# The first write-back retry waits about this long; each further one twice as long (up to a cap).
FIRST_WRITEBACK_BACKOFF_SECONDS = 5.0
# After a failed poll the next one comes this much later, then twice as late each time, at most the
# poll interval: Graph back after a short outage is polled soon, a lasting failure costs no more
# requests than a healthy connection.
FIRST_POLL_RETRY = timedelta(seconds=15)


class CredentialType(StrEnum):
    """How a connection signs in to the identity platform."""

    client_secret = "clientSecret"
    certificate = "certificate"


def newest_activity(alert: Mapping[str, Any], *, ignoring_client_id: str | None = None) -> datetime | None:
    """When ``alert`` (Graph's JSON) last changed: the newest ``updatedDateTime`` of its ``activityLogs``
    and its ``resolvedOnDateTime``; None if it shows neither.

    With ``ignoring_client_id``, the changes made by that application (our own write-backs: Graph
    names the app as ``updatedBy`` / ``resolvedBy``) do not count: what is left is when someone in
    Partner Center last acted on it. Tolerant as the alerts' parsing is: seven-digit fractions, no
    offset (UTC), the "never" placeholders; an entry or a time that cannot be read is passed over.
    """
    def by_others(author: Any) -> bool:
        return ignoring_client_id is None or not (
            isinstance(author, str) and author.strip().lower() == ignoring_client_id.strip().lower())

    times = [_time(alert.get("resolvedOnDateTime"))] if by_others(alert.get("resolvedBy")) else []
    logs = alert.get("activityLogs")
    if isinstance(logs, list):
        times += [_time(entry.get("updatedDateTime")) for entry in logs
                  if isinstance(entry, Mapping) and by_others(entry.get("updatedBy"))]
    return max((t for t in times if t is not None), default=None)


def _time(value: Any) -> datetime | None:
    try:
        return parse_utc(value)
    except ValueError:
        return None


def poll_filter(changes_since: datetime | None) -> str | None:
    """The ``$filter`` of a poll whose last success began at ``changes_since``; None (read every alert)
    on the first poll.

    Graph offers no change-tracking field nor delta query for partner security alerts; what changes
    is the status of open alerts, and a resolved alert changes no more. So a later poll reads every
    alert not resolved and each resolved since ``changes_since`` (less :data:`RESOLVED_LOOKBACK`).
    """
    if changes_since is None:
        return None
    since = (changes_since.astimezone(UTC) - RESOLVED_LOOKBACK).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"status ne 'resolved' or resolvedOnDateTime ge {since}"


def writeback_backoff(attempts: int, *, max_seconds: float, jitter: float | None = None) -> float:
    """Seconds before the next try of a write-back whose ``attempts``-th try Graph did not take.

    Exponential from :data:`FIRST_WRITEBACK_BACKOFF_SECONDS` (5, 10, 20 ... after the 1st, 2nd, 3rd
    try), capped at ``max_seconds``; the wait is drawn between half that and all of it (``jitter``
    in [0, 1], random if not given), so write-backs that failed together do not come back together.
    """
    exponent = min(max(attempts, 1) - 1, 60)  # 2**60 × 5 s exceeds any cap
    ceiling = min(max_seconds, FIRST_WRITEBACK_BACKOFF_SECONDS * 2**exponent)
    fraction = random.random() if jitter is None else min(max(jitter, 0.0), 1.0)
    return ceiling * (0.5 + fraction / 2)


def next_poll_after_failure(consecutive_failures: int, interval: timedelta) -> timedelta:
    """How long after its ``consecutive_failures``-th failed poll in a row a connection is polled again:
    :data:`FIRST_POLL_RETRY`, doubling, never more than ``interval`` (the healthy rhythm)."""
    if consecutive_failures < 1:
        return interval
    exponent = min(consecutive_failures - 1, 30)
    return min(interval, FIRST_POLL_RETRY * 2**exponent)


def sync_state(row: Mapping[str, Any]) -> PartnerCenterSync:
    """The sync state an event tells of a ``graph_alert_sync`` row (or a mapping with its columns)."""
    state = PartnerCenterSyncState(row["state"])
    waiting = state is not PartnerCenterSyncState.synced
    return PartnerCenterSync(
        state=state,
        last_synced_date_time=row["last_synced_at"],
        pending_status=row["pending_status"] if waiting else None,
        attempts=row["attempts"] if waiting else 0,
        last_error=row["last_error"] if waiting else None,
    )


def sync_changed(tenant_id: str, row: Mapping[str, Any], occurred_at: datetime) -> AlertSyncChanged:
    """The ``alert-sync-changed`` event of a ``graph_alert_sync`` row as changed at ``occurred_at``."""
    return AlertSyncChanged(tenant_id=tenant_id, alert_id=row["alert_id"], sync=sync_state(row),
                            occurred_date_time=occurred_at)
