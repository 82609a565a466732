"""``csp-triage deliveries``: a tenant's notifications (read API) and redelivering a dead one (write API)."""

from __future__ import annotations

from typing import Any

import click

from cli.client import segment
from cli.context import Settings, emit, json_option, pass_settings
from cli.output import fields, table

HEADINGS = ["ID", "ALERT", "KIND", "CHANNEL", "STATE", "ATTEMPTS", "LAST ERROR", "CREATED"]
STATES = ["pending", "delivered", "dead", "skipped", "cancelled"]


def delivery_row(delivery: dict[str, Any]) -> list[Any]:
    return [delivery.get("id"), delivery.get("alertId"), delivery.get("kind"), delivery.get("channel"),
            delivery.get("state"), delivery.get("attempts"), delivery.get("lastError"),
            delivery.get("createdDateTime")]


@click.group()
def deliveries() -> None:
    """List a tenant's notifications and redeliver dead ones."""


@deliveries.command("list")
@click.option("--state", type=click.Choice(STATES), help="Only deliveries in this state (dead: the dead letters).")
@click.option("--alert", "alert_id", help="Only the deliveries of this alert.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True, help="Most deliveries to list.")
@json_option
@pass_settings
def list_deliveries(settings: Settings, state: str | None, alert_id: str | None, limit: int) -> None:
    """The tenant's notifications, newest first (read API)."""
    document = settings.read.get(f"{settings.tenant_path()}/deliveries", state=state, alertId=alert_id, top=limit)
    emit(settings, document, lambda d: table(HEADINGS, [delivery_row(delivery) for delivery in d["value"]]))


@deliveries.command("show")
@click.argument("delivery_id")
@json_option
@pass_settings
def show_delivery(settings: Settings, delivery_id: str) -> None:
    """One notification and its last attempt (read API)."""
    emit(settings, settings.read.get(f"{settings.tenant_path()}/deliveries/{segment(delivery_id)}"), fields)


@deliveries.command("redeliver")
@click.argument("delivery_id")
@json_option
@pass_settings
def redeliver(settings: Settings, delivery_id: str) -> None:
    """Send a dead delivery once more, with fresh attempts and the same Idempotency-Key (write API)."""
    path = f"{settings.tenant_path()}/deliveries/{segment(delivery_id)}/redeliver"
    emit(settings, settings.write.request("POST", path), fields)
