"""Reading the services' OpenAPI documents: their operations, and a minimal valid value of a schema."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
TENANT_PREFIX = "/v1/tenants/{tenant_id}/"


@dataclass(frozen=True)
class Operation:
    service: str
    method: str  # upper case
    path: str  # the template, e.g. /v1/tenants/{tenant_id}/alerts/{alert_id}
    spec: dict[str, Any]  # the OpenAPI operation object
    document: dict[str, Any]  # the whole document, to resolve its $refs

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def tenant_scoped(self) -> bool:
        return self.path.startswith(TENANT_PREFIX)

    def parameters(self, location: str) -> list[dict[str, Any]]:
        return [p for p in self.spec.get("parameters", []) if p.get("in") == location]

    @property
    def json_body_schema(self) -> dict[str, Any] | None:
        content = self.spec.get("requestBody", {}).get("content", {})
        return content["application/json"].get("schema", {}) if "application/json" in content else None

    def url_path(self, path_values: dict[str, str]) -> str:
        """The path with each parameter filled from ``path_values``, else with a minimal valid value."""
        values = {p["name"]: path_values.get(p["name"]) or str(minimal_instance(p.get("schema", {}), self.document))
                  for p in self.parameters("path")}
        return re.sub(r"\{([^}]+)\}", lambda m: values[m.group(1)], self.path)

    def required_query(self) -> dict[str, Any]:
        return {p["name"]: minimal_instance(p.get("schema", {}), self.document)
                for p in self.parameters("query") if p.get("required")}


def operations_of(service: str, document: dict[str, Any]) -> list[Operation]:
    return [Operation(service, method.upper(), path, spec, document)
            for path, item in document.get("paths", {}).items()
            for method, spec in item.items() if method in HTTP_METHODS]


def minimal_instance(schema: dict[str, Any], document: dict[str, Any]) -> Any:
    """A small value valid for ``schema``: required properties only, the first of a choice.

    Enough for the schemas these services publish (no general JSON Schema solver): a request that
    must be refused before its body is read gets a body that would pass validation anyway.
    """
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        return minimal_instance(document["components"]["schemas"][name], document)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for choice in ("anyOf", "oneOf", "allOf"):
        if choice in schema:
            options = [s for s in schema[choice] if s.get("type") != "null"] or schema[choice]
            return minimal_instance(options[0], document)
    kind = schema.get("type", "object" if "properties" in schema else None)
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: minimal_instance(properties.get(name, {}), document) for name in schema.get("required", [])}
    if kind == "array":
        return [minimal_instance(schema.get("items", {}), document) for _ in range(schema.get("minItems", 0))]
    if kind in ("integer", "number"):
        return schema.get("minimum", 0)
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    return _minimal_string(schema)


def _minimal_string(schema: dict[str, Any]) -> str:
    by_format = {"date-time": "2026-01-01T00:00:00Z", "date": "2026-01-01", "email": "contract@example.com",
                 "uri": "https://example.com/", "uuid": "00000000-0000-4000-8000-000000000000"}
    if schema.get("format") in by_format:
        return by_format[schema["format"]]
    text = "contract" + "x" * max(0, schema.get("minLength", 1) - len("contract"))
    return text[: schema.get("maxLength", len(text))]
