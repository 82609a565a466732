"""An alert's timeline as ``alerts timeline`` prints it, pure: one row per entry, its details said in a
few words (the read API's entry types, docs/scoring.md "Timeline"). ``--json`` shows every detail."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cli.output import cell

HEADINGS = ["TIME", "TYPE", "ACTOR", "SUMMARY"]


def _received(details: Mapping[str, Any]) -> str:
    about = [f"customer {cell(details.get('customerTenantId'))}"] + (["test"] if details.get("isTest") else [])
    return (f"{cell(details.get('severity'))}, {cell(details.get('status'))}: {cell(details.get('displayName'))}"
            f" ({', '.join(about)})")


def _updated(details: Mapping[str, Any]) -> str:
    return ", ".join(f"{cell(change.get('field'))} {cell(change.get('from'))} → {cell(change.get('to'))}"
                     for change in details.get("changes") or [])


def _delivery(details: Mapping[str, Any]) -> str:
    text = f"{cell(details.get('channel'))} to {cell(details.get('recipient'))}: {cell(details.get('state'))}"
    if details.get("state") == "grouped" and details.get("digestId"):
        text += f" in digest {cell(details['digestId'])}"
    attempts, redeliveries = details.get("attempts") or 0, details.get("redeliveries") or 0
    if attempts > 1:
        text += f" after {attempts} attempts"
    if redeliveries:
        text += f", redelivered {redeliveries} time{'s' if redeliveries > 1 else ''}"
    if details.get("lastError") and details.get("state") != "delivered":
        text += f" ({cell(details['lastError'])})"
    return text


def _assigned(details: Mapping[str, Any]) -> str:
    previous = details.get("previousAssignee")
    return f"to {cell(details.get('assignee'))}" + (f" (was {cell(previous)})" if previous else "")


def _unassigned(details: Mapping[str, Any]) -> str:
    previous = details.get("previousAssignee")
    return f"was {cell(previous)}" if previous else ""


def _responded(details: Mapping[str, Any]) -> str:
    return f"after {cell(details.get('latencyHours'))} h"


def _synced(details: Mapping[str, Any]) -> str:
    text = cell(details.get("state"))
    if details.get("pendingStatus"):
        text += f" {cell(details['pendingStatus'])}"
    if details.get("attempts"):
        text += f", {details['attempts']} attempt{'s' if details['attempts'] > 1 else ''}"
    if details.get("lastError"):
        text += f" ({cell(details['lastError'])})"
    return text


_SUMMARIES: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "received": _received,
    "updated": _updated,
    "notified": _delivery,
    "reminded": _delivery,
    "escalated": _delivery,
    "assigned": _assigned,
    "unassigned": _unassigned,
    "noted": lambda details: str(details.get("text") or ""),
    "responded": _responded,
    "synced": _synced,
}


def summary(entry: Mapping[str, Any]) -> str:
    """What the entry's details say, in a few words; an entry of a type this CLI does not know yet
    (a newer API) shows its details as compact JSON."""
    details = entry.get("details")
    if not isinstance(details, Mapping) or not details:
        return ""
    say = _SUMMARIES.get(str(entry.get("type")))
    return say(details) if say else cell(details)


def timeline_row(entry: Mapping[str, Any]) -> list[Any]:
    return [entry.get("occurredDateTime"), entry.get("type"), entry.get("actor"), summary(entry)]
