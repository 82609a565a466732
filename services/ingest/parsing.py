"""From a request to validated alerts: media type, size limits, JSON, the three accepted shapes.

Every refusal is a problem document with the right 4xx, and a list is validated whole before
anything is published: one bad alert refuses the request (422 naming ``value[i].field``).
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from datetime import datetime
from typing import Any

from fastapi import Request
from pydantic import ValidationError

from services.ingest.domain import FUTURE_TOLERANCE
from shared.alerts import FRAUD_FIELD_NAMES, Alert, alert_document_from_fraud_event, is_fraud_event
from shared.http import Problem
from shared.wire import built_of_checked_text, utcnow


def require_json_media_type(content_type: str | None) -> None:
    """415 unless the body is declared JSON (``application/json`` or any ``+json``)."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        raise Problem(
            415,
            "Unsupported media type",
            f"send Content-Type: application/json, not {content_type or 'nothing'}",
        )


def _too_large(limit: int) -> Problem:
    return Problem(413, "Request too large", f"the body may be at most {limit} bytes")


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing (413) as soon as it exceeds ``limit`` bytes, declared or not."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


# Deeper than any alert needs; deep nesting costs recursion in validation and serialisation.
MAX_NESTING_DEPTH = 32


def _refuse_constant(name: str) -> Any:
    # NaN/Infinity are not JSON (RFC 8259), and a stored state cannot hold them.
    raise ValueError(f"{name} is not a JSON number")


def _too_deep(value: Any, limit: int) -> str | None:
    """The path of the first container nested deeper than ``limit`` levels, or None."""
    # Iterative (no recursion on hostile input); a path is only spelled out for the one found.
    stack: list[tuple[Any, int, tuple]] = [(value, 1, ())]
    while stack:
        item, depth, trail = stack.pop()
        if depth > limit:
            return _path("", _unwind(trail)) if trail else "body"
        items = item.items() if isinstance(item, dict) else enumerate(item)
        stack.extend(
            (child, depth + 1, (trail, key)) for key, child in items if isinstance(child, dict | list)
        )
    return None


def _unwind(trail: tuple) -> tuple:
    keys: list[Any] = []
    while trail:
        trail, key = trail
        keys.append(key)
    return tuple(reversed(keys))


def parse_json(body: bytes) -> Any:
    """The body as JSON: 400 unless it is (no NaN/Infinity), 422 when nested too deep."""
    try:
        document = json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError, UnicodeDecodeError, NaN/Infinity and integers past
        # Python's digit limit; RecursionError is thousands of nested brackets.
        raise Problem(400, "Malformed JSON", f"the request body is not valid JSON: {exc}") from None
    if isinstance(document, dict | list) and (path := _too_deep(document, MAX_NESTING_DEPTH)) is not None:
        message = f"nested deeper than {MAX_NESTING_DEPTH} levels"
        raise Problem(
            422, "Invalid alert", f"{path}: {message}", errors=[{"field": path, "message": message}]
        )
    return document


def _path(prefix: str, loc: tuple[Any, ...]) -> str:
    path = prefix
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


def _invalid(errors: list[dict[str, str]]) -> Problem:
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:10])
    return Problem(422, "Invalid alert", detail, errors=errors)


def _future_time_errors(
    alert: Alert, item_prefix: str, latest: datetime, *, fraud: bool
) -> list[dict[str, str]]:
    """Times past ``latest`` that would start or stop the alert's response clock: refused."""
    times = [(("eventTime",) if fraud else ("detectedDateTime",), alert.detected_date_time)]
    times += [
        (("activityLogs", index, "updatedDateTime"), log.updated_date_time)
        for index, log in enumerate(alert.activity_logs)
    ]
    return [
        {"field": _path(item_prefix, loc), "message": f"{when.isoformat()} is in the future"}
        for loc, when in times
        if when is not None and when > latest
    ]


def plain_text(body: bytes) -> bool:
    """Whether the text :func:`parse_json` reads from ``body`` is storable as it is: JSON carries NUL or a
    lone surrogate only as a ``\\u`` escape (the parser refuses raw control characters and invalid
    UTF-8), so bytes with none need no scan (``alerts_from_document``'s ``text_checked``)."""
    return b"\\u" not in body


def alerts_from_document(document: Any, max_alerts: int, *, now: datetime | None = None,
                         text_checked: bool = False) -> list[Alert]:
    """One alert, a Graph list ``{"value": [...]}``, a bare list, or older fraud events (any of those).
    ``text_checked``: the document holds no NUL or lone surrogate (:func:`plain_text`): not scanned again."""
    with built_of_checked_text() if text_checked else nullcontext():
        return _alerts_from_document(document, max_alerts, now=now)


def _alerts_from_document(document: Any, max_alerts: int, *, now: datetime | None) -> list[Alert]:
    latest = (now or utcnow()) + FUTURE_TOLERANCE
    if isinstance(document, dict) and "value" in document and not is_fraud_event(document):
        items, prefix = document["value"], "value"
        if not isinstance(items, list):
            raise _invalid([{"field": "value", "message": "must be a list of alerts"}])
    elif isinstance(document, dict):
        items, prefix = [document], None
    elif isinstance(document, list):
        items, prefix = document, ""
    else:
        raise _invalid([{"field": "body", "message": 'send one alert object, or a list as {"value": [...]}'}])
    if len(items) > max_alerts:
        raise Problem(413, "Too many alerts", f"{len(items)} alerts; at most {max_alerts} per request")

    alerts: list[Alert] = []
    errors: list[dict[str, str]] = []
    first_index: dict[str, int] = {}
    for index, item in enumerate(items):
        item_prefix = "" if prefix is None else f"{prefix}[{index}]"
        if not isinstance(item, dict):
            errors.append({"field": item_prefix or "body", "message": "must be an alert object"})
            continue
        fraud = is_fraud_event(item)
        try:
            alert = Alert.model_validate(alert_document_from_fraud_event(item) if fraud else item)
        except ValidationError as exc:
            for error in exc.errors():
                loc = tuple(error.get("loc", ()))
                if fraud and loc and loc[0] in FRAUD_FIELD_NAMES:
                    loc = (FRAUD_FIELD_NAMES[loc[0]], *loc[1:])  # name the field as it was posted
                errors.append({"field": _path(item_prefix, loc), "message": error.get("msg", "invalid")})
            continue
        if future := _future_time_errors(alert, item_prefix, latest, fraud=fraud):
            errors.extend(future)
            continue
        if alert.id in first_index:
            errors.append(
                {
                    "field": _path(item_prefix, ("id",)),
                    "message": f"alert id {alert.id!r} already appears at index {first_index[alert.id]}",
                }
            )
            continue
        first_index[alert.id] = index
        alerts.append(alert)
    if errors:
        raise _invalid(errors)
    return alerts  # an empty list is fine: a feed with nothing new
