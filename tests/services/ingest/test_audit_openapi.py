"""The write API documents what the audit log, the key and the channel routes answer (no I/O: the app's
OpenAPI document only), and no answer but a key's creation can carry a key, and none but a webhook
secret's rotation a secret."""

from __future__ import annotations

import pytest

from services.ingest.app import create_app


@pytest.fixture(scope="module")
def document(monkeypatch_module) -> dict:
    return create_app().openapi()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ENVIRONMENT", "development")
        yield patch


def success_schema(document: dict, path: str, method: str) -> dict | None:
    """The schema of the operation's first success answer with a body, if it is a named one."""
    responses = document["paths"][path][method]["responses"]
    bodies = [r["content"]["application/json"]["schema"] for status, r in sorted(responses.items())
              if status.startswith("2") and "application/json" in r.get("content", {})]
    if not bodies or "$ref" not in bodies[0]:
        return None
    return document["components"]["schemas"][bodies[0]["$ref"].rsplit("/", 1)[1]]


def properties(document: dict, schema: dict) -> dict:
    """Every property of ``schema`` and of the schemas it refers to (one level of lists)."""
    found = dict(schema.get("properties", {}))
    for prop in list(found.values()):
        target = prop.get("items", prop)
        for option in [target, *target.get("anyOf", [])]:
            if "$ref" in option:
                found |= document["components"]["schemas"][option["$ref"].rsplit("/", 1)[1]].get("properties", {})
    return found


@pytest.mark.parametrize(("path", "method", "fields"), [
    ("/v1/tenants/{tenant_id}/audit", "get",
     {"value", "@odata.nextLink", "userId", "keyId", "action", "target", "changes", "occurredDateTime"}),
    ("/v1/audit", "get", {"value", "@odata.nextLink", "userId", "keyId", "action"}),
    ("/v1/keys", "post", {"keyId", "key", "expiresDateTime", "lastUsedDateTime", "ratePerSecond", "rateBurst"}),
    ("/v1/keys", "get", {"value", "@odata.nextLink", "keyId", "lastUsedDateTime"}),
    ("/v1/keys/{key_id}", "get", {"keyId", "revokedDateTime"}),
    ("/v1/tenants/{tenant_id}/channels/{name}", "put", {"kind", "url", "routes", "secretConfigured"}),
    ("/v1/tenants/{tenant_id}/channels/{name}", "get", {"url", "routes", "previousSecretValidUntil"}),
    ("/v1/tenants/{tenant_id}/channels", "get", {"value", "kind", "url", "routes"}),
])
def test_each_route_documents_its_answer_with_descriptions(document, path, method, fields):
    operation = document["paths"][path][method]
    assert operation["summary"]
    schema = success_schema(document, path, method)
    assert schema is not None, "no named schema for the answer"
    found = properties(document, schema)
    assert fields <= set(found), sorted(fields - set(found))
    # What is not obvious from its name is described.
    for name in fields & {"userId", "keyId", "action", "changes", "key", "lastUsedDateTime", "ratePerSecond"}:
        assert found[name].get("description"), name


def test_only_a_key_creation_answers_with_a_key_and_only_a_webhook_secret_rotation_with_a_secret(document):
    checked = 0
    for path, item in document["paths"].items():
        for method in item:
            if (schema := success_schema(document, path, method)) is None:
                continue
            checked += 1
            found = properties(document, schema)
            assert "keyDigest" not in found, (method, path)
            # A new webhook secret is shown once, in the rotation's answer (Cache-Control: no-store).
            assert ("secret" in found) == ((path, method) == ("/v1/tenants/{tenant_id}/webhook-secrets", "post")), (
                method, path)
            assert ("key" in found) == ((path, method) == ("/v1/keys", "post")), (method, path)
    assert checked >= 8
