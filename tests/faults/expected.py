"""What the system must show, recomputed from what the load generator sent and got accepted.

Independent of the services on purpose: nothing here imports their code. The rules are SPEC §3
(latency, the 30-day average, compliant iff at most 24.0 h, none answered is compliant), §4 (the
catalogue's table, ``currentScore = 100 × Σ score / Σ maxScore``) and §5 (one e-mail per alert to
the contact, one webhook per alert and matching channel).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

# SPEC §4's default catalogue: requirementType -> maxScore (every one active).
CATALOGUE = {
    "mfaEnforcedForAdmins": 20,
    "securityAlertsPromptlyResolved": 10,
    "securityContactProvided": 20,
    "spendingBudgetSetForCustomerAzureSubscriptions": 10,
    "mfaEnforcedForAdminsOfCustomers": 20,
}
TARGET_HOURS = 24.0
WINDOW = timedelta(days=30)
SECONDS_PER_HOUR = 3600.0


def hours(delta: timedelta) -> float:
    return delta.total_seconds() / SECONDS_PER_HOUR


def score(compliance: dict[str, bool]) -> float:
    """SPEC §4: 100 × Σ score / Σ maxScore over the (all active) requirements, two decimals as shown."""
    possible = sum(CATALOGUE.values())
    earned = sum(max_score for requirement, max_score in CATALOGUE.items() if compliance[requirement])
    return round(100.0 * earned / possible, 2)


@dataclass(frozen=True)
class Response:
    """The first partner response to an alert: known exactly (a feed's activity-log time) or only
    between the moment the request left and the moment its 202 came back (a PATCH, stamped by the
    server)."""

    earliest: datetime
    latest: datetime
    by: str

    @property
    def exact(self) -> bool:
        return self.earliest == self.latest


@dataclass
class ExpectedAlert:
    alert_id: str
    detected: datetime
    is_test: bool
    severity: str
    created_body: dict  # the body of the post that created it (re-posted later as an older state)
    status: str = "active"  # the state the read API must show last
    response: Response | None = None
    # Times a request about this alert was sent, so a check can say what happened when.
    history: list[str] = field(default_factory=list)

    def latency_bounds_hours(self) -> tuple[float, float] | None:
        """SPEC §3: stop − start (a response stamped before the start counts as 0)."""
        if self.response is None:
            return None
        return (max(0.0, hours(self.response.earliest - self.detected)),
                max(0.0, hours(self.response.latest - self.detected)))


@dataclass
class ExpectedTenant:
    tenant_id: str
    hook_path: str
    # Severities the tenant's channel routes to; None: no routes (every non-test alert).
    routed_severities: frozenset[str] | None
    user: str = ""
    user_key: str = ""
    alerts: dict[str, ExpectedAlert] = field(default_factory=dict)
    contact_email: str | None = None
    admin_mfa_compliant: bool | None = None
    customer_mfa_compliant: bool | None = None
    spending_compliant: bool | None = None
    spending_notifications: set[str] = field(default_factory=set)  # customers notified at 80 %

    def channel_gets(self, alert: ExpectedAlert) -> bool:
        """SPEC §5 with the routing rules of docs/notifier.md: test alerts only on routes that
        include them (none here), no routes = every non-test alert."""
        if alert.is_test:
            return False
        return self.routed_severities is None or alert.severity in self.routed_severities

    def average_bounds_hours(self, now: datetime) -> tuple[float, float] | None:
        """The 30-day average of SPEC §3 (non-test alerts first answered in the window), as the
        lowest and highest it can be given the PATCH brackets; None when nothing was answered."""
        answered = [a for a in self.alerts.values()
                    if a.response is not None and not a.is_test and a.response.latest > now - WINDOW]
        if not answered:
            return None
        lows, highs = zip(*(a.latency_bounds_hours() for a in answered), strict=True)
        return sum(lows) / len(answered), sum(highs) / len(answered)

    def responded_count(self, now: datetime) -> int:
        return sum(1 for a in self.alerts.values()
                   if a.response is not None and not a.is_test and a.response.latest > now - WINDOW)

    def compliance(self, now: datetime) -> dict[str, bool]:
        """Each requirement's status from what was accepted last; raises if the harness made an
        average whose side of 24 h the PATCH brackets leave open (then the check would prove nothing)."""
        bounds = self.average_bounds_hours(now)
        if bounds is None:
            prompt = True  # SPEC §3: no responded alert in the window is compliant
        else:
            low, high = bounds
            if (low <= TARGET_HOURS) != (high <= TARGET_HOURS):
                raise AssertionError(f"{self.tenant_id}: average between {low} and {high} h straddles 24 h")
            prompt = high <= TARGET_HOURS
        return {
            "mfaEnforcedForAdmins": bool(self.admin_mfa_compliant),
            "securityAlertsPromptlyResolved": prompt,
            "securityContactProvided": self.contact_email is not None,
            "spendingBudgetSetForCustomerAzureSubscriptions": bool(self.spending_compliant),
            "mfaEnforcedForAdminsOfCustomers": bool(self.customer_mfa_compliant),
        }
