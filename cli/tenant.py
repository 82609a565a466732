"""``csp-triage score`` and ``csp-triage response-time``: where a tenant stands (read API);
``csp-triage tenant``: export everything of a tenant, and offboard it (write API)."""

from __future__ import annotations

from typing import Any

import click

from cli import export as exporting
from cli.context import Settings, emit, json_option, pass_settings
from cli.output import fields, table

REQUIREMENT_HEADINGS = ["REQUIREMENT", "KIND", "STATE", "STATUS", "SCORE", "MAX", "UPDATED"]


def requirement_row(requirement: dict[str, Any]) -> list[Any]:
    return [requirement.get("requirementType"), requirement.get("kind"), requirement.get("state"),
            requirement.get("complianceStatus"), requirement.get("score"), requirement.get("maxScore"),
            requirement.get("updatedDateTime")]


def _score_text(document: dict[str, Any]) -> str:
    return "\n\n".join([fields(document["score"]),
                        table(REQUIREMENT_HEADINGS, [requirement_row(r) for r in document["requirements"]])])


@click.command()
@json_option
@pass_settings
def score(settings: Settings) -> None:
    """The tenant's security score and its requirements.

    With --json: {"score": <GET /security-score>, "requirements": <the value of GET
    /security-score/requirements>}.
    """
    path = f"{settings.tenant_path()}/security-score"
    document = {"score": settings.read.get(path), "requirements": settings.read.get(f"{path}/requirements")["value"]}
    emit(settings, document, _score_text)


@click.command("response-time")
@json_option
@pass_settings
def response_time(settings: Settings) -> None:
    """The tenant's 30-day average response time and open alerts."""
    emit(settings, settings.read.get(f"{settings.tenant_path()}/response-time"), fields)


@click.group()
def tenant() -> None:
    """Export everything of a tenant; offboard it (operators only)."""


@tenant.command("export")
@click.option("--output", "-o", default="-", metavar="FILE",
              help="Where to write it (readable by you alone); written whole or not at all. Default: stdout.")
@pass_settings
def export(settings: Settings, output: str) -> None:
    """Everything both APIs serve of the tenant, as JSON lines, every page followed: one object a
    line, {"kind", "alertId" (of an alert's), "data"}, between a first line "export" and a last
    line "export-complete" counting each kind. Takes an operator's key (the tenant's keys are
    listed; never a key itself nor any secret)."""
    settings.tenant_path()  # no tenant: bad usage before anything is written

    def warn(text: str) -> None:
        click.echo(f"warning: {text}", err=True)

    with exporting.output(output) as stream:
        counts = exporting.export(settings, stream, warn)
    where = "stdout" if output == "-" else output
    click.echo(f"exported {sum(counts.values())} records of tenant {settings.tenant} to {where}", err=True)


def offboarding_text(answer: dict[str, Any]) -> str:
    """The answer of ``POST /offboarding``: the tenant, then each table's rows, then each topic's tombstones."""
    head = {name: value for name, value in answer.items() if name not in ("rows", "tombstones")}
    return "\n\n".join([fields(head),
                         table(["TABLE", "ROWS"], list((answer.get("rows") or {}).items())),
                         table(["TOPIC", "TOMBSTONES"], list((answer.get("tombstones") or {}).items()))])


@tenant.command("offboard")
@click.option("--dry-run", is_flag=True, help="Only say what would be deleted; nothing changes.")
@click.option("--yes", is_flag=True, help="Delete the tenant set (--tenant), everywhere, for good. Export it first.")
@json_option
@pass_settings
def offboard(settings: Settings, dry_run: bool, yes: bool) -> None:
    """Delete everything of the tenant everywhere it lives (every service's tables, Redis, its keys on
    the compacted topics); from then on its writes are refused (410). Operators only; audited. Give
    --dry-run to see what the write API would delete, or --yes to do it: nothing goes by omission."""
    if dry_run == yes:
        raise click.UsageError("give --dry-run to see what would be deleted, or --yes to delete it (one of them)")
    body: dict[str, Any] = {"dryRun": dry_run}
    if yes:
        body["confirmTenantId"] = settings.tenant  # --yes names it: the tenant set is the one confirmed
    answer = settings.write.request("POST", f"{settings.tenant_path()}/offboarding", json=body)
    emit(settings, answer, offboarding_text)
    if yes:
        click.echo(f"tenant {settings.tenant} offboarded from the write API; each other service deletes what it "
                   "holds of it as it reads tenant-offboarded (its consumer lag on the tenants topic)", err=True)
