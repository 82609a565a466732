"""The security contact (SPEC §5): its validation and what a change of it yields (no I/O).

A contact makes ``securityContactProvided`` compliant; its e-mail is checked for syntax and
normalised, its phone made E.164. Storing and publishing live in ``signals_store.py`` and
``routes_contacts.py``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, Field

from services.ingest.signals_models import Name
from services.ingest.signals_rules import observed_status
from shared.catalogue import RequirementType
from shared.events import RequirementStatusObserved, SecurityContact
from shared.wire import WireModel


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


Email = Annotated[str, Field(max_length=320, json_schema_extra={"format": "email"}), AfterValidator(_email)]
Phone = Annotated[str, Field(max_length=40, json_schema_extra={"pattern": r"^\s*\+"}), AfterValidator(_e164)]


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
    return observed_status(
        tenant_id, RequirementType.security_contact_provided, contact is not None, now, now, "security-contact",
        {"contactProvided": contact is not None},
    )


def next_change_time(now: datetime, last: datetime | None) -> datetime:
    """The time of a contact change: ``now``, but strictly after the last change recorded.

    Scoring keeps the newest observation, so each change (taken under the tenant's lock) must carry
    a later observedDateTime than the one before it, even if the clock stepped back.
    """
    if last is None or now > last:
        return now
    return last + timedelta(microseconds=1)
