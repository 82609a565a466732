"""Wire conventions shared by every message and HTTP body.

camelCase on the wire, snake_case in Python, both accepted on input; timestamps in UTC.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PlainSerializer,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import SchemaValidator, to_json


def json_text(value: Any) -> str:
    """``value`` as compact JSON text (pydantic's serializer: several times ``json.dumps``'s speed, for
    what a consumer writes per event, #15)."""
    return to_json(value).decode()


def utcnow() -> datetime:
    return datetime.now(UTC)


# A tenant id, in paths, queries and bodies: letters, digits, `.`, `_`, `-` (a GUID or a domain name).
TENANT_ID_PATTERN = r"^[A-Za-z0-9._-]+$"
TENANT_ID_MAX_LENGTH = 128
TenantId = Annotated[str, Field(min_length=1, max_length=TENANT_ID_MAX_LENGTH, pattern=TENANT_ID_PATTERN)]


# NUL (PostgreSQL refuses it in text and jsonb) and lone surrogates (not encodable as UTF-8).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


# Set while a model validates input its outermost model scanned (WireModel._refuse_unstorable_text).
_SCANNED: ContextVar[bool] = ContextVar("wire_text_scanned", default=False)


def _has_unstorable(value: Any) -> bool:
    """Whether any string (key or value) in ``value`` holds NUL or a surrogate: the cheap pass."""
    stack = [value]
    search = _UNSTORABLE.search
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if search(item):
                return True
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and search(key):
                    return True
                if not isinstance(child, int | float | bool | None):
                    stack.append(child)
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def _find_unstorable(value: Any, path: str) -> str | None:
    """The path of the first string (key or value) holding NUL or a surrogate, or None."""
    if isinstance(value, str):
        return path if _UNSTORABLE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and _UNSTORABLE.search(key):
                return path or "body"
            if (found := _find_unstorable(item, f"{path}.{key}" if path else str(key))) is not None:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            if (found := _find_unstorable(item, f"{path}[{index}]")) is not None:
                return found
    return None


@contextmanager
def built_of_checked_text() -> Iterator[None]:
    """Models built (``Model(...)``) in this block are built of text already checked: read through a
    model, or from storage (which holds no unstorable text). Their text is not scanned again: the scan of
    each delivery or response time a consumer builds per event was ~8% of its time (#15). Keep the block
    to building; input validated in it (``model_validate``) is not scanned either."""
    scanned = _SCANNED.set(True)
    try:
        yield
    finally:
        _SCANNED.reset(scanned)


class WireModel(BaseModel):
    """Base of every wire model: camelCase aliases, snake_case accepted too, camelCase out."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="ignore",
    )

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **options: Any) -> Self:
        # JSON bytes can only carry NUL or a lone surrogate as a \u escape (the parser refuses raw
        # control characters and invalid UTF-8), so bytes with no "\u" at all need no scan: most events
        # read from Kafka, whose scan was ~15% of a consumer's time (#15). Text (a jsonb column read back)
        # needs one regex pass for raw ones instead of a walk of every string parsed.
        if (b"\\u" not in json_data if isinstance(json_data, bytes | bytearray)
                else "\\u" not in json_data and not _UNSTORABLE.search(json_data)):
            if not options and (validator := _validator_without_scans(cls)) is not None:
                return validator.validate_json(json_data)
            scanned = _SCANNED.set(True)
            try:
                return super().model_validate_json(json_data, **options)
            finally:
                _SCANNED.reset(scanned)
        return super().model_validate_json(json_data, **options)

    @model_validator(mode="wrap")
    @classmethod
    def _refuse_unstorable_text(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        # Checked on raw input only (dicts/lists, not model instances): one regex scan per string;
        # the path is only spelled out (recursively, on input already parsed) once one is found. Once
        # per input, by its outermost model: the models nested in it see parts of what it scanned
        # (scanned again at each level, a deep event was most of its own validation, #15).
        if _SCANNED.get() or not isinstance(data, dict | list):
            return handler(data)
        if _has_unstorable(data):
            try:
                path = _find_unstorable(data, "")
            except RecursionError:
                path = None
            raise ValueError(
                f"text at {path or 'body'} contains a NUL character or an unpaired surrogate (\\u0000, \\ud800-\\udfff)"
            )
        scanned = _SCANNED.set(True)
        try:
            return handler(data)
        finally:
            _SCANNED.reset(scanned)


# .NET writes seven fractional digits ("...:00.1234567Z"); Python keeps six.
_LONG_FRACTION = re.compile(r"(\.\d{6})\d+")
# The older Partner Center feed writes this for "not resolved".
_NEVER_YEAR = 9999
_FIRST_INSTANT = datetime.min.replace(tzinfo=UTC)


def _fast_isoformat(text: str) -> datetime | None:
    # The common case, a wire timestamp as written ("...Z", any fraction): Python 3.11's parser reads it
    # as the steps below would (a "Z" is UTC, digits past six are dropped); anything else takes them.
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def parse_utc(value: Any) -> datetime | None:
    """ISO 8601 to an aware UTC datetime: no offset means UTC; an offset is converted.

    ``None``, empty strings, the year-9999 "never" placeholder and the first instant of year 1 (.NET's
    ``DateTime.MinValue``) become ``None``.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and (parsed := _fast_isoformat(value)) is not None:
        pass
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
    try:
        utc = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"date-time out of range: {value!r}") from None
    # .NET's DateTime.MinValue, another "never"; PostgreSQL would store it as -infinity and read it
    # back as a naive datetime that no reader can compare.
    return None if utc == _FIRST_INSTANT else utc


