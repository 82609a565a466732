"""The score formula and the newest-wins rule of SPEC §4, with no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.scoring import domain
from shared.catalogue import Catalogue, Kind, Requirement, State, load_catalogue
from shared.events import ComplianceStatus

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
DEFAULT = load_catalogue()


def status(
    requirement_type: str,
    compliant: bool = True,
    *,
    observed: datetime = NOW,
    event_id: str = "00000000-0000-0000-0000-000000000001",
) -> domain.Observation:
    return domain.Observation(
        requirement_type,
        ComplianceStatus.compliant if compliant else ComplianceStatus.noncompliant,
        observed,
        event_id,
    )


def statuses(*observations: domain.Observation) -> dict[str, domain.Observation]:
    return {o.requirement_type: o for o in observations}


def test_the_default_catalogue_is_the_table_of_the_spec():
    assert [(r.requirement_type, r.kind, r.max_score, r.state) for r in DEFAULT.requirements] == [
        ("mfaEnforcedForAdmins", Kind.mandatory, 20, State.active),
        ("securityAlertsPromptlyResolved", Kind.mandatory, 10, State.active),
        ("securityContactProvided", Kind.mandatory, 20, State.active),
        ("spendingBudgetSetForCustomerAzureSubscriptions", Kind.recommended, 10, State.active),
        ("mfaEnforcedForAdminsOfCustomers", Kind.recommended, 20, State.active),
    ]
    assert all(
        r.help_url and r.help_url.startswith("https://learn.microsoft.com/") for r in DEFAULT.requirements
    )
    assert all(r.action_url and r.action_url.startswith("https://") for r in DEFAULT.requirements)


def test_every_requirement_compliant_scores_100():
    summary = domain.summarise(
        DEFAULT, statuses(*(status(r.requirement_type) for r in DEFAULT.requirements)), NOW
    )
    assert summary == domain.ScoreSummary(100.0, 100.0, 5, 5)


def test_only_the_two_mfa_requirements_compliant_scores_50():
    only_mfa = statuses(
        status("mfaEnforcedForAdmins"),
        status("mfaEnforcedForAdminsOfCustomers"),
        status("securityContactProvided", compliant=False),
        status("securityAlertsPromptlyResolved", compliant=False),
    )
    summary = domain.summarise(DEFAULT, only_mfa, NOW)
    assert summary.current_score == 50.0  # 40 of 80
    assert (summary.compliant_requirements_count, summary.total_requirements_count) == (2, 5)


def test_no_status_received_yet_is_the_status_the_catalogue_assumes():
    # Noncompliant, except securityAlertsPromptlyResolved: with no status, no alert was ever answered,
    # and no responded alert in the window is compliant (SPEC §3).
    assert domain.summarise(DEFAULT, {}, NOW) == domain.ScoreSummary(12.5, 12.5, 1, 5)
    views = {v.requirement.requirement_type: v for v in domain.requirement_views(DEFAULT, {}, NOW)}
    assert {t: (v.compliance_status, v.score) for t, v in views.items()} == {
        "mfaEnforcedForAdmins": (ComplianceStatus.noncompliant, 0),
        "securityAlertsPromptlyResolved": (ComplianceStatus.compliant, 10),
        "securityContactProvided": (ComplianceStatus.noncompliant, 0),
        "spendingBudgetSetForCustomerAzureSubscriptions": (ComplianceStatus.noncompliant, 0),
        "mfaEnforcedForAdminsOfCustomers": (ComplianceStatus.noncompliant, 0),
    }
    assert views["securityAlertsPromptlyResolved"].status is None


def test_a_received_status_replaces_the_assumed_one():
    late = statuses(status("securityAlertsPromptlyResolved", compliant=False))
    assert domain.summarise(DEFAULT, late, NOW) == domain.ScoreSummary(0.0, 0.0, 0, 5)
    views = {v.requirement.requirement_type: v for v in domain.requirement_views(DEFAULT, late, NOW)}
    assert views["securityAlertsPromptlyResolved"].compliance_status is ComplianceStatus.noncompliant


def test_an_unobserved_preview_requirement_counts_its_assumed_status_in_projected_only():
    catalogue = Catalogue(
        requirements=(
            Requirement(requirement_type="a", kind=Kind.mandatory, max_score=20),
            Requirement(
                requirement_type="b",
                kind=Kind.mandatory,
                max_score=20,
                state=State.preview,
                effective_date_time=NOW + timedelta(days=1),
                unobserved_compliance_status=ComplianceStatus.compliant,
            ),
        )
    )
    assert domain.summarise(catalogue, {}, NOW) == domain.ScoreSummary(0.0, 50.0, 0, 1)


def test_no_active_requirement_scores_0():
    later = NOW + timedelta(days=30)
    only_previews = Catalogue(
        requirements=(
            Requirement(
                requirement_type="a",
                kind=Kind.mandatory,
                max_score=20,
                state=State.preview,
                effective_date_time=later,
            ),
        )
    )
    summary = domain.summarise(only_previews, statuses(status("a")), NOW)
    assert summary.current_score == 0.0 and summary.total_requirements_count == 0
    assert summary.projected_score == 100.0
    weightless = Catalogue(
        requirements=(Requirement(requirement_type="a", kind=Kind.recommended, max_score=0),)
    )
    assert domain.summarise(weightless, statuses(status("a")), NOW).current_score == 0.0


def test_preview_is_left_out_of_current_and_counted_in_projected_until_its_date():
    effective = NOW + timedelta(hours=1)
    catalogue = Catalogue(
        requirements=(
            *DEFAULT.requirements,
            Requirement(
                requirement_type="allUsersMfaRegistered",
                kind=Kind.recommended,
                max_score=20,
                state=State.preview,
                effective_date_time=effective,
            ),
        )
    )
    everything = statuses(*(status(r.requirement_type) for r in DEFAULT.requirements))
    before = domain.summarise(catalogue, everything, NOW)
    assert before.current_score == 100.0
    assert before.projected_score == 80.0  # 80 of 100
    assert before.total_requirements_count == 5
    on_the_date = domain.summarise(catalogue, everything, effective)
    assert on_the_date.current_score == 80.0 and on_the_date.total_requirements_count == 6
    views = {
        v.requirement.requirement_type: v.state for v in domain.requirement_views(catalogue, everything, NOW)
    }
    assert views["allUsersMfaRegistered"] is State.preview
    assert domain.next_activation(catalogue, NOW) == effective
    assert domain.next_activation(catalogue, effective) is None


def test_a_status_the_catalogue_does_not_list_counts_toward_nothing():
    summary = domain.summarise(DEFAULT, statuses(status("somethingNew"), status("mfaEnforcedForAdmins")), NOW)
    assert summary.current_score == 37.5  # 20 + 10 (no responded alert) of 80


def test_scores_have_two_decimals():
    catalogue = Catalogue(
        requirements=(
            Requirement(requirement_type="a", kind=Kind.mandatory, max_score=20),
            Requirement(requirement_type="b", kind=Kind.mandatory, max_score=20),
            Requirement(requirement_type="c", kind=Kind.mandatory, max_score=20),
        )
    )
    assert domain.summarise(catalogue, statuses(status("a")), NOW).current_score == 33.33


def test_the_newest_observation_wins_and_equal_times_go_to_the_larger_event_id():
    older = status("a", observed=NOW - timedelta(minutes=1), event_id="f" * 8)
    newer = status("a", compliant=False, observed=NOW, event_id="0" * 8)
    assert domain.supersedes(newer, older)
    assert not domain.supersedes(older, newer)
    assert domain.supersedes(older, None)
    same_time_larger_id = status("a", observed=NOW, event_id="1" * 8)
    assert domain.supersedes(same_time_larger_id, newer)
    assert not domain.supersedes(newer, newer)  # a replay changes nothing


def test_a_score_change_is_a_change_of_the_current_score_or_the_counts_not_of_projected_alone():
    base = domain.ScoreSummary(50.0, 40.0, 2, 5)
    assert base.differs_from(None) and base.is_score_change(None)
    same = domain.ScoreSummary(50.0, 40.0, 2, 5)
    assert not base.differs_from(same) and not base.is_score_change(same)
    projected_only = domain.ScoreSummary(50.0, 50.0, 2, 5)
    assert base.differs_from(projected_only)  # stored in the tenant's state
    assert not base.is_score_change(projected_only)  # but no history entry (SPEC §4)
    assert base.is_score_change(domain.ScoreSummary(25.0, 40.0, 1, 5))
    assert base.is_score_change(domain.ScoreSummary(50.0, 40.0, 3, 6))  # same score, other counts
