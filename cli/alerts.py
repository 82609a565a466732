"""``csp-triage alerts``: list and show a tenant's alerts (read API); acknowledge and resolve them
(write API, ``PATCH /alerts/{id}``, one request per alert). Triage (assign, notes, timeline, bulk
actions) is in :mod:`cli.triage`."""

from __future__ import annotations

from typing import Any

import click

from cli.client import segment
from cli.context import Settings, each, emit, json_option, pass_settings
from cli.output import fields, table
from cli.triage import assign, bulk, note, notes, timeline

HEADINGS = ["ID", "STATUS", "SEVERITY", "TITLE", "CUSTOMER", "DETECTED", "RESPONDED BY", "LATENCY H", "OPEN H",
            "ASSIGNEE"]


def alert_row(alert: dict[str, Any]) -> list[Any]:
    return [alert.get("id"), alert.get("status"), alert.get("severity"), alert.get("displayName"),
            alert.get("customerTenantId"), alert.get("detectedDateTime"), alert.get("respondedBy"),
            alert.get("latencyHours"), alert.get("openAgeHours"), alert.get("assignedTo")]


@click.group()
def alerts() -> None:
    """List, show, acknowledge, resolve, assign and note a tenant's alerts; their timelines."""


@alerts.command("list")
@click.option("--status", type=click.Choice(["active", "investigating", "resolved"]),
              help="Only alerts of this status.")
@click.option("--responded/--unanswered", default=None,
              help="Only alerts a partner answered (--responded), or only those not answered.")
@click.option("--assignee", metavar="EMAIL|me|none",
              help="Only alerts assigned to this person; me: to the key's user; none: to nobody.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True,
              help="Most alerts to list (pages are followed up to it).")
@click.option("--page-size", type=click.IntRange(1, 1000), default=100, show_default=True,
              help="Alerts asked for per request.")
@json_option
@pass_settings
def list_alerts(settings: Settings, status: str | None, responded: bool | None, assignee: str | None, limit: int,
                page_size: int) -> None:
    """The tenant's alerts, newest first, with their response time and assignee (read API)."""
    document = settings.read.pages(f"{settings.tenant_path()}/alerts",
                                   {"status": status, "responded": responded, "assignee": assignee}, limit, page_size)
    emit(settings, document, lambda d: table(HEADINGS, [alert_row(alert) for alert in d["value"]]))


@alerts.command("show")
@click.argument("alert_id")
@json_option
@pass_settings
def show_alert(settings: Settings, alert_id: str) -> None:
    """One alert, every field, with its response time and Partner Center sync state (read API)."""
    emit(settings, settings.read.get(f"{settings.tenant_path()}/alerts/{segment(alert_id)}"), fields)


def _change(settings: Settings, alert_ids: tuple[str, ...], change: dict[str, str], label: str) -> None:
    def patch(alert_id: str) -> tuple[str, Any]:
        answer = settings.write.request("PATCH", f"{settings.tenant_path()}/alerts/{segment(alert_id)}", json=change)
        # 202 either way: an alert already in that state is a duplicate (no event, nothing changed).
        return (label if answer.get("accepted") else f"already {label}"), answer

    each(settings, alert_ids, patch, "ALERT")


@alerts.command("acknowledge")
@click.argument("alert_ids", nargs=-1, required=True, metavar="ALERT_ID...")
@json_option
@pass_settings
def acknowledge(settings: Settings, alert_ids: tuple[str, ...]) -> None:
    """Acknowledge alerts: status investigating, as the key's user (stops their response clock)."""
    _change(settings, alert_ids, {"status": "investigating"}, "investigating")


@alerts.command("resolve")
@click.argument("alert_ids", nargs=-1, required=True, metavar="ALERT_ID...")
@click.option("--reason", type=click.Choice(["legitimate", "fraud", "ignore"]), required=True,
              help="Why: the activity was legitimate, fraud, or to be ignored.")
@json_option
@pass_settings
def resolve(settings: Settings, alert_ids: tuple[str, ...], reason: str) -> None:
    """Resolve alerts with a reason, as the key's user."""
    _change(settings, alert_ids, {"status": "resolved", "resolvedReason": reason}, f"resolved ({reason})")


for command in (assign, note, notes, timeline, bulk):
    alerts.add_command(command)
