"""Pure scoring rules of SPEC §4: no I/O here.

- A requirement scores its ``maxScore`` when compliant, else 0. With no status received yet, a
  requirement has the status its catalogue entry assumes (``unobservedComplianceStatus``):
  noncompliant, except ``securityAlertsPromptlyResolved`` (no responded alert is compliant, SPEC §3).
- ``currentScore = 100 × Σ score / Σ maxScore`` over the requirements active now (0.0 when none is);
  ``projectedScore`` is the same over active and preview requirements.
- Per tenant and requirement the newest ``observedDateTime`` wins; equal times are ordered by event
  id, so every instance and the rebuild reach the same winner whatever order they see events in.
- A status of a requirement type the catalogue does not list is kept but counts toward nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.catalogue import Catalogue, Requirement, State
from shared.events import ComplianceStatus

# Scores are shown with two decimals; rounding also keeps "did the score change" free of float noise.
SCORE_DECIMALS = 2


@dataclass(frozen=True)
class Observation:
    """The status of one requirement of one tenant, as the newest observation says."""

    requirement_type: str
    compliance_status: ComplianceStatus
    observed_at: datetime
    event_id: str
    source: str = ""
    insights: dict[str, Any] = field(default_factory=dict)
    applied_at: datetime | None = None

    @property
    def order_key(self) -> tuple[datetime, str]:
        return self.observed_at, self.event_id


def supersedes(candidate: Observation, current: Observation | None) -> bool:
    """Whether ``candidate`` replaces ``current``: newer observation time, then the larger event id."""
    return current is None or candidate.order_key > current.order_key


@dataclass(frozen=True)
class ScoreSummary:
    current_score: float
    projected_score: float
    compliant_requirements_count: int  # among the active requirements
    total_requirements_count: int  # active requirements

    @property
    def history_fields(self) -> tuple[float, int, int]:
        """What a history entry holds (SPEC §4): the score and the two counts."""
        return self.current_score, self.compliant_requirements_count, self.total_requirements_count

    def differs_from(self, other: ScoreSummary | None) -> bool:
        """Whether anything stored changed (the projected score included): the tenant's state is updated."""
        return other is None or self != other

    def is_score_change(self, other: ScoreSummary | None) -> bool:
        """A score change (a history entry and a ``score-changed`` event): ``currentScore`` or a count
        changed. A change of ``projectedScore`` alone is stored but is no entry of the history."""
        return other is None or self.history_fields != other.history_fields


def score_percent(parts: Iterable[tuple[int, bool]]) -> float:
    """``100 × Σ score / Σ maxScore`` of (maxScore, compliant) pairs; 0.0 when there is nothing to score."""
    parts = list(parts)
    possible = sum(max_score for max_score, _ in parts)
    if possible == 0:
        return 0.0
    earned = sum(max_score for max_score, compliant in parts if compliant)
    return round(100.0 * earned / possible, SCORE_DECIMALS)


def compliance_of(requirement: Requirement, statuses: Mapping[str, Observation]) -> ComplianceStatus:
    """The received status of ``requirement``, else the one its catalogue entry assumes."""
    found = statuses.get(requirement.requirement_type)
    return found.compliance_status if found is not None else requirement.unobserved_compliance_status


def is_compliant(requirement: Requirement, statuses: Mapping[str, Observation]) -> bool:
    return compliance_of(requirement, statuses) is ComplianceStatus.compliant


def summarise(catalogue: Catalogue, statuses: Mapping[str, Observation], now: datetime) -> ScoreSummary:
    active = [r for r in catalogue.requirements if r.state_at(now) is State.active]
    every = list(catalogue.requirements)
    return ScoreSummary(
        current_score=score_percent((r.max_score, is_compliant(r, statuses)) for r in active),
        projected_score=score_percent((r.max_score, is_compliant(r, statuses)) for r in every),
        compliant_requirements_count=sum(1 for r in active if is_compliant(r, statuses)),
        total_requirements_count=len(active),
    )


@dataclass(frozen=True)
class RequirementView:
    """One ``securityRequirement`` as the read API shows it."""

    requirement: Requirement
    state: State
    status: Observation | None  # None: no status received yet (the catalogue's assumed one applies)

    @property
    def compliance_status(self) -> ComplianceStatus:
        if self.status is None:
            return self.requirement.unobserved_compliance_status
        return self.status.compliance_status

    @property
    def score(self) -> int:
        return self.requirement.max_score if self.compliance_status is ComplianceStatus.compliant else 0


def requirement_views(
    catalogue: Catalogue, statuses: Mapping[str, Observation], now: datetime
) -> list[RequirementView]:
    return [
        RequirementView(r, r.state_at(now), statuses.get(r.requirement_type)) for r in catalogue.requirements
    ]


def next_activation(catalogue: Catalogue, after: datetime) -> datetime | None:
    """The first date after ``after`` on which a preview requirement becomes active, if any."""
    return next((d for d in catalogue.preview_dates() if d > after), None)
