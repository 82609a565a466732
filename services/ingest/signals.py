"""Requirement signals and the security contact: request models and pure compliance rules (no I/O).

SPEC §4 says where each requirement's status comes from; this module holds those rules, the
validation of what callers send, and the events the rules yield. Storing and publishing live in
``signals_store.py`` and the route modules.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
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

from services.ingest.domain import FUTURE_TOLERANCE
from shared.events import (
    ComplianceStatus,
    RequirementStatusObserved,
    SecurityContact,
    SpendingBudgetThresholdReached,
)
from shared.wire import OptionalUtcDateTime, TenantId, WireModel

CONTACT_REQUIREMENT = "securityContactProvided"
ADMIN_MFA_REQUIREMENT = "mfaEnforcedForAdmins"
CUSTOMER_MFA_REQUIREMENT = "mfaEnforcedForAdminsOfCustomers"
SPENDING_REQUIREMENT = "spendingBudgetSetForCustomerAzureSubscriptions"

SPENDING_THRESHOLD_PERCENT = 80
MAX_CUSTOMERS_PER_REPORT = 50_000
MAX_NAME_LENGTH = 256

# A fixed namespace, so the spending notification of one tenant, customer and month always has the
# same event id: a consumer that dedupes by event id delivers it once even if it was published twice.
_SPENDING_NOTIFICATION_NAMESPACE = uuid.UUID("5b0f6c2e-8f3e-4d44-9a57-1f0c6d2b7a11")


# --- field validators ---------------------------------------------------------------------------


def _trimmed_name(value: str) -> str:
    name = " ".join(value.split())
    if not name:
        raise ValueError("must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"must be at most {MAX_NAME_LENGTH} characters")
    return name


def _email(value: str) -> str:
    try:
        # Syntax only: a contact's mail server may be unreachable from here, which says nothing
        # about the address.
        return validate_email(value.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid e-mail address: {exc}") from None


def _e164(value: str) -> str:
    text = value.strip()
    if not text.startswith("+"):
        raise ValueError("must be in international form with a country code, e.g. +442071234567 (E.164)")
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"not a phone number: {exc}") from None
    if number.extension:
        # E.164 has no extension and the contact's phone is dialled as stored: keeping a number
        # whose extension was silently dropped would reach the switchboard, not the contact.
        raise ValueError("extensions are not supported: give the contact's direct number")
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number for its country code")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _compliance(value: Any) -> Any:
    # Graph's wire spelling is `noncomplaint`; accept it and any casing.
    if isinstance(value, str):
        key = value.strip().lower()
        return {"noncomplaint": "noncompliant"}.get(key, key)
    return value


# The schemas say what the validators check where JSON Schema can say it (a non-blank name, an
# address with an @, a +number, a decimal number), so clients and fuzzers know what is accepted.
# (Patterns as schema only: the validators refuse with messages that say what to send.)
Name = Annotated[
    str, Field(max_length=MAX_NAME_LENGTH, json_schema_extra={"pattern": r"\S"}), AfterValidator(_trimmed_name)
]
Email = Annotated[str, Field(max_length=320, json_schema_extra={"format": "email"}), AfterValidator(_email)]
Phone = Annotated[str, Field(max_length=40, json_schema_extra={"pattern": r"^\s*\+"}), AfterValidator(_e164)]
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


def future_problem(observed: datetime | None, now: datetime) -> str | None:
    """Why ``observed`` cannot be accepted (it lies too far ahead), or ``None``."""
    if observed is not None and observed > now + FUTURE_TOLERANCE:
        minutes = int(FUTURE_TOLERANCE.total_seconds() // 60)
        return f"lies in the future (more than {minutes} minutes ahead of now)"
    return None


# --- security contact -----------------------------------------------------------------------------


class SecurityContactIn(WireModel):
    """``PUT /security-contact``: every field required; email normalised, phone made E.164."""

    name: Name = Field(description="A person or a group.")
    email: Email
    phone: Phone = Field(
        description="E.164 (`+` and country code); spaces, dashes and brackets are accepted."
    )

    def contact(self) -> SecurityContact:
        return SecurityContact(name=self.name, email=self.email, phone=self.phone)


def contact_status(
    tenant_id: str, contact: SecurityContact | None, now: datetime
) -> RequirementStatusObserved:
    """SPEC §5: a contact makes ``securityContactProvided`` compliant; none, noncompliant."""
    return _observed(tenant_id, CONTACT_REQUIREMENT, contact is not None, now, now, "security-contact",
                     {"contactProvided": contact is not None})


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
    return _observed(
        tenant_id,
        ADMIN_MFA_REQUIREMENT,
        compliant,
        report.observed_date_time or now,
        now,
        "admin-mfa-report",
        insights,
    )


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


def customer_mfa_status(
    tenant_id: str, report: CustomerMfaReport, now: datetime
) -> RequirementStatusObserved:
    """Compliant iff every customer's admins all have MFA (no customers: compliant)."""
    compliant_count = sum(1 for c in report.customers if c.compliant)
    insights = {"compliantCustomersCount": compliant_count, "totalCustomersCount": len(report.customers)}
    return _observed(
        tenant_id,
        CUSTOMER_MFA_REQUIREMENT,
        compliant_count == len(report.customers),
        report.observed_date_time or now,
        now,
        "customer-mfa-report",
        insights,
    )


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

    def threshold_reached(self, percent: int = SPENDING_THRESHOLD_PERCENT) -> bool:
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


