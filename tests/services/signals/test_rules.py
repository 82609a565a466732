"""The pure rules of the signals (services/ingest/signals_models.py, signals_rules.py, contact.py):
validation, compliance, notifications. No I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.ingest.contact import SecurityContactIn, contact_status, next_change_time
from services.ingest.signals_models import AdminMfaReport, CustomerMfaReport, RequirementStatusIn, SpendingReport
from services.ingest.signals_rules import (
    STATUS_OWNERS,
    admin_mfa_status,
    customer_mfa_status,
    future_problem,
    generic_status,
    spending_status,
    threshold_notifications,
)
from services.scoring.routes_customers import control_character
from shared.catalogue import RequirementType, load_catalogue

NOW = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)


def error_fields(exc: ValidationError) -> set[str]:
    return {".".join(str(p) for p in e["loc"]) for e in exc.errors()}


# --- security contact -----------------------------------------------------------------------------


def test_contact_is_trimmed_and_normalised():
    contact = SecurityContactIn.model_validate(
        {"name": "  SOC   team ", "email": "soc@Example.COM", "phone": "+44 20 7123 4567"}
    )
    assert (contact.name, contact.email, contact.phone) == ("SOC team", "soc@example.com", "+442071234567")


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"name": " ", "email": "a@example.com", "phone": "+442071234567"}, {"name"}),
        ({"name": "x" * 257, "email": "a@example.com", "phone": "+442071234567"}, {"name"}),
        ({"name": "SOC", "email": "not-an-address", "phone": "+442071234567"}, {"email"}),
        ({"name": "SOC", "email": "a@@example.com", "phone": "+442071234567"}, {"email"}),
        ({"name": "SOC", "email": "a@example.com", "phone": "020 7123 4567"}, {"phone"}),  # no country code
        ({"name": "SOC", "email": "a@example.com", "phone": "+44 12"}, {"phone"}),  # too short to be valid
        ({"name": "SOC", "email": "a@example.com", "phone": "+1 555 abc"}, {"phone"}),
        ({"name": "", "email": "nope", "phone": "12"}, {"name", "email", "phone"}),
        ({"email": "a@example.com"}, {"name", "phone"}),
    ],
)
def test_bad_contacts_name_each_bad_field(body, fields):
    with pytest.raises(ValidationError) as caught:
        SecurityContactIn.model_validate(body)
    assert error_fields(caught.value) == fields


def test_contact_status_follows_the_contact():
    contact = SecurityContactIn(name="SOC", email="soc@example.com", phone="+442071234567").contact()
    assert contact_status("t1", contact, NOW).compliance_status == "compliant"
    cleared = contact_status("t1", None, NOW)
    assert cleared.compliance_status == "noncompliant"
    assert (cleared.requirement_type, cleared.observed_date_time) == ("securityContactProvided", NOW)


# --- admin MFA ----------------------------------------------------------------------------------


def test_admin_mfa_compliant_only_when_every_admin_has_mfa():
    everyone = AdminMfaReport(
        total_admins=4, admins_with_mfa=4, emergency_access_accounts=1, emergency_access_with_mfa=1
    )
    status = admin_mfa_status("t1", everyone, NOW)
    assert status.compliance_status == "compliant"
    assert status.requirement_type == "mfaEnforcedForAdmins"
    assert status.insights == {
        "totalAdmins": 4,
        "adminsWithMfa": 4,
        "adminsWithoutMfa": 0,
        "adminsRequiredButNotUsingMfa": None,
        "emergencyAccessAccounts": 1,
        "emergencyAccessWithMfa": 1,
    }
    # The one admin without MFA is the emergency-access account: still noncompliant.
    emergency_without = AdminMfaReport(
        total_admins=4,
        admins_with_mfa=3,
        emergency_access_accounts=1,
        emergency_access_with_mfa=0,
        admins_required_but_not_using_mfa=0,
    )
    assert admin_mfa_status("t1", emergency_without, NOW).compliance_status == "noncompliant"


@pytest.mark.parametrize(
    ("counts", "fields"),
    [
        ({"totalAdmins": 2, "adminsWithMfa": 3}, {"adminsWithMfa"}),
        ({"totalAdmins": 2, "adminsWithMfa": -1}, {"adminsWithMfa"}),
        ({"totalAdmins": 0, "adminsWithMfa": 0}, {"totalAdmins"}),
        (
            {"totalAdmins": 3, "adminsWithMfa": 2, "adminsRequiredButNotUsingMfa": 2},
            {"adminsRequiredButNotUsingMfa"},
        ),
        (
            {"totalAdmins": 2, "adminsWithMfa": 2, "emergencyAccessAccounts": 3, "emergencyAccessWithMfa": 2},
            {"emergencyAccessAccounts"},
        ),
        (
            {"totalAdmins": 3, "adminsWithMfa": 3, "emergencyAccessAccounts": 1, "emergencyAccessWithMfa": 2},
            {"emergencyAccessWithMfa"},
        ),
        (
            {"totalAdmins": 3, "adminsWithMfa": 1, "emergencyAccessAccounts": 2, "emergencyAccessWithMfa": 2},
            {"emergencyAccessWithMfa"},
        ),  # both emergency accounts with MFA, but only one admin has MFA
        (
            {"totalAdmins": 3, "adminsWithMfa": 3, "emergencyAccessAccounts": 1, "emergencyAccessWithMfa": 0},
            {"adminsWithMfa"},
        ),  # every admin has MFA, yet an emergency account lacks it
        ({"totalAdmins": "3", "adminsWithMfa": 2.5}, {"totalAdmins", "adminsWithMfa"}),
    ],
)
def test_contradictory_admin_counts_are_refused(counts, fields):
    with pytest.raises(ValidationError) as caught:
        AdminMfaReport.model_validate(counts)
    assert error_fields(caught.value) == fields


# --- customers' MFA -----------------------------------------------------------------------------


def customer(
    cid: str, admins: int, with_mfa: int, *, users: int = 10, others: int = 0, name: str | None = None
):
    return {
        "customerTenantId": cid,
        "customerName": name or f"Customer {cid}",
        "admins": admins,
        "adminsWithMfa": with_mfa,
        "nonAdminsWithMfa": others,
        "totalUsers": users,
    }


def test_customer_mfa_compliant_iff_every_customers_admins_have_mfa():
    all_good = CustomerMfaReport.model_validate({"customers": [customer("a", 2, 2), customer("b", 0, 0)]})
    status = customer_mfa_status("t1", all_good, NOW)
    assert status.compliance_status == "compliant"
    assert status.insights == {"compliantCustomersCount": 2, "totalCustomersCount": 2}
    one_short = CustomerMfaReport.model_validate({"customers": [customer("a", 2, 2), customer("b", 3, 2)]})
    status = customer_mfa_status("t1", one_short, NOW)
    assert status.compliance_status == "noncompliant"
    assert status.insights == {"compliantCustomersCount": 1, "totalCustomersCount": 2}
    assert customer_mfa_status("t1", CustomerMfaReport(customers=[]), NOW).compliance_status == "compliant"


@pytest.mark.parametrize(
    ("entry", "fields"),
    [
        (customer("a", 2, 3), {"customers.0.adminsWithMfa"}),
        (customer("a", 5, 1, users=4), {"customers.0.admins"}),
        (customer("a", 2, 2, users=5, others=4), {"customers.0.nonAdminsWithMfa"}),
        (customer("a", -1, 0), {"customers.0.admins"}),
        ({**customer("a", 1, 1), "customerName": ""}, {"customers.0.customerName"}),
        ({**customer("a", 1, 1), "customerTenantId": "has spaces"}, {"customers.0.customerTenantId"}),
    ],
)
def test_contradictory_customer_counts_are_refused(entry, fields):
    with pytest.raises(ValidationError) as caught:
        CustomerMfaReport.model_validate({"customers": [entry]})
    assert error_fields(caught.value) == fields


def test_a_customer_listed_twice_is_refused():
    with pytest.raises(ValidationError) as caught:
        CustomerMfaReport.model_validate({"customers": [customer("a", 1, 1), customer("a", 2, 2)]})
    assert "listed more than once: a" in str(caught.value)


# --- spending -------------------------------------------------------------------------------------


def spend(cid: str, budget, current, name: str | None = None):
    return {
        "customerTenantId": cid,
        "customerName": name,
        "monthlyBudget": budget,
        "currentMonthSpend": current,
    }


def test_spending_compliant_iff_every_customer_with_usage_has_a_budget():
    report = SpendingReport.model_validate({"customers": [spend("a", 100, 10), spend("b", None, 0)]})
    status = spending_status("t1", report, NOW)
    assert status.compliance_status == "compliant"  # b has no budget but no usage either
    assert status.insights == {
        "month": "2026-11",
        "totalCustomersCount": 2,
        "customersWithUsageCount": 1,
        "customersWithUsageWithoutBudgetCount": 0,
        "customersAtThresholdCount": 0,
    }
    report = SpendingReport.model_validate({"customers": [spend("a", 100, 10), spend("b", None, 0.01)]})
    status = spending_status("t1", report, NOW)
    assert status.compliance_status == "noncompliant"
    assert status.insights["customersWithUsageWithoutBudgetCount"] == 1


def test_month_comes_from_the_report_else_from_its_observation_else_now():
    assert SpendingReport(customers=[], month="2026-10").budget_month(NOW) == "2026-10"
    observed = SpendingReport.model_validate(
        {"customers": [], "observedDateTime": "2026-09-30T23:30:00-02:00"}
    )
    assert observed.budget_month(NOW) == "2026-10"  # 01:30 UTC on 1 October
    assert SpendingReport(customers=[]).budget_month(NOW) == "2026-11"


def test_threshold_is_reached_at_exactly_80_percent():
    report = SpendingReport.model_validate(
        {
            "customers": [
                spend("exact", 100, 80),
                spend("below", 100, "79.99"),
                spend("above", 1000, 950),
                spend("none", None, 500),
                spend("decimal", "0.3", "0.24"),
            ]
        }
    )
    notifications = threshold_notifications("t1", report, NOW)
    assert [n.customer_tenant_id for n in notifications] == ["exact", "above", "decimal"]
    exact = notifications[0]
    assert (exact.month, exact.budget, exact.spend, exact.threshold_percent) == ("2026-11", 100.0, 80.0, 80)


def test_a_notification_has_the_same_event_id_for_the_same_tenant_customer_and_month():
    report = SpendingReport.model_validate({"customers": [spend("a", 100, 90)]})
    first = threshold_notifications("t1", report, NOW)[0]
    again = threshold_notifications("t1", report, NOW + timedelta(days=1))[0]
    next_month = threshold_notifications("t1", report, NOW + timedelta(days=10))[0]
    other_tenant = threshold_notifications("t2", report, NOW)[0]
    assert first.event_id == again.event_id
    assert len({first.event_id, next_month.event_id, other_tenant.event_id}) == 3


@pytest.mark.parametrize(
    ("entry", "fields"),
    [
        (spend("a", 0, 0), {"customers.0.monthlyBudget"}),
        (spend("a", -5, 0), {"customers.0.monthlyBudget"}),
        (spend("a", 100, -1), {"customers.0.currentMonthSpend"}),
        (spend("a", "NaN", 1), {"customers.0.monthlyBudget"}),
        (spend("a", 100, None), {"customers.0.currentMonthSpend"}),
    ],
)
def test_bad_spending_figures_are_refused(entry, fields):
    with pytest.raises(ValidationError) as caught:
        SpendingReport.model_validate({"customers": [entry]})
    assert error_fields(caught.value) == fields


def test_bad_month_is_refused():
    with pytest.raises(ValidationError) as caught:
        SpendingReport.model_validate({"customers": [], "month": "2026-13"})
    assert error_fields(caught.value) == {"month"}


# --- any requirement, and the time of an observation -----------------------------------------------


def test_generic_status_accepts_graphs_spelling_and_keeps_what_was_sent():
    body = RequirementStatusIn.model_validate(
        {
            "complianceStatus": "noncomplaint",
            "source": "partner-center",
            "insights": {"note": "x"},
            "observedDateTime": "2026-11-27T08:00:00",
        }
    )
    status = generic_status("t1", "mfaEnforcedForAdmins", body, NOW)
    assert status.compliance_status == "noncompliant"
    assert (status.source, status.insights) == ("partner-center", {"note": "x"})
    assert status.observed_date_time == datetime(2026, 11, 27, 8, tzinfo=UTC)
    assert status.occurred_date_time == NOW
    with pytest.raises(ValidationError):
        RequirementStatusIn.model_validate({"complianceStatus": "maybe"})


def test_an_observation_far_in_the_future_is_refused():
    assert future_problem(None, NOW) is None
    assert future_problem(NOW + timedelta(minutes=4), NOW) is None
    assert "future" in future_problem(NOW + timedelta(minutes=6), NOW)


def test_every_requirement_a_signal_reports_is_in_the_default_catalogue():
    catalogue = load_catalogue()
    for requirement_type in (RequirementType.security_contact_provided, RequirementType.mfa_enforced_for_admins,
                             RequirementType.mfa_enforced_for_admins_of_customers,
                             RequirementType.spending_budget_set_for_customer_azure_subscriptions):
        assert catalogue.get(requirement_type) is not None, requirement_type


# --- review fixes -----------------------------------------------------------------------------------


def test_a_contact_change_is_stamped_strictly_after_the_previous_one():
    later = NOW + timedelta(seconds=1)
    assert next_change_time(NOW, None) == NOW
    assert next_change_time(later, NOW) == later
    # The clock read before (or stepped back, or equal): one microsecond after the last change, so
    # the last committed change is the newest observation scoring keeps.
    assert next_change_time(NOW, later) == later + timedelta(microseconds=1)
    assert next_change_time(NOW, NOW) == NOW + timedelta(microseconds=1)


def test_a_phone_with_an_extension_is_refused_not_truncated():
    with pytest.raises(ValidationError) as caught:
        SecurityContactIn.model_validate(
            {"name": "SOC", "email": "soc@example.com", "phone": "+44 20 7123 4567 ext. 12"}
        )
    errors = caught.value.errors()
    assert [e["loc"] for e in errors] == [("phone",)]
    assert "extensions are not supported" in errors[0]["msg"]


def test_every_requirement_of_the_default_catalogue_has_one_owning_source():
    # Each status has one source; the generic endpoint sets none of the catalogue's types.
    catalogue = {r.requirement_type for r in load_catalogue().requirements}
    assert set(STATUS_OWNERS) == catalogue


@pytest.mark.parametrize("text", ["a\x00b", "tab\there", "bell\x07", "del\x7f", "lone\ud800"])
def test_control_characters_in_a_search_are_found(text):
    assert control_character(text) is not None


def test_ordinary_search_text_has_no_control_character():
    assert control_character("Contoso Ltd. 50% ünïcode _") is None
