"""``tenant export``: everything the two APIs serve of one tenant, as JSON lines, before it is offboarded.

One record a line, ``{"kind", "alertId" (what belongs to one alert), "data": <the object as the API
serves it>}`` (``data`` rather than the object's own fields: a delivery has a ``kind`` of its own).
A first line ``export`` says whose and from where; a last line ``export-complete`` counts each kind,
so an export cut short (a stream, a crash) shows it. Every list is followed to its last page. It is
read one request after another, not a snapshot: what changes meanwhile may show half-changed.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

import click

from cli.client import segment
from cli.context import Settings

PAGE = 1000  # the largest page the APIs give (the customers' MFA: 500)
CUSTOMER_PAGE = 500
UNPAGED = 1000  # GET /deliveries and /security-score/history give the newest this many, and no next page

# The write API's objects the tenant has at most one of: a 404 there means it has none.
SINGLE = (("contact", "security-contact"), ("escalation-chain", "escalation-chain"),
          ("graph-connection", "connections/graph"))


def record(kind: str, data: Any, alert_id: str | None = None) -> dict[str, Any]:
    return {"kind": kind, **({"alertId": alert_id} if alert_id is not None else {}), "data": data}


def tenant_records(settings: Settings, warn: Callable[[str], None]) -> Iterator[dict[str, Any]]:
    """The tenant's records, as they are read: its configuration (write API), where it stands (read
    API), each alert with its timeline, assignment and notes, then its deliveries. Never a secret:
    the APIs serve none (a key is its key id, a channel says only whether it has a secret). A refusal
    (the tenant's keys take an operator's key) raises: an export is whole or is not."""
    write, read, base = settings.write, settings.read, settings.tenant_path()
    for kind, path in SINGLE:
        if (found := write.get_if_any(f"{base}/{path}")) is not None:
            yield record(kind, found)
    for channel in write.get(f"{base}/channels")["value"]:
        yield record("channel", channel)
    for key in write.every("/v1/keys", {"tenantId": settings.tenant, "includeRevoked": "true"}, PAGE):
        yield record("key", key)
    for entry in write.every(f"{base}/audit", {}, PAGE):
        yield record("audit-entry", entry)

    yield record("score", read.get(f"{base}/security-score"))
    for requirement in read.get(f"{base}/security-score/requirements")["value"]:
        yield record("requirement", requirement)
    history = read.get(f"{base}/security-score/history", top=UNPAGED)["value"]
    if len(history) == UNPAGED:
        warn(f"only the newest {UNPAGED} score changes: the read API gives no more")
    for change in history:
        yield record("score-change", change)
    yield record("response-time", read.get(f"{base}/response-time"))
    for customer in read.every(f"{base}/customers/mfa", {}, CUSTOMER_PAGE):
        yield record("customer-mfa", customer)

    alert_ids: list[str] = []
    for alert in read.every(f"{base}/alerts", {}, PAGE):
        alert_id = alert["id"]
        alert_ids.append(alert_id)
        yield record("alert", alert)
        path = f"{base}/alerts/{segment(alert_id)}"
        for entry in read.every(f"{path}/timeline", {}, PAGE):
            yield record("timeline-entry", entry, alert_id)
        # Asked of every alert, not only of those the read API shows assigned or noted: its figures
        # may lag behind the write API's, and an export leaves nothing out on a guess.
        assignment = write.get(f"{path}/assignee")
        if assignment.get("assignedBy") is not None:  # else never assigned
            yield record("assignment", assignment, alert_id)
        for note in write.every(f"{path}/notes", {}, PAGE):
            yield record("note", note, alert_id)

    for delivery in _deliveries(settings, alert_ids, warn):
        yield record("delivery", delivery, delivery.get("alertId"))


def _deliveries(settings: Settings, alert_ids: list[str], warn: Callable[[str], None]) -> Iterator[dict[str, Any]]:
    """The tenant's deliveries. The read API lists the newest ones and has no next page: when that
    list is full, each alert's are asked for too; what belongs to no alert (at-risk warnings, storm
    digests...) beyond the newest ones cannot be read, and a warning says so."""
    base = f"{settings.tenant_path()}/deliveries"
    newest = settings.read.get(base, top=UNPAGED)["value"]
    yield from newest
    if len(newest) < UNPAGED:
        return
    seen = {delivery["id"] for delivery in newest}
    for alert_id in alert_ids:
        for delivery in settings.read.get(base, alertId=alert_id, top=UNPAGED)["value"]:
            if delivery["id"] not in seen:
                seen.add(delivery["id"])
                yield delivery
    warn(f"deliveries of no alert older than the newest {UNPAGED} deliveries are not in the export: "
         "the read API gives no more")


@contextmanager
def output(path: str) -> Iterator[TextIO]:
    """stdout for ``-``; else the file, written whole or not at all (a file beside it, on disk before it
    is renamed over ``path``: it may be all that is left of the tenant), readable by its owner alone."""
    if path == "-":
        yield click.get_text_stream("stdout")
        return
    directory = os.path.dirname(os.path.abspath(path))
    # mkstemp's file is the owner's alone (0600), and keeps that mode when it is renamed.
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=directory, prefix=".csp-triage-export-",
                                     suffix=".partial", delete=False) as temporary:
        try:
            yield temporary
            temporary.flush()
            os.fsync(temporary.fileno())
        except BaseException:
            temporary.close()
            os.unlink(temporary.name)
            raise
    os.replace(temporary.name, path)


def export(settings: Settings, stream: TextIO, warn: Callable[[str], None]) -> Counter[str]:
    """Writes the tenant's records to ``stream`` between the first and the last line; how many of each kind."""
    def line(document: dict[str, Any]) -> None:
        stream.write(json.dumps(document, separators=(",", ":")) + "\n")

    counts: Counter[str] = Counter()
    line({"kind": "export", "tenantId": settings.tenant, "startedDateTime": _now(), "writeUrl": settings.write_url,
          "readUrl": settings.read_url})
    for each in tenant_records(settings, warn):
        counts[each["kind"]] += 1
        line(each)
    line({"kind": "export-complete", "finishedDateTime": _now(), "counts": dict(counts)})
    return counts


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")
