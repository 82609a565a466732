"""At-risk warnings (#13), without I/O: when a requirement's state changes for the worse, the people
who can act are told once, with why and what to do.

The notifier follows the ``requirement-status`` topic (every requirement of every tenant, its
compliance and its figures) and keeps the last state of each. A warning goes out on a change, never
on a repeat of the same state:
- a requirement turns **noncompliant** (the score drops by its points);
- the response-time requirement, still compliant, becomes **at risk**: the 30-day average would pass
  24 hours if the open alerts were answered now (SPEC §3's ``atRisk``);
- an open alert of the tenant **nears 24 hours** (``openAlertNearLimit``: the oldest open alert is at
  least ``NEAR_LIMIT_HOURS`` old), whatever the requirement's state: a state of the tenant, not one per
  alert, so another alert reaching 20 h meanwhile is no news; once all are answered, the next one is.
A status observed long ago (a consumer rebuilding its state from the compacted topic, or catching up
after an outage) updates the state silently: it is history, not news (:data:`FRESH_FOR`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from shared.catalogue import Catalogue
from shared.events import ComplianceStatus, RequirementStatusObserved
from shared.responses import NEAR_LIMIT_HOURS
from shared.wire import format_utc

# A status observed longer ago than this warns nobody (see the module's doc).
FRESH_FOR = timedelta(hours=1)
RESPONSE_TIME = "securityAlertsPromptlyResolved"


class WarningReason(StrEnum):
    noncompliant = "noncompliant"
    at_risk = "at-risk"
    alert_near_limit = "alert-near-limit"


@dataclass(frozen=True)
class RequirementState:
    compliance: ComplianceStatus
    at_risk: bool
    near_limit: bool = False  # some open alert of the tenant is near 24 hours (response time only)


def state_of(event: RequirementStatusObserved) -> RequirementState:
    insights = event.insights
    return RequirementState(event.compliance_status, insights.get("atRisk") is True,
                            insights.get("openAlertNearLimit") is True)


def warnings_for(
    previous: RequirementState | None, current: RequirementState, *, observed: datetime, now: datetime
) -> list[WarningReason]:
    """The warnings a change from ``previous`` (None: never seen) to ``current`` calls for."""
    if now - observed > FRESH_FOR:
        return []
    reasons = []
    was_noncompliant = previous is not None and previous.compliance is ComplianceStatus.noncompliant
    if current.compliance is ComplianceStatus.noncompliant:
        if not was_noncompliant:
            reasons.append(WarningReason.noncompliant)
    elif current.at_risk and not (previous is not None and previous.at_risk and not was_noncompliant):
        reasons.append(WarningReason.at_risk)
    # An alert about to pass 24 h is news of its own, even while the requirement is at risk or failing.
    if current.near_limit and not (previous is not None and previous.near_limit):
        reasons.append(WarningReason.alert_near_limit)
    return reasons


def warning_subject(requirement_type: str, reason: WarningReason, observed: datetime) -> str:
    """The delivery identity of one warning: one per requirement, reason and change of state."""
    return f"warning:{requirement_type}:{reason.value}:{format_utc(observed)}"


_WHY = {
    WarningReason.noncompliant: "The requirement is no longer met: the Partner Center security score drops by its "
    "points until it is met again.",
    WarningReason.at_risk: "The requirement is still met, but if the open alerts were answered now, the 30-day "
    "average response time would pass the 24-hour limit.",
    # True at any age: the status may first say so when the alert is already past 24 h.
    WarningReason.alert_near_limit: "An open alert has waited {waited} for an answer: answered after 24 hours, "
    "its response time counts against the 30-day average (the requirement allows 24 hours on average), and "
    "every further hour adds to it.",
}
# What to do, for a reason that says more than its requirement's advice (below).
_WHAT_FOR_REASON = {
    WarningReason.alert_near_limit: "Answer it now, and the other open alerts, oldest first: acknowledge or "
    "resolve each (the links in their e-mails, the dashboard, or the API). Every answer stops its alert's clock.",
}
_WHAT = {
    RESPONSE_TIME: "Answer the open alerts now, oldest first: acknowledge or resolve each (the links in their "
    "e-mails, the dashboard, or the API). Every answer stops its alert's clock.",
}


def _hours(value: Any) -> str:
    return f"{value:.1f} hours" if isinstance(value, int | float) else "unknown"


def _why(reason: WarningReason, insights: dict[str, Any]) -> str:
    age = insights.get("oldestOpenAgeHours")
    waited = _hours(age) if isinstance(age, int | float) else f"at least {NEAR_LIMIT_HOURS} hours"
    return _WHY[reason].format(waited=waited)


def warning_context(
    event: RequirementStatusObserved, reason: WarningReason, catalogue: Catalogue, dashboard: str
) -> dict[str, Any]:
    """What the ``warning.*.j2`` templates receive (listed in docs/notifier.md)."""
    requirement = catalogue.get(event.requirement_type)
    figures = []
    if event.requirement_type == RESPONSE_TIME:
        insights = event.insights
        figures = [
            ("30-day average response time", _hours(insights.get("averageResponseTimeInHours"))),
            ("Projected, if the open alerts were answered now",
             _hours(insights.get("projectedAverageResponseTimeInHours"))),
            ("Open alerts", str(insights.get("openCount", "unknown"))),
            ("Oldest open alert", _hours(insights.get("oldestOpenAgeHours"))),
        ]
    return {
        "reason": reason.value,  # noncompliant | at-risk | alert-near-limit
        "tenant_id": event.tenant_id,
        "requirement": {
            "type": event.requirement_type,
            "name": (requirement.display_name or event.requirement_type) if requirement else event.requirement_type,
            "description": (requirement.description or "") if requirement else "",
            "max_score": requirement.max_score if requirement else None,
            "help_url": (requirement.help_url or "") if requirement else "",
            "action_url": (requirement.action_url or "") if requirement else "",
        },
        "why": _why(reason, event.insights),
        "what_to_do": _WHAT_FOR_REASON.get(reason) or _WHAT.get(
            event.requirement_type, "Follow the requirement's guidance (below) to meet it again."),
        "figures": [{"label": label, "value": value} for label, value in figures],
        "observed": event.observed_date_time.strftime("%Y-%m-%d %H:%M UTC"),
        "links": {"dashboard": dashboard},
    }


def sample_warning_contexts(dashboard: str) -> list[dict[str, Any]]:
    """Contexts the ``warning.*.j2`` templates are rendered with at start-up: each reason, with the
    response-time figures and without (another requirement), and a requirement the catalogue lacks."""
    from shared.catalogue import load_catalogue

    catalogue = load_catalogue()
    observed = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
    response_time = RequirementStatusObserved(
        tenant_id="sample-tenant", requirement_type=RESPONSE_TIME, compliance_status="noncompliant",
        observed_date_time=observed, source="sample", insights={
            "averageResponseTimeInHours": 25.5, "projectedAverageResponseTimeInHours": 30.1, "openCount": 3,
            "oldestOpenAgeHours": 20.2, "atRisk": True})
    mfa = response_time.model_copy(update={"requirement_type": "mfaEnforcedForAdmins", "insights": {}})
    unknown = response_time.model_copy(update={"requirement_type": "notInTheCatalogue", "insights": {}})
    return [warning_context(event, reason, catalogue, dashboard)
            for event in (response_time, mfa, unknown) for reason in WarningReason]
