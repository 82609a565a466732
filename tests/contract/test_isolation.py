"""Tenant isolation, generated from both OpenAPI documents as the running services serve them.

Every operation of the write and read APIs is called by each kind of caller (one test per API and
caller, one subtest per operation):

- no key: 401;
- a key of tenant A, of each role, on tenant B's resources: 403, never a 2xx; on an operation not
  under a tenant (operator-only, such as key management): 403 too;
- both also with a malformed body: the caller is refused before the body is parsed or validated;
- the operator key: neither 401 nor 403 nor 5xx. A control: the requests of the matrix reach their
  routes, so the refusals above are about the caller, not about a malformed URL.

And each key of every tenant (tenant null) that is not an operator's (securityAdministrator,
securityReader): 403 on an operation not under a tenant (operator-only); under a tenant, what its
role allows: every read, and a write only if the role has its permission (else a 403 naming a
permission the role lacks; a read-only role's, or on a deployment-wide route, also before a
malformed body is read).

Only the health probes are public, and the one-click response pages take a signed link instead of a
key; both are named below. Nothing else is listed: a new operation is in the matrix as soon as a
service serves it, and one that is neither tenant-scoped, nor operator-only, nor named fails here.
"""

from __future__ import annotations

import httpx
import pytest

from shared.auth import ROLE_PERMISSIONS, Permission, Role
from tests.conftest import AUTH
from tests.contract.conftest import API_SERVICES, EVERY_TENANT_ROLES, Tenant
from tests.contract.openapi import Operation, minimal_instance, operations_of
from tests.support.processes import ServiceProcess

pytestmark = pytest.mark.contract

PUBLIC_OPERATIONS = frozenset({("GET", "/health/live"), ("GET", "/health/ready")})
# The signed link in the path is the credential (it names tenant, alert, action and recipient): any
# caller, with or without a key, gets a page or a refusal of the link, never 401/403 nor a 5xx.
SIGNED_LINK_OPERATIONS = frozenset({
    ("GET", "/v1/actions/{token}"), ("POST", "/v1/actions/{token}"),
    # A storm digest's bulk acknowledge link: the same, for the alerts it lists.
    ("GET", "/v1/actions/bulk/{token}"), ("POST", "/v1/actions/bulk/{token}"),
})
# About the calling key itself (who it is, what its role may do): any valid key, 401 without one.
ANY_KEY_OPERATIONS = frozenset({("GET", "/v1/me")})
# Server-sent events (the read API's live changes): an answer that never ends; its status and headers
# are what is checked.
STREAM_OPERATIONS = frozenset({("GET", "/v1/tenants/{tenant_id}/changes")})
PROBLEM_JSON = "application/problem+json"

NO_KEY = "no-key"
OPERATOR = "operator"
TENANT_A_ROLES = tuple(role.value for role in Role)
CALLERS = (NO_KEY, *TENANT_A_ROLES, OPERATOR)


def guarded_operations(service: str, documents: dict[str, dict]) -> list[Operation]:
    operations = [op for op in operations_of(service, documents[service])
                  if (op.method, op.path) not in PUBLIC_OPERATIONS | SIGNED_LINK_OPERATIONS | ANY_KEY_OPERATIONS]
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
    if (operation.method, operation.path) in STREAM_OPERATIONS:
        return opened_stream(http, operation.method, path, headers)
    return http.request(operation.method, path, params=operation.required_query(), headers=headers,
                        content=content, json=body)