def spending_status(tenant_id: str, report: SpendingReport, now: datetime) -> RequirementStatusObserved:
    """Compliant iff every customer with Azure usage (spend > 0) has a budget."""
    with_usage = [c for c in report.customers if c.has_usage]
    without_budget = [c for c in with_usage if c.monthly_budget is None]
    insights = {
        "month": report.budget_month(now),
        "totalCustomersCount": len(report.customers),
        "customersWithUsageCount": len(with_usage),
        "customersWithUsageWithoutBudgetCount": len(without_budget),
        "customersAtThresholdCount": sum(1 for c in report.customers if c.threshold_reached()),
    }
    return _observed(
        tenant_id,
        SPENDING_REQUIREMENT,
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
        if c.threshold_reached()
    ]


# --- any requirement ----------------------------------------------------------------------------


class RequirementStatusIn(WireModel):
    """``POST /requirements/{requirementType}/status``: a status observed elsewhere."""

    compliance_status: Compliance = Field(description="compliant | noncompliant (`noncomplaint` accepted).")
    observed_date_time: OptionalUtcDateTime = None
    source: str = Field("api", min_length=1, max_length=128)
    insights: dict[str, Any] = Field(default_factory=dict)


# The requirement types whose status one source owns (SPEC §4): the generic status endpoint refuses
# them, so a caller cannot contradict the owner (e.g. mark a tenant without contact compliant).
STATUS_OWNERS: dict[str, str] = {
    "securityContactProvided": "PUT/DELETE /v1/tenants/{tenantId}/security-contact",
    "securityAlertsPromptlyResolved": "the response-time service (computed from the alerts)",
    "mfaEnforcedForAdmins": "POST /v1/tenants/{tenantId}/signals/admin-mfa",
    "mfaEnforcedForAdminsOfCustomers": "POST /v1/tenants/{tenantId}/signals/customer-mfa",
    "spendingBudgetSetForCustomerAzureSubscriptions": "POST /v1/tenants/{tenantId}/signals/spending",
}


def next_change_time(now: datetime, last: datetime | None) -> datetime:
    """The time of a contact change: ``now``, but strictly after the last change recorded.

    Scoring keeps the newest observation, so each change (taken under the tenant's lock) must carry
    a later observedDateTime than the one before it, even if the clock stepped back.
    """
    if last is None or now > last:
        return now
    return last + timedelta(microseconds=1)


def generic_status(
    tenant_id: str, requirement_type: str, status: RequirementStatusIn, now: datetime
) -> RequirementStatusObserved:
    return _observed(
        tenant_id,
        requirement_type,
        status.compliance_status == ComplianceStatus.compliant,
        status.observed_date_time or now,
        now,
        status.source,
        status.insights,
    )


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


def _observed(
    tenant_id: str,
    requirement_type: str,
    compliant: bool,
    observed: datetime,
    now: datetime,
    source: str,
    insights: dict[str, Any],
) -> RequirementStatusObserved:
    return RequirementStatusObserved(
        tenant_id=tenant_id,
        requirement_type=requirement_type,
        observed_date_time=observed,
        occurred_date_time=now,
        compliance_status=ComplianceStatus.compliant if compliant else ComplianceStatus.noncompliant,
        source=source,
        insights=insights,
    )
