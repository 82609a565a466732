"""A requirement's ``insightSummary``: one short English sentence made of its status's ``insights``.
Pure, no I/O.

Each requirement type's insights are whatever its owner puts in the status (the write API's report
rules, ``services/ingest/signals_rules.py`` and ``contact.py``; the response-time service's figures,
``shared.response_time.ResponseTimeFigures``). A figure missing or of the wrong type, a type this
module does not know (a partner's own requirement, insights given through the generic status route)
or no status at all: None, nothing to say. A summary never fails a read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from shared.catalogue import RequirementType


def _count(insights: Mapping[str, Any], name: str) -> int | None:
    """A whole, non-negative figure of the insights; None if it is absent or not one (bool is no count)."""
    value = insights.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _plural(count: int, singular: str, plural: str | None = None) -> str:
    return f"{count} {singular if count == 1 else plural or singular + 's'}"


def _admin_mfa(insights: Mapping[str, Any]) -> str | None:
    total, with_mfa = _count(insights, "totalAdmins"), _count(insights, "adminsWithMfa")
    if total is None or with_mfa is None:
        return None
    if total == 0:
        return "No admin accounts reported"
    return f"{with_mfa} of {_plural(total, 'admin')} {'has' if total == 1 else 'have'} MFA"


def _customer_mfa(insights: Mapping[str, Any]) -> str | None:
    total, compliant = _count(insights, "totalCustomersCount"), _count(insights, "compliantCustomersCount")
    if total is None or compliant is None:
        return None
    if total == 0:
        return "No customers reported"
    return f"{compliant} of {_plural(total, 'customer')} compliant"


def _spending(insights: Mapping[str, Any]) -> str | None:
    with_usage = _count(insights, "customersWithUsageCount")
    without_budget = _count(insights, "customersWithUsageWithoutBudgetCount")
    if with_usage is None or without_budget is None:
        return None
    if with_usage == 0:
        sentence = "No customer has Azure usage"
    elif without_budget == 0:
        sentence = f"All {_plural(with_usage, 'customer')} with Azure usage have a budget"
        if with_usage == 1:
            sentence = "The 1 customer with Azure usage has a budget"
    else:
        sentence = (f"{without_budget} of {_plural(with_usage, 'customer')} with Azure usage "
                    f"{'has' if without_budget == 1 else 'have'} no budget")
    at_threshold = _count(insights, "customersAtThresholdCount")
    if at_threshold:
        sentence += f"; {at_threshold} at 80% of {'its' if at_threshold == 1 else 'their'} budget"
    return sentence


def _response_time(insights: Mapping[str, Any]) -> str | None:
    responded, still_open = _count(insights, "respondedCount"), _count(insights, "openCount")
    average = insights.get("averageResponseTimeInHours")
    if responded is None or still_open is None:
        return None
    if responded == 0 or average is None:
        sentence = "No alert answered in 30 days"
    elif isinstance(average, bool) or not isinstance(average, int | float):
        return None
    else:
        sentence = f"Average {average:.1f} h over {_plural(responded, 'alert')}"
    return f"{sentence}, {still_open} open"


def _security_contact(insights: Mapping[str, Any]) -> str | None:
    provided = insights.get("contactProvided")
    if not isinstance(provided, bool):
        return None
    return "A security contact is set" if provided else "No security contact is set"


_SUMMARIES: dict[str, Callable[[Mapping[str, Any]], str | None]] = {
    RequirementType.mfa_enforced_for_admins: _admin_mfa,
    RequirementType.mfa_enforced_for_admins_of_customers: _customer_mfa,
    RequirementType.spending_budget_set_for_customer_azure_subscriptions: _spending,
    RequirementType.security_alerts_promptly_resolved: _response_time,
    RequirementType.security_contact_provided: _security_contact,
}


def insight_summary(requirement_type: str, insights: Mapping[str, Any] | None) -> str | None:
    """The sentence the read API shows beside the requirement; None when there is nothing to say."""
    summary = _SUMMARIES.get(requirement_type)
    if summary is None or not insights:
        return None
    return summary(insights)
