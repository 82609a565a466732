"""At-risk warnings: the pure rules (no I/O) and their e-mail from the shipped templates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.notifier.templates import shipped
from services.notifier.warnings import (
    RequirementState,
    WarningReason,
    state_of,
    warning_context,
    warning_subject,
    warnings_for,
)
from shared.catalogue import load_catalogue
from shared.events import ComplianceStatus, RequirementStatusObserved

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
OK = RequirementState(ComplianceStatus.compliant, False)
AT_RISK = RequirementState(ComplianceStatus.compliant, True)
FAILING = RequirementState(ComplianceStatus.noncompliant, False)
FAILING_AT_RISK = RequirementState(ComplianceStatus.noncompliant, True)


def status(compliance: str, at_risk: bool | None = None, requirement: str = "securityAlertsPromptlyResolved",
           observed: datetime = NOW) -> RequirementStatusObserved:
    insights = {} if at_risk is None else {
        "atRisk": at_risk, "averageResponseTimeInHours": 20.0, "projectedAverageResponseTimeInHours": 26.25,
        "openCount": 2, "oldestOpenAgeHours": 22.0}
    return RequirementStatusObserved(tenant_id="t", requirement_type=requirement, compliance_status=compliance,
                                     observed_date_time=observed, source="test", insights=insights)


def test_a_warning_goes_out_on_a_change_for_the_worse_never_on_a_repeat():
    assert warnings_for(OK, FAILING, observed=NOW, now=NOW) == [WarningReason.noncompliant]
    assert warnings_for(None, FAILING, observed=NOW, now=NOW) == [WarningReason.noncompliant]
    assert warnings_for(FAILING, FAILING, observed=NOW, now=NOW) == []
    assert warnings_for(FAILING, FAILING_AT_RISK, observed=NOW, now=NOW) == []
    assert warnings_for(OK, AT_RISK, observed=NOW, now=NOW) == [WarningReason.at_risk]
    assert warnings_for(AT_RISK, AT_RISK, observed=NOW, now=NOW) == []
    assert warnings_for(AT_RISK, FAILING_AT_RISK, observed=NOW, now=NOW) == [WarningReason.noncompliant]
    # Met again, but at risk: a new state, worth its warning (it may fail again soon).
    assert warnings_for(FAILING, AT_RISK, observed=NOW, now=NOW) == [WarningReason.at_risk]
    # Recovering fully, or the risk passing, warns nobody.
    assert warnings_for(FAILING, OK, observed=NOW, now=NOW) == []
    assert warnings_for(AT_RISK, OK, observed=NOW, now=NOW) == []


def test_a_status_observed_long_ago_is_history_not_news():
    assert warnings_for(OK, FAILING, observed=NOW - timedelta(hours=2), now=NOW) == []
    assert warnings_for(None, AT_RISK, observed=NOW - timedelta(days=3), now=NOW) == []
    assert warnings_for(OK, FAILING, observed=NOW - timedelta(minutes=50), now=NOW) == [WarningReason.noncompliant]


def test_the_state_comes_from_the_status_and_its_at_risk_figure():
    assert state_of(status("noncompliant", True)) == FAILING_AT_RISK
    assert state_of(status("compliant")) == OK  # no figures (another requirement): not at risk
    assert state_of(status("noncomplaint")) == FAILING  # Graph's spelling


def test_one_warning_per_requirement_reason_and_change():
    first = warning_subject("mfaEnforcedForAdmins", WarningReason.noncompliant, NOW)
    assert first == warning_subject("mfaEnforcedForAdmins", WarningReason.noncompliant, NOW)
    assert first != warning_subject("mfaEnforcedForAdmins", WarningReason.noncompliant, NOW + timedelta(hours=1))
    assert first != warning_subject("mfaEnforcedForAdmins", WarningReason.at_risk, NOW)


def test_the_e_mail_says_why_and_what_to_do_with_the_requirements_help_link():
    catalogue = load_catalogue()
    event = status("compliant", True)
    mail = shipped().render("warning", warning_context(event, WarningReason.at_risk, catalogue, "https://dash/x"))
    assert mail.subject == "[Partner Center] At risk: Respond to security alerts within 24 hours on average"
    assert "would pass the 24-hour limit" in mail.text and "Answer the open alerts now" in mail.text
    assert "Projected, if the open alerts were answered now: 26.2 hours" in mail.text
    assert catalogue.get("securityAlertsPromptlyResolved").help_url in mail.text
    assert "https://dash/x" in mail.html and "<th" in mail.html

    mfa = status("noncompliant", requirement="mfaEnforcedForAdmins")
    mail = shipped().render("warning", warning_context(mfa, WarningReason.noncompliant, catalogue, "https://dash/x"))
    assert mail.subject.startswith("[Partner Center] Requirement not met: Enable multifactor authentication")
    assert "score drops" in mail.text and catalogue.get("mfaEnforcedForAdmins").help_url in mail.text
    assert "30-day average" not in mail.text  # the response-time figures belong to that requirement only
