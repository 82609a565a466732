"""Tenant isolation, generated from both OpenAPI documents as the running services serve them.

Every operation of the write and read APIs is called by each kind of caller (one test per API and
caller, one subtest per operation):

- no key: 401;
- a key of tenant A, of each role, on tenant B's resources: 403, never a 2xx; on an operation not
  under a tenant (operator-only, such as key management): 403 too;
- both also with a malformed body: the caller is refused before the body is parsed or validated;
- the operator key: neither 401 nor 403 nor 5xx. A control: the requests of the matrix reach their
  routes, so the refusals above are about the caller, not about a malformed URL.

Only the health probes are public, named below. Nothing else is listed: a new operation is in the
matrix as soon as a service serves it, and one that is neither tenant-scoped, nor operator-only, nor
named public fails here.
"""

from __future__ import annotations

import httpx
import pytest

from shared.auth import Role
from tests.conftest import AUTH
from tests.contract.conftest import API_SERVICES, Tenant
from tests.contract.openapi import Operation, minimal_instance, operations_of
from tests.support.processes import ServiceProcess

pytestmark = pytest.mark.contract

PUBLIC_OPERATIONS = frozenset({("GET", "/health/live"), ("GET", "/health/ready")})
PROBLEM_JSON = "application/problem+json"

NO_KEY = "no-key"
OPERATOR = "operator"
TENANT_A_ROLES = tuple(role.value for role in Role)
CALLERS = (NO_KEY, *TENANT_A_ROLES, OPERATOR)


def guarded_operations(service: str, documents: dict[str, dict]) -> list[Operation]:
    operations = [op for op in operations_of(service, documents[service])
                  if (op.method, op.path) not in PUBLIC_OPERATIONS]
    assert operations, f"{service} serves no operation besides its health probes"
    return operations


def call(http: httpx.Client, operation: Operation, caller: str, victim: Tenant, keys: dict[str, str],
         malformed_body: bool = False) -> httpx.Response:
    """``operation`` on tenant B's real resources, as ``caller``, with a minimal valid body if it takes
    one (or a malformed one)."""
    headers = {}
    if caller in keys:
        headers["Authorization"] = f"Bearer {keys[caller]}"
    elif caller == OPERATOR:
        headers.update(AUTH)
    path = operation.url_path(victim.path_values())
    content, body = None, None
    if malformed_body:
        headers["Content-Type"] = "application/json"
        content = b'{"not json'
    elif operation.json_body_schema is not None:
        body = minimal_instance(operation.json_body_schema, operation.document)
    return http.request(operation.method, path, params=operation.required_query(), headers=headers,
                        content=content, json=body)


def check_answer(answer: httpx.Response, operation: Operation, caller: str) -> None:
    kind = "tenant-scoped" if operation.tenant_scoped else "operator-only"
    seen = f"{operation.label} ({kind}) as {caller}: {answer.status_code} {answer.text[:300]}"
    if caller == OPERATOR:
        assert answer.status_code not in (401, 403) and answer.status_code < 500, seen
        return
    expected = 401 if caller == NO_KEY else 403
    assert answer.status_code == expected, f"expected {expected}; {seen}"
    assert answer.headers.get("content-type", "").startswith(PROBLEM_JSON), seen


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("service", API_SERVICES)
def test_only_the_tenant_and_the_operator_reach_an_operation(
    service: str,
    caller: str,
    subtests: pytest.Subtests,
    system: dict[str, ServiceProcess],
    openapi_documents: dict[str, dict],
    victim_tenant: Tenant,
    intruder_keys: dict[str, str],
) -> None:
    with httpx.Client(base_url=system[service].url, timeout=15) as http:
        for operation in guarded_operations(service, openapi_documents):
            with subtests.test(msg=operation.label):
                check_answer(call(http, operation, caller, victim_tenant, intruder_keys), operation, caller)
            if caller != OPERATOR and operation.json_body_schema is not None:
                with subtests.test(msg=f"{operation.label} with a malformed body"):
                    answer = call(http, operation, caller, victim_tenant, intruder_keys, malformed_body=True)
                    check_answer(answer, operation, caller)


@pytest.mark.parametrize("service", API_SERVICES)
def test_public_operations_exist_and_answer_without_a_key(
    service: str, system: dict[str, ServiceProcess], openapi_documents: dict[str, dict]
) -> None:
    """The public list names operations the service serves (a renamed probe is not left unchecked),
    and they need no key."""
    served = {(op.method, op.path) for op in operations_of(service, openapi_documents[service])}
    assert served >= PUBLIC_OPERATIONS, f"{service} no longer serves {sorted(PUBLIC_OPERATIONS - served)}"
    for method, path in sorted(PUBLIC_OPERATIONS):
        answer = httpx.request(method, f"{system[service].url}{path}", timeout=10)
        assert answer.status_code == 200, f"{method} {path}: {answer.status_code} {answer.text[:300]}"
