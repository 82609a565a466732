"""Wire conventions shared by every message and HTTP body.

camelCase on the wire, snake_case in Python, both accepted on input; timestamps in UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer
from pydantic.alias_generators import to_camel


def utcnow() -> datetime:
    return datetime.now(UTC)


class WireModel(BaseModel):
    """Base of every wire model: camelCase aliases, snake_case accepted too, camelCase out."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="ignore",
    )


# .NET writes seven fractional digits ("...:00.1234567Z"); Python keeps six.
_LONG_FRACTION = re.compile(r"(\.\d{6})\d+")
# The older Partner Center feed writes this for "not resolved".
_NEVER_YEAR = 9999


def parse_utc(value: Any) -> datetime | None:
    """ISO 8601 to an aware UTC datetime: no offset means UTC; an offset is converted.

    ``None``, empty strings and the year-9999 "never" placeholder become ``None``.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        text = value.strip()
        if not text or text.lower() in {"none", "null"}:
            return None
        text = _LONG_FRACTION.sub(r"\1", text)
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"not an ISO 8601 date-time: {value!r}") from exc
    else:
        raise ValueError(f"not an ISO 8601 date-time: {value!r}")
    if parsed.year == _NEVER_YEAR:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _format_utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _require_utc(value: Any) -> datetime:
    parsed = parse_utc(value)
    if parsed is None:
        raise ValueError("a date-time is required here")
    return parsed


# A required UTC timestamp, and an optional one; both serialise as "...Z".
UtcDateTime = Annotated[datetime, BeforeValidator(_require_utc), PlainSerializer(_format_utc, return_type=str)]
OptionalUtcDateTime = Annotated[
    datetime | None,
    BeforeValidator(parse_utc),
    PlainSerializer(lambda v: None if v is None else _format_utc(v), return_type=str | None),
]
