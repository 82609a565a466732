"""Wire models of the requirement signals: what callers send, validated (no I/O, no rules).

The admin-MFA, customer-MFA and spending reports and a status observed elsewhere; a report whose
counts contradict each other is refused field by field. What follows from a report is in
``signals_rules.py``; the security contact's model is in ``contact.py``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_snake
from pydantic_core import InitErrorDetails, PydanticCustomError

from shared.events import ComplianceStatus
from shared.wire import OptionalUtcDateTime, TenantId, WireModel

MAX_CUSTOMERS_PER_REPORT = 50_000
MAX_NAME_LENGTH = 256


# --- field types ----------------------------------------------------------------------------------


def _trimmed_name(value: str) -> str:
    name = " ".join(value.split())
    if not name:
        raise ValueError("must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"must be at most {MAX_NAME_LENGTH} characters")
    return name


def _compliance(value: Any) -> Any:
    # Graph's wire spelling is `noncomplaint`; accept it and any casing.
    if isinstance(value, str):
        key = value.strip().lower()
        return {"noncomplaint": "noncompliant"}.get(key, key)
    return value


# The schemas say what the validators check where JSON Schema can say it (a non-blank name, a
# decimal number; the contact's address and phone in contact.py), so clients and fuzzers know what
# is accepted.
# (Patterns as schema only: the validators refuse with messages that say what to send.)
Name = Annotated[
    str, Field(max_length=MAX_NAME_LENGTH, json_schema_extra={"pattern": r"\S"}), AfterValidator(_trimmed_name)
]
Count = Annotated[int, Field(ge=0, le=10_000_000, strict=True)]
Money = Annotated[
    Decimal,
    Field(ge=0, le=Decimal("1e12"), allow_inf_nan=False),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": 1e12},
                {"type": "string", "pattern": r"^\s*\d{1,12}(\.\d+)?\s*$"},
            ],
            "description": "An amount, as a number or a decimal string (`\"1250.00\"`).",
        },
        mode="validation",
    ),
]
Compliance = Annotated[ComplianceStatus, BeforeValidator(_compliance)]


# --- admin MFA ----------------------------------------------------------------------------------


class AdminMfaReport(WireModel):
    """Counts of the partner tenant's admin accounts; every count includes emergency-access accounts."""

    total_admins: Annotated[int, Field(ge=1, le=10_000_000, strict=True)] = Field(
        description="Every admin account, emergency-access accounts included; a tenant has at least one."
    )
    admins_with_mfa: Count
    admins_required_but_not_using_mfa: Count | None = Field(
        None,
        description="Admins a policy requires MFA of who have not registered it (a subset of those without).",
    )
    emergency_access_accounts: Count = 0
    emergency_access_with_mfa: Count = 0
    observed_date_time: OptionalUtcDateTime = None

    @model_validator(mode="after")
    def _consistent(self) -> AdminMfaReport:
        total, with_mfa = self.total_admins, self.admins_with_mfa
        emergency, emergency_with = self.emergency_access_accounts, self.emergency_access_with_mfa
        without, emergency_without = total - with_mfa, emergency - emergency_with
        required = self.admins_required_but_not_using_mfa
        _refuse_contradictions(self, [
            ("adminsWithMfa", with_mfa > total, f"{with_mfa} admins with MFA but only {total} admins"),
            ("adminsRequiredButNotUsingMfa", required is not None and required > max(without, 0),
             f"{required} exceeds the {max(without, 0)} admins without MFA (totalAdmins - adminsWithMfa)"),
            ("emergencyAccessAccounts", emergency > total,
             f"{emergency} emergency-access accounts but only {total} admins, which include them"),
            ("emergencyAccessWithMfa", emergency_with > emergency,
             f"{emergency_with} exceeds emergencyAccessAccounts ({emergency})"),
            ("emergencyAccessWithMfa", emergency_with > with_mfa,
             f"{emergency_with} exceeds adminsWithMfa ({with_mfa}), which includes them"),
            # Checked only when the counts above hold, so one mistake yields one error.
            ("adminsWithMfa", emergency <= total and 0 <= without < emergency_without,
             f"{emergency_without} emergency-access accounts lack MFA but only {without} admins do"),
        ])
        return self


# --- customers' MFA -----------------------------------------------------------------------------


