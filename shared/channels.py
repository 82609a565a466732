"""The channel configuration contract: the routing rule a partner sets on a notification channel.

Ingest accepts it over HTTP and the notifier routes alerts by it, so it is part of the contract
between them (and of the channel events that #11 will carry), not of either service.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from shared.alerts import Severity
from shared.wire import WireModel

_SEVERITIES = {s.value for s in Severity}


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
