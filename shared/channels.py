"""The channel configuration contract: what kind of channel it is and the routing rule a partner sets on it.

Ingest accepts them over HTTP and the notifier delivers and routes alerts by them, so they are part of
the contract between them (and of the channel events on ``notification-channels``), not of either service.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, field_validator

from shared.alerts import Severity
from shared.wire import WireModel

_SEVERITIES = {s.value for s in Severity}

# A channel's name (`/channels/{name}`, and an escalation chain's step naming a channel).
CHANNEL_NAME_PATTERN = r"^[A-Za-z0-9._-]+$"
CHANNEL_NAME_MAX_LENGTH = 64


class ChannelKind(StrEnum):
    """What a channel's URL receives. A channel or event that names no kind is a webhook (before #13
    every channel was one)."""

    webhook = "webhook"  # the signed JSON of a ticketing system (Standard Webhooks; a secret)
    teams = "teams"  # an Adaptive Card to a Microsoft Teams incoming webhook or Workflows URL (no secret)


class Route(WireModel):
    """One routing rule of a channel; every criterion given must match."""

    severities: list[str] = Field(default_factory=list, description="informational | low | medium | high")
    alert_types: list[str] = Field(default_factory=list, description="e.g. `unusualActivity`; exact match.")
    customer_tenant_ids: list[str] = Field(default_factory=list, description="Customers whose alerts match.")
    include_test: bool = Field(False, description="Test alerts match only routes that say so.")

    @field_validator("severities")
    @classmethod
    def _known_severities(cls, values: list[str]) -> list[str]:
        unknown = [v for v in values if v not in _SEVERITIES]
        if unknown:
            raise ValueError(f"unknown severities {unknown}; use {sorted(_SEVERITIES)}")
        return values
