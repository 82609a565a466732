"""The ``alerts`` commands of triage (#18): who has an alert and the notes on it (write API), its
timeline (read API), and acting on many alerts in one call (write API ``POST /alert-actions``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from cli.client import segment
from cli.context import Settings, each, emit, json_option, pass_settings
from cli.output import fields, table
from cli.timeline import HEADINGS as TIMELINE_HEADINGS
from cli.timeline import timeline_row

NOTE_HEADINGS = ["ID", "CREATED", "AUTHOR", "TEXT"]
BULK_HEADINGS = ["ALERT", "OUTCOME", "DETAIL"]


def _alert_path(settings: Settings, alert_id: str) -> str:
    return f"{settings.tenant_path()}/alerts/{segment(alert_id)}"


def _assignee(to: str | None, unassign: bool) -> str | None:
    """The address to assign to, or None to unassign; bad usage unless exactly one was asked for."""
    if (to is None) == (not unassign):
        raise click.UsageError("give --to EMAIL to assign, or --unassign (one of them)")
    return to


def assignee_options(command: Callable) -> Callable:
    command = click.option("--unassign", is_flag=True, help="Unassign them: nobody has them.")(command)
    return click.option("--to", metavar="EMAIL", help="Assign them to this person (an e-mail address).")(command)


def paging_options(what: str) -> Callable[[Callable], Callable]:
    def add(command: Callable) -> Callable:
        command = click.option("--page-size", type=click.IntRange(1, 1000), default=100, show_default=True,
                               help=f"{what} asked for per request.")(command)
        return click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True,
                            help=f"Most {what.lower()} to list (pages are followed up to it).")(command)
    return add


@click.command("assign")
@click.argument("alert_ids", nargs=-1, required=True, metavar="ALERT_ID...")
@assignee_options
@json_option
@pass_settings
def assign(settings: Settings, alert_ids: tuple[str, ...], to: str | None, unassign: bool) -> None:
    """Assign alerts to a person, or unassign them (not a response: their clock keeps running)."""
    assignee = _assignee(to, unassign)

    def put(alert_id: str) -> tuple[str, Any]:
        path = f"{_alert_path(settings, alert_id)}/assignee"
        if assignee is None:
            return "unassigned", settings.write.request("DELETE", path)
        answer = settings.write.request("PUT", path, json={"assignee": assignee})
        return f"assigned to {answer.get('assignee')}", answer  # the address as the API normalised it

    each(settings, alert_ids, put, "ALERT")


@click.command("note")
@click.argument("alert_id")
@click.argument("text")
@json_option
@pass_settings
def note(settings: Settings, alert_id: str, text: str) -> None:
    """Add a note to an alert for the people triaging it; TEXT '-' reads it from stdin. Up to 4000
    characters, line breaks kept; never sent to Partner Center."""
    if text == "-":
        text = click.get_text_stream("stdin").read()
    emit(settings, settings.write.request("POST", f"{_alert_path(settings, alert_id)}/notes", json={"text": text}),
         fields)


@click.command("notes")
@click.argument("alert_id")
@paging_options("Notes")
@json_option
@pass_settings
def notes(settings: Settings, alert_id: str, limit: int, page_size: int) -> None:
    """An alert's notes, newest first (write API)."""
    document = settings.write.pages(f"{_alert_path(settings, alert_id)}/notes", {}, limit, page_size)
    emit(settings, document, lambda d: table(NOTE_HEADINGS, [
        [n.get("id"), n.get("createdDateTime"), n.get("author"), n.get("text")] for n in d["value"]]))


@click.command("timeline")
@click.argument("alert_id")
@paging_options("Entries")
@json_option
@pass_settings
def timeline(settings: Settings, alert_id: str, limit: int, page_size: int) -> None:
    """Everything that happened to an alert, newest first: received, updated, notified, reminded,
    escalated, assigned, noted, responded, synced (read API). --json shows every detail."""
    document = settings.read.pages(f"{_alert_path(settings, alert_id)}/timeline", {}, limit, page_size)
    emit(settings, document, lambda d: table(TIMELINE_HEADINGS, [timeline_row(entry) for entry in d["value"]]))