def opened_stream(http: httpx.Client, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    """The answer to a stream's request: a refusal whole; an open stream's status and headers, closed."""
    with http.stream(method, path, headers=headers) as answer:
        if answer.status_code != 200:
            answer.read()
            return answer
        assert answer.headers["content-type"].startswith("text/event-stream"), answer.headers
        return httpx.Response(200, headers=answer.headers)


def check_answer(answer: httpx.Response, operation: Operation, caller: str) -> None:
    kind = "tenant-scoped" if operation.tenant_scoped else "operator-only"
    seen = f"{operation.label} ({kind}) as {caller}: {answer.status_code} {answer.text[:300]}"
    if caller == OPERATOR:
        assert answer.status_code not in (401, 403) and answer.status_code < 500, seen
        return
    expected = 401 if caller == NO_KEY else 403
    assert answer.status_code == expected, f"expected {expected}; {seen}"
    assert answer.headers.get("content-type", "").startswith(PROBLEM_JSON), seen


def check_every_tenant_answer(answer: httpx.Response, operation: Operation, role: Role) -> None:
    """What a key of every tenant with ``role`` (not an operator) may get: see the module's doc."""
    kind = "tenant-scoped" if operation.tenant_scoped else "operator-only"
    seen = f"{operation.label} ({kind}) as {role.value} of every tenant: {answer.status_code} {answer.text[:300]}"
    assert answer.status_code != 401 and answer.status_code < 500, seen
    if not operation.tenant_scoped:
        assert answer.status_code == 403, f"expected 403; {seen}"
    elif operation.method == "GET":
        assert answer.status_code != 403, f"every role may read; {seen}"
    elif ROLE_PERMISSIONS[role] == {Permission.read}:
        assert answer.status_code == 403, f"a reader may not write; {seen}"
    if answer.status_code == 403:
        assert answer.headers.get("content-type", "").startswith(PROBLEM_JSON), seen
        if operation.tenant_scoped:  # refused for its role, not for the tenant
            lacking = set(Permission) - ROLE_PERMISSIONS[role]
            detail = answer.json()["detail"]
            read_only = ROLE_PERMISSIONS[role] == {Permission.read} and f"role {role.value} may only read" in detail
            assert read_only or any(f"may not {p.value} for tenant" in detail for p in lacking), seen


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


def test_any_key_operations_tell_each_key_about_itself_and_refuse_no_key(
    system: dict[str, ServiceProcess], openapi_documents: dict[str, dict], intruder_keys: dict[str, str],
) -> None:
    served = {(op.method, op.path)
              for service in API_SERVICES for op in operations_of(service, openapi_documents[service])}
    assert served >= ANY_KEY_OPERATIONS, f"no service serves {sorted(ANY_KEY_OPERATIONS - served)}"
    url = f"{system['scoring'].url}/v1/me"
    for role in TENANT_A_ROLES:
        answer = httpx.get(url, headers={"Authorization": f"Bearer {intruder_keys[role]}"}, timeout=10)
        assert answer.status_code == 200, f"{role}: {answer.status_code} {answer.text[:300]}"
        assert answer.json()["role"] == role and answer.json()["tenantId"] is not None, answer.text
    operator = httpx.get(url, headers=AUTH, timeout=10)
    assert operator.status_code == 200 and operator.json()["tenantId"] is None, operator.text
    nobody = httpx.get(url, timeout=10)
    assert nobody.status_code == 401, nobody.text
    assert nobody.headers["content-type"].startswith(PROBLEM_JSON), nobody.headers


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


def test_signed_link_operations_refuse_a_made_up_link_to_any_caller(
    system: dict[str, ServiceProcess], openapi_documents: dict[str, dict], intruder_keys: dict[str, str]
) -> None:
    served = {(op.method, op.path) for op in operations_of("ingest", openapi_documents["ingest"])}
    assert served >= SIGNED_LINK_OPERATIONS, f"ingest no longer serves {sorted(SIGNED_LINK_OPERATIONS - served)}"
    for caller in CALLERS:
        headers = {"Accept": PROBLEM_JSON}
        if caller in intruder_keys:
            headers["Authorization"] = f"Bearer {intruder_keys[caller]}"
        elif caller == OPERATOR:
            headers.update(AUTH)
        for method, path in sorted(SIGNED_LINK_OPERATIONS):
            url = system["ingest"].url + path.replace("{token}", "not-a-link-we-signed")
            answer = httpx.request(method, url, headers=headers, timeout=10)
            seen = f"{method} {path} as {caller}: {answer.status_code} {answer.text[:300]}"
            assert answer.status_code == 400, seen
            assert answer.headers.get("content-type", "").startswith(PROBLEM_JSON), seen


@pytest.mark.parametrize("role", EVERY_TENANT_ROLES, ids=lambda role: role.value)
@pytest.mark.parametrize("service", API_SERVICES)
def test_keys_of_every_tenant_that_are_not_an_operators_get_what_their_role_allows(
    service: str,
    role: Role,
    subtests: pytest.Subtests,
    system: dict[str, ServiceProcess],
    openapi_documents: dict[str, dict],
    victim_tenant: Tenant,
    every_tenant_keys: dict[str, str],
) -> None:
    with httpx.Client(base_url=system[service].url, timeout=15) as http:
        for operation in guarded_operations(service, openapi_documents):
            with subtests.test(msg=operation.label):
                answer = call(http, operation, role.value, victim_tenant, every_tenant_keys)
                check_every_tenant_answer(answer, operation, role)
            if operation.json_body_schema is not None:
                with subtests.test(msg=f"{operation.label} with a malformed body"):
                    malformed = call(http, operation, role.value, victim_tenant, every_tenant_keys,
                                     malformed_body=True)
                    check_every_tenant_answer(malformed, operation, role)
                    # Refused for who it is, before the body is read: a read-only role anywhere, any
                    # non-operator on the deployment-wide routes (the guard's rules). A permission
                    # other than reading is each route's to check, after the body is parsed.
                    refused_early = role is Role.security_reader or not operation.path.startswith("/v1/tenants/")
                    if answer.status_code == 403 and refused_early:
                        assert malformed.status_code == 403, (
                            f"{operation.label} as {role.value} of every tenant: 403 with a valid body, "
                            f"{malformed.status_code} with a malformed one: {malformed.text[:300]}")
