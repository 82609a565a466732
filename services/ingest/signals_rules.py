"""The pure rules of the requirement signals (SPEC §4): the status each report yields, the customers'
MFA figures as events, and the 80 % spending notifications. No I/O: storing and publishing live in
``signals_store.py`` and the route modules; the wire models in ``signals_models.py``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from services.ingest.domain import FUTURE_TOLERANCE
from services.ingest.signals_models import (
    AdminMfaReport,
    CustomerMfaReport,
    RequirementStatusIn,
    SpendingReport,
)
from shared.catalogue import RequirementType
from shared.events import (
    ComplianceStatus,
    CustomerMfaObserved,
    RequirementStatusObserved,
    SpendingBudgetThresholdReached,
)

SPENDING_THRESHOLD_PERCENT = 80

# A fixed namespace, so the spending notification of one tenant, customer and month always has the
# same event id: a consumer that dedupes by event id delivers it once even if it was published twice.
_SPENDING_NOTIFICATION_NAMESPACE = uuid.UUID("5b0f6c2e-8f3e-4d44-9a57-1f0c6d2b7a11")

# The requirement types whose status one source owns (SPEC §4): the generic status endpoint refuses
# them, so a caller cannot contradict the owner (e.g. mark a tenant without contact compliant).
STATUS_OWNERS: dict[str, str] = {
    RequirementType.security_contact_provided: "PUT/DELETE /v1/tenants/{tenantId}/security-contact",
    RequirementType.security_alerts_promptly_resolved: "the response-time service (computed from the alerts)",
    RequirementType.mfa_enforced_for_admins: "POST /v1/tenants/{tenantId}/signals/admin-mfa",
    RequirementType.mfa_enforced_for_admins_of_customers: "POST /v1/tenants/{tenantId}/signals/customer-mfa",
    RequirementType.spending_budget_set_for_customer_azure_subscriptions:
        "POST /v1/tenants/{tenantId}/signals/spending",
}


def future_problem(observed: datetime | None, now: datetime) -> str | None:
    """Why ``observed`` cannot be accepted (it lies too far ahead), or ``None``."""
    if observed is not None and observed > now + FUTURE_TOLERANCE:
        minutes = int(FUTURE_TOLERANCE.total_seconds() // 60)
        return f"lies in the future (more than {minutes} minutes ahead of now)"
    return None


# --- the status each report yields ----------------------------------------------------------------


def admin_mfa_status(tenant_id: str, report: AdminMfaReport, now: datetime) -> RequirementStatusObserved:
    """Compliant iff every admin, emergency-access accounts included, has MFA."""
    compliant = report.admins_with_mfa == report.total_admins
    insights = {
        "totalAdmins": report.total_admins,
        "adminsWithMfa": report.admins_with_mfa,
        "adminsWithoutMfa": report.total_admins - report.admins_with_mfa,
        "adminsRequiredButNotUsingMfa": report.admins_required_but_not_using_mfa,
        "emergencyAccessAccounts": report.emergency_access_accounts,
        "emergencyAccessWithMfa": report.emergency_access_with_mfa,
    }
    return observed_status(
        tenant_id,
        RequirementType.mfa_enforced_for_admins,
        compliant,
        report.observed_date_time or now,
        now,
        "admin-mfa-report",
        insights,
    )


def customer_mfa_status(
    tenant_id: str, report: CustomerMfaReport, now: datetime
) -> RequirementStatusObserved:
    """Compliant iff every customer's admins all have MFA (no customers: compliant)."""
    compliant_count = sum(1 for c in report.customers if c.compliant)
    insights = {"compliantCustomersCount": compliant_count, "totalCustomersCount": len(report.customers)}
    return observed_status(
        tenant_id,
        RequirementType.mfa_enforced_for_admins_of_customers,
        compliant_count == len(report.customers),
        report.observed_date_time or now,
        now,
        "customer-mfa-report",
        insights,
    )


def customer_mfa_observations(
    tenant_id: str, report: CustomerMfaReport, observed: datetime, now: datetime
) -> list[CustomerMfaObserved]:
    """One event per customer of a stored report, each with the report's time (the newest wins)."""
    return [
        CustomerMfaObserved(
            tenant_id=tenant_id,
            occurred_date_time=now,
            customer_tenant_id=c.customer_tenant_id,
            customer_name=c.customer_name,
            admins=c.admins,
            admins_with_mfa=c.admins_with_mfa,
            non_admins_with_mfa=c.non_admins_with_mfa,
            total_users=c.total_users,
            observed_date_time=observed,
        )
        for c in report.customers
    ]


def spending_status(tenant_id: str, report: SpendingReport, now: datetime) -> RequirementStatusObserved:
    """Compliant iff every customer with Azure usage (spend > 0) has a budget."""
    with_usage = [c for c in report.customers if c.has_usage]
    without_budget = [c for c in with_usage if c.monthly_budget is None]
    insights = {
        "month": report.budget_month(now),
        "totalCustomersCount": len(report.customers),
        "customersWithUsageCount": len(with_usage),
        "customersWithUsageWithoutBudgetCount": len(without_budget),
        "customersAtThresholdCount": sum(
            1 for c in report.customers if c.threshold_reached(SPENDING_THRESHOLD_PERCENT)
        ),
    }
    return observed_status(
        tenant_id,
        RequirementType.spending_budget_set_for_customer_azure_subscriptions,
        not without_budget,
        report.observed_date_time or now,
        now,
        "spending-report",
        insights,
    )


def threshold_notifications(
    tenant_id: str, report: SpendingReport, now: datetime
) -> list[SpendingBudgetThresholdReached]:
    """One candidate notification per customer whose spend reached 80 % of its budget.

    Whether it is sent is the ledger's call (once per tenant, customer and month); its event id
    is derived from those three so a repeated publication is recognisably the same notification.
    """
    month = report.budget_month(now)
    return [
        SpendingBudgetThresholdReached(
            event_id=uuid.uuid5(
                _SPENDING_NOTIFICATION_NAMESPACE, f"{tenant_id}\n{c.customer_tenant_id}\n{month}"
            ),
            tenant_id=tenant_id,
            occurred_date_time=now,
            customer_tenant_id=c.customer_tenant_id,
            customer_name=c.customer_name,
            month=month,
            budget=float(c.monthly_budget),
            spend=float(c.current_month_spend),
            threshold_percent=SPENDING_THRESHOLD_PERCENT,
        )
        for c in report.customers
        if c.threshold_reached(SPENDING_THRESHOLD_PERCENT)
    ]


def generic_status(
    tenant_id: str, requirement_type: str, status: RequirementStatusIn, now: datetime
) -> RequirementStatusObserved:
    return observed_status(
        tenant_id,
        requirement_type,
        status.compliance_status == ComplianceStatus.compliant,
        status.observed_date_time or now,
        now,
        status.source,
        status.insights,
    )


def observed_status(
    tenant_id: str,
    requirement_type: str,
    compliant: bool,
    observed: datetime,
    now: datetime,
    source: str,
    insights: dict[str, Any],
) -> RequirementStatusObserved:
    """The status observation a rule decided: compliant or not, as of ``observed``."""
    return RequirementStatusObserved(
        tenant_id=tenant_id,
        requirement_type=requirement_type,
        observed_date_time=observed,
        occurred_date_time=now,
        compliance_status=ComplianceStatus.compliant if compliant else ComplianceStatus.noncompliant,
        source=source,
        insights=insights,
    )
