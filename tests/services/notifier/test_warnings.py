"""At-risk warnings: the pure rules (no I/O) and their e-mail from the shipped templates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.notifier.templates import shipped
from services.notifier.warnings import (
    RequirementState,
    WarningReason,
    sample_warning_contexts,
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
NEAR = RequirementState(ComplianceStatus.compliant, False, near_limit=True)
AT_RISK_NEAR = RequirementState(ComplianceStatus.compliant, True, near_limit=True)
FAILING_NEAR = RequirementState(ComplianceStatus.noncompliant, False, near_limit=True)


def status(compliance: str, at_risk: bool | None = None, requirement: str = "securityAlertsPromptlyResolved",
           observed: datetime = NOW, near_limit: bool = False) -> RequirementStatusObserved:
    insights = {} if at_risk is None else {
        "atRisk": at_risk, "averageResponseTimeInHours": 20.0, "projectedAverageResponseTimeInHours": 26.25,
        "openCount": 2, "oldestOpenAgeHours": 22.0, "openAlertNearLimit": near_limit}
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


def test_an_open_alert_nearing_24_hours_warns_once_per_change_of_state():
    assert warnings_for(OK, NEAR, observed=NOW, now=NOW) == [WarningReason.alert_near_limit]
    assert warnings_for(None, NEAR, observed=NOW, now=NOW) == [WarningReason.alert_near_limit]
    # staying near (that alert ageing, or another one reaching 20 h meanwhile) is no news
    assert warnings_for(NEAR, NEAR, observed=NOW, now=NOW) == []
    assert warnings_for(NEAR, OK, observed=NOW, now=NOW) == []  # answered: nobody is told
    assert warnings_for(OK, NEAR, observed=NOW, now=NOW) == [WarningReason.alert_near_limit]  # a new one
    # news of its own, whatever the requirement's state: at risk, or already failing
    assert warnings_for(AT_RISK, AT_RISK_NEAR, observed=NOW, now=NOW) == [WarningReason.alert_near_limit]
    assert warnings_for(FAILING, FAILING_NEAR, observed=NOW, now=NOW) == [WarningReason.alert_near_limit]
    assert warnings_for(OK, AT_RISK_NEAR, observed=NOW, now=NOW) == [WarningReason.at_risk,
                                                                      WarningReason.alert_near_limit]
    assert warnings_for(NEAR, FAILING_NEAR, observed=NOW, now=NOW) == [WarningReason.noncompliant]
    assert warnings_for(OK, NEAR, observed=NOW - timedelta(hours=2), now=NOW) == []  # history


def test_a_status_observed_long_ago_is_history_not_news():
    assert warnings_for(OK, FAILING, observed=NOW - timedelta(hours=2), now=NOW) == []
    assert warnings_for(None, AT_RISK, observed=NOW - timedelta(days=3), now=NOW) == []
    assert warnings_for(OK, FAILING, observed=NOW - timedelta(minutes=50), now=NOW) == [WarningReason.noncompliant]


def test_the_state_comes_from_the_status_and_its_at_risk_figure():
    assert state_of(status("noncompliant", True)) == FAILING_AT_RISK
    assert state_of(status("compliant")) == OK  # no figures (another requirement): not at risk
    assert state_of(status("noncomplaint")) == FAILING  # Graph's spelling
    assert state_of(status("compliant", False, near_limit=True)) == NEAR
    assert state_of(status("compliant", False)) == OK


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


def test_the_near_limit_e_mail_says_how_old_the_alert_is_and_to_answer_it_now():
    catalogue = load_catalogue()
    event = status("compliant", False, near_limit=True)
    mail = shipped().render("warning", warning_context(event, WarningReason.alert_near_limit, catalogue, "https://dash/x"))
    assert mail.subject == ("[Partner Center] An open alert nears 24 hours: "
                            "Respond to security alerts within 24 hours on average")
    assert "An open alert nears the 24-hour limit." in mail.text
    assert "An open alert has waited 22.0 hours for an answer" in mail.text
    assert "counts against the 30-day average" in mail.text
    assert "Answer it now" in mail.text and "oldest first" in mail.text
    assert "Oldest open alert: 22.0 hours" in mail.text
    assert catalogue.get("securityAlertsPromptlyResolved").help_url in mail.text
    assert "An open alert nears the 24-hour limit." in mail.html and "<th" in mail.html


def test_the_start_up_check_renders_the_near_limit_warning():
    """The notifier refuses a template at start-up that cannot render a sample of every reason."""
    samples = sample_warning_contexts("https://dash/x")
    near = [context for context in samples if context["reason"] == "alert-near-limit"]
    assert len(near) == 3  # the response-time requirement, another one, one the catalogue lacks
    for context in near:
        mail = shipped().render("warning", context)
        assert mail.subject.startswith("[Partner Center] An open alert nears 24 hours")
    assert "An open alert has waited 20.2 hours" in shipped().render("warning", near[0]).text
