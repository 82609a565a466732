"""The requirements catalogue (SPEC §4): which requirements make the score, their kind and weight.

It comes from a YAML file (``CATALOGUE_PATH``; the default is the packaged ``catalogue.yaml``, the
table of SPEC §4) and is validated at start-up: a bad file stops the process with one readable line
rather than scoring with a wrong table.
"""

from __future__ import annotations

import sys
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import Field, StrictInt, ValidationError, model_validator

from shared.events import ComplianceStatus
from shared.wire import OptionalUtcDateTime, WireModel

DEFAULT_CATALOGUE_PATH = Path(__file__).with_name("catalogue.yaml")


class Kind(StrEnum):
    mandatory = "mandatory"
    recommended = "recommended"


class State(StrEnum):
    active = "active"
    preview = "preview"


class RequirementType(StrEnum):
    """The requirements of SPEC §4 that code names itself: whose status a service computes or owns.

    Defined here once; a catalogue may hold other types too (a partner's own), which the code treats
    alike, so a requirement type in events and the catalogue stays a plain string.
    """

    mfa_enforced_for_admins = "mfaEnforcedForAdmins"
    security_alerts_promptly_resolved = "securityAlertsPromptlyResolved"
    security_contact_provided = "securityContactProvided"
    spending_budget_set_for_customer_azure_subscriptions = "spendingBudgetSetForCustomerAzureSubscriptions"
    mfa_enforced_for_admins_of_customers = "mfaEnforcedForAdminsOfCustomers"


class Requirement(WireModel):
    """One requirement of the catalogue, with the links and text the read API shows beside it."""

    model_config = {**WireModel.model_config, "extra": "forbid", "frozen": True}

    requirement_type: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z][A-Za-z0-9]*$")]
    kind: Kind
    max_score: Annotated[StrictInt, Field(ge=0, le=20)]
    state: State = State.active
    effective_date_time: OptionalUtcDateTime = Field(
        None, description="When a preview requirement takes effect (then it counts as active)."
    )
    unobserved_compliance_status: ComplianceStatus = Field(
        ComplianceStatus.noncompliant,
        description="The status a tenant has while no status of this requirement was received.",
    )
    display_name: str = ""
    description: str = ""
    help_url: str | None = None
    action_url: str | None = None

    @model_validator(mode="after")
    def _preview_has_its_date(self) -> Requirement:
        if self.state is State.preview and self.effective_date_time is None:
            raise ValueError("a preview requirement needs its effectiveDateTime")
        return self

    def state_at(self, now: datetime) -> State:
        """A preview requirement is active from its effective date on, with no event needed."""
        if (
            self.state is State.preview
            and self.effective_date_time is not None
            and now < self.effective_date_time
        ):
            return State.preview
        return State.active


class Catalogue(WireModel):
    model_config = {**WireModel.model_config, "extra": "forbid", "frozen": True}

    requirements: tuple[Requirement, ...]

    @model_validator(mode="after")
    def _types_are_unique(self) -> Catalogue:
        if not self.requirements:
            raise ValueError("the catalogue lists no requirement")
        seen: set[str] = set()
        for requirement in self.requirements:
            if requirement.requirement_type in seen:
                raise ValueError(f"requirementType {requirement.requirement_type} appears twice")
            seen.add(requirement.requirement_type)
        return self

    def get(self, requirement_type: str) -> Requirement | None:
        return next((r for r in self.requirements if r.requirement_type == requirement_type), None)

    def preview_dates(self) -> list[datetime]:
        """Every date on which a preview requirement becomes active, in order."""
        return sorted(
            r.effective_date_time
            for r in self.requirements
            if r.state is State.preview and r.effective_date_time is not None
        )


class CatalogueError(Exception):
    """The catalogue file cannot be used; the message names the file and what is wrong, on one line."""


def load_catalogue(path: Path = DEFAULT_CATALOGUE_PATH) -> Catalogue:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise CatalogueError(
            f"cannot read the requirements catalogue {path}: {exc.strerror or exc}"
        ) from None
    except yaml.YAMLError as exc:
        raise CatalogueError(
            f"the requirements catalogue {path} is not valid YAML: {_one_line(str(exc))}"
        ) from None
    try:
        return Catalogue.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{_location(err['loc'], data)}: {err['msg']}" for err in exc.errors())
        raise CatalogueError(f"invalid requirements catalogue {path}: {problems}") from None


def load_catalogue_or_exit(path: Path) -> Catalogue:
    """A bad catalogue stops the process with one readable line, like a bad setting."""
    try:
        return load_catalogue(path)
    except CatalogueError as exc:
        print(str(exc), file=sys.stderr)
        raise SystemExit(2) from None


def _location(loc: tuple, data: object) -> str:
    # ("requirements", 2, "maxScore") -> "requirements[2](securityContactProvided).maxScore"
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
            try:
                text += f"({data['requirements'][part]['requirementType']})"  # type: ignore[index]
            except (KeyError, IndexError, TypeError):
                pass
        else:
            text += f".{part}" if text else str(part)
    return text or "catalogue"


def _one_line(text: str) -> str:
    return " ".join(text.split())
