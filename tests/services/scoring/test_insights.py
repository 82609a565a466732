"""``insightSummary``: the sentence each requirement type's insights make, from the insights their owners
really publish (the write API's report rules, the contact, the response-time service's figures). No I/O."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from services.ingest.contact import contact_status
from services.ingest.signals_models import AdminMfaReport, CustomerMfaReport, SpendingReport
from services.ingest.signals_rules import admin_mfa_status, customer_mfa_status, spending_status
from services.response_time.status import status_event
from services.scoring.insights import insight_summary
from shared.catalogue import RequirementType
from shared.events import SecurityContact
from shared.response_time import ResponseTimeFigures

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)
T = RequirementType


def _customer(admins: int, with_mfa: int) -> dict:
    return {"customerTenantId": str(uuid.uuid4()), "customerName": "Fabrikam", "admins": admins,
            "adminsWithMfa": with_mfa, "nonAdminsWithMfa": 0, "totalUsers": 10}


def _spender(budget: float | None, spend: float) -> dict:
    return {"customerTenantId": str(uuid.uuid4()), "monthlyBudget": budget, "currentMonthSpend": spend}


@pytest.mark.parametrize(("total", "with_mfa", "said"), [
    (4, 3, "3 of 4 admins have MFA"),
    (1, 1, "1 of 1 admin has MFA"),
    (2, 0, "0 of 2 admins have MFA"),
])
def test_admin_mfa(total, with_mfa, said):
    status = admin_mfa_status("t", AdminMfaReport(total_admins=total, admins_with_mfa=with_mfa), NOW)
    assert insight_summary(status.requirement_type, status.insights) == said


@pytest.mark.parametrize(("customers", "said"), [
    ([_customer(2, 2)] * 12 + [_customer(2, 1)] * 28, "12 of 40 customers compliant"),
    ([_customer(1, 1)], "1 of 1 customer compliant"),
    ([], "No customers reported"),
])
def test_customer_mfa(customers, said):
    customers = [{**c, "customerTenantId": str(uuid.uuid4())} for c in customers]
    status = customer_mfa_status("t", CustomerMfaReport(customers=customers), NOW)
    assert insight_summary(status.requirement_type, status.insights) == said


@pytest.mark.parametrize(("customers", "said"), [
    ([_spender(None, 10)] * 2 + [_spender(100, 10)] * 3 + [_spender(None, 0)],
     "2 of 5 customers with Azure usage have no budget"),
    ([_spender(None, 10), _spender(100, 10)], "1 of 2 customers with Azure usage has no budget"),
    ([_spender(100, 10)] * 3, "All 3 customers with Azure usage have a budget"),
    ([_spender(100, 85)], "The 1 customer with Azure usage has a budget; 1 at 80% of its budget"),
    ([_spender(100, 90), _spender(100, 95), _spender(None, 1)],
     "1 of 3 customers with Azure usage has no budget; 2 at 80% of their budget"),
    ([_spender(None, 0)], "No customer has Azure usage"),
])
def test_spending(customers, said):
    customers = [{**c, "customerTenantId": str(uuid.uuid4())} for c in customers]
    status = spending_status("t", SpendingReport(customers=customers), NOW)
    assert insight_summary(status.requirement_type, status.insights) == said


def test_security_contact():
    contact = SecurityContact(name="SOC", email="soc@partner.example", phone="+4930123456")
    given, removed = contact_status("t", contact, NOW), contact_status("t", None, NOW)
    assert insight_summary(given.requirement_type, given.insights) == "A security contact is set"
    assert insight_summary(removed.requirement_type, removed.insights) == "No security contact is set"


def _figures(average: float | None, responded: int, still_open: int) -> ResponseTimeFigures:
    return ResponseTimeFigures(average_response_time_in_hours=average, responded_count=responded,
                               open_count=still_open, oldest_open_age_hours=None,
                               projected_average_response_time_in_hours=None, compliant=True, at_risk=False,
                               open_alert_near_limit=False)


@pytest.mark.parametrize(("figures", "said"), [
    (_figures(5.2166, 12, 3), "Average 5.2 h over 12 alerts, 3 open"),
    (_figures(30.0, 1, 0), "Average 30.0 h over 1 alert, 0 open"),
    (_figures(None, 0, 2), "No alert answered in 30 days, 2 open"),
])
def test_response_time(figures, said):
    status = status_event("t", figures, NOW)
    assert insight_summary(status.requirement_type, status.insights) == said


@pytest.mark.parametrize(("requirement_type", "insights"), [
    (T.mfa_enforced_for_admins, {}),  # no status yet
    (T.mfa_enforced_for_admins, None),
    ("partnersOwnRequirement", {"totalAdmins": 3, "adminsWithMfa": 1}),  # a type not known here
    (T.mfa_enforced_for_admins, {"totalAdmins": "4", "adminsWithMfa": 3}),  # wrong types never fail a read
    (T.mfa_enforced_for_admins, {"totalAdmins": True, "adminsWithMfa": 3}),
    (T.mfa_enforced_for_admins_of_customers, {"totalCustomersCount": 4}),
    (T.spending_budget_set_for_customer_azure_subscriptions, {"customersWithUsageCount": -1,
                                                               "customersWithUsageWithoutBudgetCount": 0}),
    (T.security_alerts_promptly_resolved, {"respondedCount": 2, "openCount": 0,
                                           "averageResponseTimeInHours": "fast"}),
    (T.security_contact_provided, {"contactProvided": "yes"}),
])
def test_nothing_to_say(requirement_type, insights):
    assert insight_summary(requirement_type, insights) is None
