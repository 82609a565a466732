"""From a request to validated alerts: media type, size limits, JSON, the three accepted shapes.

Every refusal is a problem document with the right 4xx, and a list is validated whole before
anything is published: one bad alert refuses the request (422 naming ``value[i].field``).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from pydantic import ValidationError

from shared.alerts import FRAUD_FIELD_NAMES, Alert, alert_document_from_fraud_event, is_fraud_event
from shared.http import Problem


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


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Problem(400, "Malformed JSON", f"the request body is not valid JSON: {exc}") from None


def _path(prefix: str, loc: tuple[Any, ...]) -> str:
    path = prefix
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


def _invalid(errors: list[dict[str, str]]) -> Problem:
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:10])
    return Problem(422, "Invalid alert", detail, errors=errors)


def alerts_from_document(document: Any, max_alerts: int) -> list[Alert]:
    """One alert, a Graph list ``{"value": [...]}``, a bare list, or older fraud events (any of those)."""
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
