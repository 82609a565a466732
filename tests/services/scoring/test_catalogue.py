"""The requirements catalogue file is validated at start-up, with one readable line per problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.catalogue import CatalogueError, RequirementType, load_catalogue
from shared.events import ComplianceStatus


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalogue.yaml"
    path.write_text(text)
    return path


def test_a_valid_file_with_a_preview_requirement_loads(tmp_path):
    catalogue = load_catalogue(
        write(
            tmp_path,
            """
requirements:
  - requirementType: mfaEnforcedForAdmins
    kind: mandatory
    maxScore: 20
  - requirementType: allUsersMfaRegistered
    kind: recommended
    maxScore: 10
    state: preview
    effectiveDateTime: "2027-01-01T00:00:00+01:00"
""",
        )
    )
    preview = catalogue.get("allUsersMfaRegistered")
    assert preview is not None and preview.effective_date_time.isoformat() == "2026-12-31T23:00:00+00:00"


def test_the_status_assumed_with_no_observation_is_noncompliant_unless_the_file_says_otherwise(tmp_path):
    catalogue = load_catalogue(
        write(
            tmp_path,
            """
requirements:
  - {requirementType: a, kind: mandatory, maxScore: 10}
  - {requirementType: b, kind: mandatory, maxScore: 10, unobservedComplianceStatus: compliant}
""",
        )
    )
    assert catalogue.get("a").unobserved_compliance_status is ComplianceStatus.noncompliant
    assert catalogue.get("b").unobserved_compliance_status is ComplianceStatus.compliant


def test_the_default_file_assumes_compliant_only_for_the_response_time_requirement():
    # SPEC §3: no responded alert in the window is compliant; with no status, none was ever answered.
    assumed = {r.requirement_type: r.unobserved_compliance_status for r in load_catalogue().requirements}
    assert {t for t, s in assumed.items() if s is ComplianceStatus.compliant} == {
        "securityAlertsPromptlyResolved"
    }


def test_the_requirement_types_the_code_names_are_those_of_the_default_file():
    # One spelling for both: a name changed in one and not the other fails here, not in production.
    assert {r.requirement_type for r in load_catalogue().requirements} == {
        "mfaEnforcedForAdmins",
        "securityAlertsPromptlyResolved",
        "securityContactProvided",
        "spendingBudgetSetForCustomerAzureSubscriptions",
        "mfaEnforcedForAdminsOfCustomers",
    } == set(RequirementType)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "requirements:\n  - {requirementType: a, kind: optional, maxScore: 10}\n",
            "requirements[0](a).kind: Input should be 'mandatory' or 'recommended'",
        ),
        (
            "requirements:\n  - {requirementType: a, kind: mandatory, maxScore: 21}\n",
            "requirements[0](a).maxScore: Input should be less than or equal to 20",
        ),
        (
            "requirements:\n  - {requirementType: a, kind: mandatory, maxScore: -1}\n",
            "requirements[0](a).maxScore: Input should be greater than or equal to 0",
        ),
        (
            "requirements:\n  - {requirementType: a, kind: mandatory, maxScore: 7.5}\n",
            "requirements[0](a).maxScore: Input should be a valid integer",
        ),
        (
            "requirements:\n  - {requirementType: a, kind: mandatory, maxScore: '10'}\n",
            "requirements[0](a).maxScore: Input should be a valid integer",
        ),
        (
            "requirements:\n  - {requirementType: a, kind: mandatory, maxScore: 10, state: preview}\n",
            "a preview requirement needs its effectiveDateTime",
        ),
        (
            "requirements:\n  - {requirementType: a, kind: mandatory, maxScore: 10, state: retired}\n",
            "requirements[0](a).state: Input should be 'active' or 'preview'",
        ),
        (
            "requirements:\n  - {requirementType: a, kind: mandatory, maxScore: 10}\n"
            "  - {requirementType: a, kind: recommended, maxScore: 5}\n",
            "requirementType a appears twice",
        ),
        ("requirements: []\n", "the catalogue lists no requirement"),
        (
            "requirements:\n  - {requirementType: a, kind: mandatory, maxScore: 10, weight: 3}\n",
            "requirements[0](a).weight: Extra inputs are not permitted",
        ),
        (
            "requirements:\n  - {requirementType: a, kind: mandatory, maxScore: 10,"
            " unobservedComplianceStatus: maybe}\n",
            "requirements[0](a).unobservedComplianceStatus: Input should be 'compliant' or 'noncompliant'",
        ),
        ("requirements: [\n", "is not valid YAML"),
    ],
)
def test_a_bad_file_is_refused_with_a_one_line_reason(tmp_path, body, message):
    with pytest.raises(CatalogueError) as refused:
        load_catalogue(write(tmp_path, body))
    text = str(refused.value)
    assert message in text and "\n" not in text


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(CatalogueError, match="cannot read the requirements catalogue"):
        load_catalogue(tmp_path / "absent.yaml")
