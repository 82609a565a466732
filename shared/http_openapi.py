"""Every operation's error answers in the OpenAPI document, derived from what its route has.

Routes declare only what is theirs alone (a 409, a specific description); the answers that follow
from what a route has are added here, all as ``application/problem+json`` with the one ``Problem``
schema:

- a dependency that authenticates the caller (``shared.http_guards.authenticates``): 401, 403, 429,
  and the bearer key as the operation's security requirement;
- a request body: 400 (not JSON), 413 (over ``MAX_BODY_BYTES``), 415 (not declared JSON), 422;
- path or query parameters: 422 (FastAPI's own ``HTTPValidationError`` schema is replaced: the real
  bodies are problems);
- a path parameter other than the tenant (which every route takes, and which is never unknown): 404,
  unless the route is a PUT (which creates what its path names);
- any dependency (the key store, PostgreSQL, Redis, the broker): 503 with ``Retry-After``.

A declared response with a body of its own (the readiness report) is left as it is; a problem
declared by a route refers to the shared schema like every other.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts

from shared.http_guards import is_authenticating
from shared.problems import PROBLEM_JSON

TENANT_PARAMETER = "tenant_id"

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "An RFC 9457 problem document: every error answer of every service.",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "description": "`about:blank`: the status says what kind of problem."},
        "title": {"type": "string", "description": "Short summary of the kind of problem."},
        "status": {"type": "integer", "minimum": 400, "maximum": 599, "description": "The HTTP status."},
        "detail": {"type": "string", "description": "What was wrong with this request."},
        "instance": {"type": "string", "description": "The path of the request."},
        "errors": {
            "type": "array",
            "description": "Each invalid field (422).",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {
                    "field": {
                        "type": "string",
                        "description": "Where: `value[3].detectedDateTime` in a body, `path.alert_id`, "
                        "`query.top`.",
                    },
                    "message": {"type": "string"},
                },
            },
        },
        "alertId": {"type": "string", "description": "The alert whose event is too large (413)."},
        "requirementType": {"type": "string", "description": "The requirement whose status is owned elsewhere (409)."},
        "owner": {"type": "string", "description": "What sets that requirement's status (409)."},
        "state": {"type": "string", "description": "The delivery's state, when it cannot be redelivered (409)."},
    },
    "additionalProperties": True,
}

BEARER_SCHEME = "bearerKey"
WEBHOOK_SCHEME = "standardWebhook"
SECURITY_SCHEMES: dict[str, Any] = {
    BEARER_SCHEME: {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (`POST /v1/keys`, or `python -m shared.auth create-key`) or the operator key.",
    },
    WEBHOOK_SCHEME: {
        "type": "apiKey",
        "in": "header",
        "name": "webhook-signature",
        "description": "Standard Webhooks signature with the tenant's secret, beside `webhook-id` and "
        "`webhook-timestamp` (alert posts only).",
    },
}

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer", "minimum": 1}}
}
_WWW_AUTHENTICATE = {"WWW-Authenticate": {"description": "`Bearer`.", "schema": {"type": "string"}}}
_DESCRIPTIONS = {
    400: "The body is not valid JSON",
    401: "No valid key: send `Authorization: Bearer <key>`",
    403: "The key's role or tenant may not do this",
    404: "Nothing by that name for this tenant",
    409: "The request conflicts with the resource's state",
    413: "The body is over `MAX_BODY_BYTES`",
    415: "The body is not declared JSON (`Content-Type: application/json`)",
    422: "A parameter or the body is not valid; `errors[].field` names each",
    429: "Too many requests with this key; retry after `Retry-After` seconds",
    503: "A backing service (database, cache, broker) does not answer; retry after `Retry-After` seconds",
}
# FastAPI's own 422 entry, replaced.
_FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")
_FASTAPI_422_DESCRIPTION = "Validation Error"


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from _dependants(sub)


def errors_of(route: RouteContext, operation: dict[str, Any]) -> set[int]:
    """The error statuses ``route`` can answer with, from what it has."""
    dependants = list(_dependants(route.dependant))
    own_dependencies = dependants[1:]
    path_params = [p.name for d in dependants for p in d.path_params]
    query_params = [p.name for d in dependants for p in d.query_params]
    errors: set[int] = set()
    if any(is_authenticating(d.call) for d in dependants):
        errors |= {401, 403, 429}
    if route.body_field is not None or "requestBody" in operation:
        errors |= {400, 413, 415, 422}
    if path_params or query_params:
        errors.add(422)
    if any(name != TENANT_PARAMETER for name in path_params) and "PUT" not in route.methods:
        errors.add(404)  # (a PUT creates what its path names)
    if own_dependencies:
        errors.add(503)
    return errors


def _has_own_body(route: RouteContext, status: str) -> bool:
    """Whether the route declared a body of its own for ``status`` (a problem document is not one)."""
    declared = route.responses.get(int(status)) or route.responses.get(status) or {}
    return "model" in declared or any(media != PROBLEM_JSON for media in declared.get("content", {}))


def _phrase(status: int) -> str | None:
    """The standard phrase FastAPI writes for a status declared without a description; None for a status
    outside the standard list (a 499 would otherwise stop the whole document)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return None


def _document(route: RouteContext, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    errors = errors_of(route, operation)
    for status in errors:
        responses.setdefault(str(status), {"description": _DESCRIPTIONS[status]})
    if 401 in errors and "security" not in operation:
        operation["security"] = [{BEARER_SCHEME: []}]
    for status, response in responses.items():
        if not status.isdigit() or int(status) < 400 or _has_own_body(route, status):
            continue
        # FastAPI's own words (its 422's, or the status's phrase for a status declared without a description).
        if response.get("description") in (None, "", _FASTAPI_422_DESCRIPTION, _phrase(int(status))):
            response["description"] = _DESCRIPTIONS.get(int(status), "Request failed")
        response["content"] = {PROBLEM_JSON: {"schema": dict(_PROBLEM_REF)}}
        if status in ("429", "503"):
            response["headers"] = {**response.get("headers", {}), **_RETRY_AFTER}
        if status == "401":
            response["headers"] = {**response.get("headers", {}), **_WWW_AUTHENTICATE}
    operation["responses"] = dict(sorted(responses.items()))


def document_errors(app: FastAPI, document: dict[str, Any]) -> dict[str, Any]:
    """``document`` (the app's generated OpenAPI document) with every operation's errors, in place."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
    # Each route as included (with its router's prefix and dependencies), as FastAPI documents it.
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        item = document.get("paths", {}).get(route.path_format, {})
        for method in route.methods:
            if (operation := item.get(method.lower())) is not None:
                _document(route, operation)
    removed = {name: schemas.pop(name) for name in _FASTAPI_VALIDATION if name in schemas}
    text = json.dumps(document)
    for name, schema in removed.items():
        if f'"#/components/schemas/{name}"' in text:  # a model of the service's own by that name
            schemas[name] = schema
    return document