# ---- bulk actions ------------------------------------------------------------------------------

def _which(alert_ids: tuple[str, ...], status: str | None, severity: str | None,
           customer: str | None) -> dict[str, Any]:
    """The body's ``alertIds`` or ``filter``: exactly one of them, else bad usage."""
    conditions = {"status": status, "severity": severity, "customerTenantId": customer}
    conditions = {name: value for name, value in conditions.items() if value is not None}
    if alert_ids and conditions:
        raise click.UsageError("give alert ids or a filter (--status, --severity, --customer), not both")
    if not alert_ids and not conditions:
        raise click.UsageError("give alert ids, or a filter: --status, --severity and/or --customer")
    return {"alertIds": list(alert_ids)} if alert_ids else {"filter": conditions}


def selection_options(command: Callable) -> Callable:
    for option in reversed([
        click.argument("alert_ids", nargs=-1, metavar="[ALERT_ID]..."),
        click.option("--status", type=click.Choice(["active", "investigating", "resolved"]),
                     help="Filter: the alerts of this status."),
        click.option("--severity", type=click.Choice(["informational", "low", "medium", "high"]),
                     help="Filter: the alerts of this severity."),
        click.option("--customer", metavar="CUSTOMER_TENANT_ID", help="Filter: the alerts of this customer."),
    ]):
        command = option(command)
    return command


def _act(settings: Settings, body: dict[str, Any]) -> None:
    """One ``POST /alert-actions``; each alert's outcome printed; an alert not found makes the exit
    code 1 (named on stderr) once all are reported."""
    answer = settings.write.request("POST", f"{settings.tenant_path()}/alert-actions", json=body)
    emit(settings, answer, lambda a: table(BULK_HEADINGS, [
        [result.get("alertId"), result.get("outcome"), result.get("detail")] for result in a["results"]]))
    missing = [result.get("alertId") for result in answer["results"] if result.get("outcome") == "notFound"]
    if missing:
        click.echo(f"{len(missing)} of {answer['matched']} alerts not found: {', '.join(missing)}", err=True)
        raise click.exceptions.Exit(1)


@click.group("bulk")
def bulk() -> None:
    """Acknowledge, resolve or assign up to 500 alerts in one call, named by id or by a filter.

    Each alert changed gets its own event (and, acknowledged or resolved, its own response time);
    all of one call's changes are made together or none. Every alert is reported once: changed,
    unchanged (and why) or notFound (exit code 1).

    \b
      csp-triage alerts bulk acknowledge alert-1 alert-2
      csp-triage alerts bulk resolve --severity informational --status active --reason ignore
      csp-triage alerts bulk assign --customer contoso-customer --to ana@partner.example
    """


@bulk.command("acknowledge")
@selection_options
@json_option
@pass_settings
def bulk_acknowledge(settings: Settings, alert_ids: tuple[str, ...], status: str | None, severity: str | None,
                     customer: str | None) -> None:
    """Acknowledge alerts still active (investigating, as the key's user); a resolved one stays so."""
    _act(settings, {"action": "acknowledge", **_which(alert_ids, status, severity, customer)})


@bulk.command("resolve")
@selection_options
@click.option("--reason", type=click.Choice(["legitimate", "fraud", "ignore"]), required=True,
              help="Why: the activity was legitimate, fraud, or to be ignored.")
@json_option
@pass_settings
def bulk_resolve(settings: Settings, alert_ids: tuple[str, ...], status: str | None, severity: str | None,
                 customer: str | None, reason: str) -> None:
    """Resolve alerts with a reason, as the key's user."""
    _act(settings, {"action": "resolve", "resolvedReason": reason, **_which(alert_ids, status, severity, customer)})


@bulk.command("assign")
@selection_options
@assignee_options
@json_option
@pass_settings
def bulk_assign(settings: Settings, alert_ids: tuple[str, ...], status: str | None, severity: str | None,
                customer: str | None, to: str | None, unassign: bool) -> None:
    """Assign alerts to a person, or unassign them (not a response)."""
    _act(settings, {"action": "assign", "assignee": _assignee(to, unassign),
                    **_which(alert_ids, status, severity, customer)})