def format_utc(value: datetime) -> str:
    """The wire's form of a timestamp: ISO 8601 in UTC, ``Z`` for the offset (``2026-11-27T12:00:00Z``)."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat().replace("+00:00", "Z")


def _require_utc(value: Any) -> datetime:
    parsed = parse_utc(value)
    if parsed is None:
        raise ValueError("a date-time is required here")
    return parsed


# A required UTC timestamp, and an optional one; both serialise as "...Z".
UtcDateTime = Annotated[datetime, BeforeValidator(_require_utc), PlainSerializer(format_utc, return_type=str)]
OptionalUtcDateTime = Annotated[
    datetime | None,
    BeforeValidator(parse_utc),
    # None is written as null by pydantic itself: no Python call per empty field of every dump.
    PlainSerializer(format_utc, return_type=str, when_used="unless-none"),
    # What is accepted as input, said in the published schema (real feeds write "" or "None" for none).
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "date-time"},
                {"type": "string", "enum": ["", "None", "null"]},
                {"type": "null"},
            ],
            "description": "ISO 8601 (no offset: UTC); null, an empty string, `None`, the year 9999 or "
            "0001-01-01T00:00:00 (.NET's MinValue) mean none.",
        },
        mode="validation",
    ),
]


# Per wire model, its validator with none of the scans (below): for JSON known to hold no unstorable text.
_VALIDATORS_WITHOUT_SCANS: dict[type[WireModel], SchemaValidator] = {}


def _validator_without_scans(cls: type[WireModel]) -> SchemaValidator | None:
    """``cls``'s validator without the ``_refuse_unstorable_text`` wrapped around it and each wire model
    nested in it. Even when told to skip its scan, that wrap is a call into Python for every nested
    model, a third of the validation of an event read from Kafka (an alert event's model_validate_json
    24 µs with it, 16 without, #15). None until the class is complete."""
    validator = _VALIDATORS_WITHOUT_SCANS.get(cls)
    if validator is None and cls.__pydantic_complete__:
        scan = WireModel._refuse_unstorable_text.__func__

        def without_scans(node: Any) -> Any:
            if isinstance(node, dict):
                if node.get("type") == "function-wrap" and getattr(
                        node["function"].get("function"), "__func__", None) is scan:
                    return without_scans(node["schema"])
                return {key: without_scans(value) for key, value in node.items()}
            if isinstance(node, list):
                return [without_scans(item) for item in node]
            return node

        validator = _VALIDATORS_WITHOUT_SCANS[cls] = SchemaValidator(without_scans(cls.__pydantic_core_schema__))
    return validator