class CustomerMfa(WireModel):
    customer_tenant_id: TenantId
    customer_name: Name
    admins: Count
    admins_with_mfa: Count
    non_admins_with_mfa: Count
    total_users: Count

    @model_validator(mode="after")
    def _consistent(self) -> CustomerMfa:
        admins, with_mfa, users = self.admins, self.admins_with_mfa, self.total_users
        _refuse_contradictions(self, [
            ("adminsWithMfa", with_mfa > admins, f"{with_mfa} admins with MFA but only {admins} admins"),
            ("admins", admins > users, f"{admins} admins but only {users} users (totalUsers)"),
            ("nonAdminsWithMfa", admins <= users and self.non_admins_with_mfa > users - admins,
             f"{self.non_admins_with_mfa} exceeds the {users - admins} non-admins (totalUsers - admins)"),
        ])
        return self

    @property
    def compliant(self) -> bool:
        return self.admins_with_mfa == self.admins


class CustomerMfaReport(WireModel):
    """Every customer of the partner: the report replaces the previous one (customers left out are gone)."""

    customers: list[CustomerMfa] = Field(max_length=MAX_CUSTOMERS_PER_REPORT)
    observed_date_time: OptionalUtcDateTime = None

    @field_validator("customers")
    @classmethod
    def _unique(cls, customers: list[CustomerMfa]) -> list[CustomerMfa]:
        _refuse_repeated([c.customer_tenant_id for c in customers])
        return customers


# --- spending budgets ---------------------------------------------------------------------------


class CustomerSpending(WireModel):
    customer_tenant_id: TenantId
    customer_name: Name | None = None
    monthly_budget: Money | None = Field(
        None, description="The customer's monthly Azure budget; null: none set."
    )
    current_month_spend: Money = Field(description="Azure spend of the month so far.")

    @field_validator("monthly_budget")
    @classmethod
    def _positive_budget(cls, budget: Decimal | None) -> Decimal | None:
        if budget is not None and budget <= 0:
            raise ValueError("a budget must be greater than 0 (send null for no budget)")
        return budget

    @property
    def has_usage(self) -> bool:
        return self.current_month_spend > 0

    def threshold_reached(self, percent: int) -> bool:
        # Decimal arithmetic: 80 % of 100.00 is exactly 80.00, where floats would say 80.00000000000001.
        return (
            self.monthly_budget is not None
            and self.current_month_spend * 100 >= self.monthly_budget * percent
        )


class SpendingReport(WireModel):
    """Every customer's budget and spend; replaces the previous report (customers left out are gone)."""

    month: str | None = Field(
        None,
        pattern=r"^\d{4}-(0[1-9]|1[0-2])$",
        description="Budget month YYYY-MM; default: the month of observedDateTime (UTC).",
    )
    customers: list[CustomerSpending] = Field(max_length=MAX_CUSTOMERS_PER_REPORT)
    observed_date_time: OptionalUtcDateTime = None

    @field_validator("customers")
    @classmethod
    def _unique(cls, customers: list[CustomerSpending]) -> list[CustomerSpending]:
        _refuse_repeated([c.customer_tenant_id for c in customers])
        return customers

    def budget_month(self, now: datetime) -> str:
        return self.month or month_of(self.observed_date_time or now)


def month_of(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


# --- any requirement ----------------------------------------------------------------------------


class RequirementStatusIn(WireModel):
    """``POST /requirements/{requirementType}/status``: a status observed elsewhere."""

    compliance_status: Compliance = Field(description="compliant | noncompliant (`noncomplaint` accepted).")
    observed_date_time: OptionalUtcDateTime = None
    source: str = Field("api", min_length=1, max_length=128)
    insights: dict[str, Any] = Field(default_factory=dict)


# --- helpers ------------------------------------------------------------------------------------


def _refuse_contradictions(model: WireModel, checks: list[tuple[str, bool, str]]) -> None:
    """Raise one validation error per failed check, located at the field it names (422 names them)."""
    failed = [(field, message) for field, bad, message in checks if bad]
    if failed:
        raise ValidationError.from_exception_data(
            type(model).__name__,
            [
                InitErrorDetails(
                    type=PydanticCustomError("contradictory_counts", message),
                    loc=(field,),
                    input=getattr(model, to_snake(field)),
                )
                for field, message in failed
            ],
        )


def _refuse_repeated(ids: list[str]) -> None:
    seen: set[str] = set()
    repeated = sorted({i for i in ids if i in seen or seen.add(i)})
    if repeated:
        raise ValueError(f"customerTenantId listed more than once: {', '.join(repeated[:10])}")
