"""Every route of both APIs, and the health routes of all four services, documents its errors.

Each error a route can answer with is in its OpenAPI operation as ``application/problem+json`` with
the one shared ``Problem`` schema, so a client (or a schema-based fuzzer) knows every status and
body it may get. The expectations are derived from each operation (key required, body taken, path
naming a resource, parameters validated), so a new route is covered without being listed here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from services.ingest.app import create_app as create_ingest
from services.notifier.app import create_app as create_notifier
from services.response_time.app import create_app as create_response_time
from services.scoring.app import create_app as create_scoring

PROBLEM_CONTENT = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
METHODS = {"get", "put", "post", "patch", "delete"}
FACTORIES = {
    "ingest": create_ingest,
    "scoring": create_scoring,
    "notifier": create_notifier,
    "response-time": create_response_time,
}


@pytest.fixture(scope="module")
def documents() -> Iterator[dict[str, dict]]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ENVIRONMENT", "development")  # the development key and secret are enough to build
        yield {name: factory().openapi() for name, factory in FACTORIES.items()}


def operations(document: dict) -> Iterator[tuple[str, str, dict]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def expected_errors(path: str, method: str, operation: dict) -> set[int]:
    """What the operation can answer with, from what it has."""
    parameters = [p for p in operation.get("parameters", []) if p["in"] in ("path", "query")]
    expected: set[int] = set()
    if path.startswith("/v1/") and operation.get("security") != []:  # an API route takes a key, looked up in PostgreSQL
        expected |= {401, 403, 429, 503}
    elif path.startswith("/v1/"):  # a signed link is the credential (one-click responses): no key, still the database
        expected |= {400, 503}
    if "requestBody" in operation:
        expected |= {400, 413, 415, 422}
    if parameters:
        expected.add(422)
    if any(p["in"] == "path" and p["name"] != "tenant_id" for p in parameters) and method != "put":
        expected.add(404)
    return expected


@pytest.mark.parametrize("service", ["ingest", "scoring"])
def test_every_api_operation_documents_its_errors_as_problems(documents, service):
    document = documents[service]
    checked = 0
    for path, method, operation in operations(document):
        if not path.startswith("/v1/"):
            continue
        documented = {int(status) for status in operation["responses"] if status[0] in "45"}
        missing = expected_errors(path, method, operation) - documented
        assert not missing, f"{method.upper()} {path} does not document {sorted(missing)}"
        for status in documented:
            response = operation["responses"][str(status)]
            if operation.get("security") == []:
                # A page people open from an e-mail: HTML for a browser, a problem for a JSON client.
                assert response["content"]["application/problem+json"] == PROBLEM_CONTENT["application/problem+json"]
                assert set(response["content"]) <= {"application/problem+json", "text/html"}, f"{method.upper()} {path}"
            else:
                assert response["content"] == PROBLEM_CONTENT, f"{method.upper()} {path} {status}"
            assert response["description"], f"{method.upper()} {path} {status} has no description"
            if status in (429, 503):
                assert "Retry-After" in response.get("headers", {}), f"{method.upper()} {path} {status}"
        checked += 1
    assert checked >= 8


@pytest.mark.parametrize("service", sorted(FACTORIES))
def test_health_routes_document_their_answers(documents, service):
    paths = documents[service]["paths"]
    live = paths["/health/live"]["get"]["responses"]
    ready = paths["/health/ready"]["get"]["responses"]
    assert [s for s in live if s[0] in "45"] == []  # nothing can fail but the process itself
    assert [s for s in ready if s[0] in "45"] == ["503"]
    # Not a problem: the same readiness report as the 200, naming the failing check.
    assert ready["503"]["content"] == ready["200"]["content"]
    assert ready["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Readiness"}


@pytest.mark.parametrize("service", sorted(FACTORIES))
def test_fastapis_validation_error_schema_is_gone(documents, service):
    text = json.dumps(documents[service])
    assert "HTTPValidationError" not in text
    assert "#/components/schemas/ValidationError" not in text


@pytest.mark.parametrize("service", ["ingest", "scoring"])
def test_the_problem_schema_describes_every_member_sent(documents, service):
    problem = documents[service]["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status"}
    members = problem["properties"]
    assert {"type", "title", "status", "detail", "instance", "errors"} <= set(members)
    assert set(members["errors"]["items"]["required"]) == {"field", "message"}
    # Extension members some problems carry.
    assert {"alertId", "requirementType", "owner", "state"} <= set(members)


def test_route_specific_descriptions_are_kept(documents):
    ingest = documents["ingest"]["paths"]
    assert ingest["/v1/tenants/{tenant_id}/alerts"]["post"]["responses"]["401"]["description"] == (
        "No valid key or webhook signature"
    )
    status = ingest["/v1/tenants/{tenant_id}/requirements/{requirement_type}/status"]["post"]["responses"]
    assert status["409"]["description"] == "The type's status is owned by its own endpoint or service"
    assert status["404"]["description"] == "Unknown requirement type"
    score = documents["scoring"]["paths"]["/v1/tenants/{tenant_id}/security-score"]["get"]["responses"]
    assert score["503"]["description"].startswith("The score cache is being rebuilt")


def test_a_status_outside_the_standard_list_is_documented_without_stopping_the_document():
    from fastapi import FastAPI

    from shared.http_openapi import document_errors

    app = FastAPI()

    @app.get("/closed", responses={499: {}, 503: {}})
    async def closed() -> dict:
        return {}

    responses = document_errors(app, app.openapi())["paths"]["/closed"]["get"]["responses"]
    assert responses["503"]["description"] != "Service Unavailable"  # the catalogue's words, not FastAPI's phrase
    assert "application/problem+json" in responses["499"]["content"]
