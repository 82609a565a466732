"""Fixtures of the contract tests: tenants with real resources, keys of every role (of one tenant and of
every tenant), both OpenAPI documents.

Both APIs run as the ``system`` fixture's processes; everything here talks to them over HTTP, as a
partner would, and reads each service's own ``/openapi.json`` (nothing is listed by hand).
"""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import pytest_asyncio

from shared.auth import Principal, Role, create_key
from shared.catalogue import load_catalogue
from tests.conftest import AUTH
from tests.contract.openapi import operations_of
from tests.support.peers import Receiver
from tests.support.processes import ServiceProcess

# The two services with an HTTP API a partner calls; the other two serve health only.
API_SERVICES = ("ingest", "scoring")
CHANNEL_NAME = "contract-tickets"
ALERT_IDS = ("contract-alert-1", "contract-alert-2", "contract-alert-3")
# The roles a key of every tenant may have without being an operator's (adminAgent of every tenant is).
EVERY_TENANT_ROLES = tuple(role for role in Role if not Principal("every-tenant", role, None).is_operator)


@dataclass(frozen=True)
class Tenant:
    """A tenant the tests set up through the write API: contact, a channel, a few alerts, the
    deliveries the notifier made of them."""

    tenant_id: str
    alert_ids: tuple[str, ...]
    channel_name: str
    delivery_ids: tuple[str, ...]

    def path_values(self, pick: int = 0) -> dict[str, str]:
        """A real value for each path parameter the APIs take; ``pick`` chooses among several."""
        requirement_types = [r.requirement_type for r in load_catalogue().requirements]
        return {"tenant_id": self.tenant_id, "name": self.channel_name,
                "alert_id": self.alert_ids[pick % len(self.alert_ids)],
                "delivery_id": self.delivery_ids[pick % len(self.delivery_ids)],
                "requirement_type": requirement_types[pick % len(requirement_types)]}


def set_up_tenant(ingest: ServiceProcess, scoring: ServiceProcess, receiver: Receiver, prefix: str) -> Tenant:
    tenant_id = f"{prefix}-{uuid.uuid4().hex[:10]}"
    base = f"/v1/tenants/{tenant_id}"
    secret = "whsec_" + base64.b64encode(b"contract-test-secret-32-bytes!!!").decode()
    with httpx.Client(headers=AUTH, timeout=15) as http:
        contact = {"name": "Contract SOC", "email": "soc@example.com", "phone": "+44 20 7946 0000"}
        answer = http.put(f"{ingest.url}{base}/security-contact", json=contact)
        assert answer.status_code == 200, answer.text
        channel = {"url": receiver.url(f"/{tenant_id}"), "secret": secret}
        answer = http.put(f"{ingest.url}{base}/channels/{CHANNEL_NAME}", json=channel)
        assert answer.status_code in (200, 201), answer.text
        detected = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        alerts = [{"id": alert_id, "displayName": "Contract test alert", "severity": "high",
                   "alertType": "unusualActivity", "detectedDateTime": detected} for alert_id in ALERT_IDS]
        answer = http.post(f"{ingest.url}{base}/alerts", json={"value": alerts})
        assert answer.status_code == 202, answer.text
        # The read API and the notifier get there through Kafka: wait until both have the alerts, so
        # the fuzzer and the isolation matrix address resources that exist.
        deliveries: list[dict] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            listed = http.get(f"{scoring.url}{base}/alerts").json().get("value", [])
            deliveries = http.get(f"{scoring.url}{base}/deliveries").json().get("value", [])
            if len(listed) == len(ALERT_IDS) and deliveries:
                break
            time.sleep(0.3)
        assert len(listed) == len(ALERT_IDS) and deliveries, f"not on the read API after 60 s: {listed} {deliveries}"
    return Tenant(tenant_id=tenant_id, alert_ids=ALERT_IDS, channel_name=CHANNEL_NAME,
                  delivery_ids=tuple(d["id"] for d in deliveries))


@pytest.fixture(scope="session")
def fuzzed_tenant(system: dict[str, ServiceProcess], receiver: Receiver) -> Tenant:
    """The tenant the fuzzer aims at part of the time (its data is changed by the fuzzer at will)."""
    return set_up_tenant(system["ingest"], system["scoring"], receiver, "contract-fuzz")


@pytest.fixture(scope="session")
def victim_tenant(system: dict[str, ServiceProcess], receiver: Receiver) -> Tenant:
    """Tenant B of the isolation matrix: the resources other tenants' keys must not reach."""
    return set_up_tenant(system["ingest"], system["scoring"], receiver, "contract-victim")


@pytest_asyncio.fixture(scope="session")
async def intruder_keys(test_env: dict[str, str]) -> dict[str, str]:
    """Tenant A of the isolation matrix: one key of each role, by role name."""
    tenant_id = f"contract-intruder-{uuid.uuid4().hex[:10]}"
    return {role.value: await create_key(test_env["DATABASE_URL"], tenant_id, role, f"intruder-{role.value}")
            for role in Role}


@pytest_asyncio.fixture(scope="session")
async def every_tenant_keys(test_env: dict[str, str]) -> dict[str, str]:
    """Keys of every tenant (tenant null) that are not an operator's: one of each such role, by role name."""
    return {role.value: await create_key(test_env["DATABASE_URL"], None, role, f"every-tenant-{role.value}")
            for role in EVERY_TENANT_ROLES}


@pytest.fixture(scope="session")
def openapi_documents(system: dict[str, ServiceProcess]) -> dict[str, dict]:
    """Each API service's OpenAPI document, as it serves it."""
    documents = {}
    for name in API_SERVICES:
        answer = httpx.get(f"{system[name].url}/openapi.json", timeout=10)
        assert answer.status_code == 200, answer.text
        documents[name] = answer.json()
    return documents


@pytest.fixture(scope="session")
def issued_skiptokens(system: dict[str, ServiceProcess], openapi_documents: dict[str, dict],
                      fuzzed_tenant: Tenant) -> dict[str, str]:
    """A ``skiptoken`` the API issued, by operation (``GET /v1/...``), for each paged operation that
    has a second page on the fuzzed tenant: read from ``@odata.nextLink`` of a one-item page."""
    tokens = {}
    with httpx.Client(headers=AUTH, timeout=15) as http:
        for service in API_SERVICES:
            for operation in operations_of(service, openapi_documents[service]):
                if operation.method != "GET" or "skiptoken" not in {p["name"] for p in operation.parameters("query")}:
                    continue
                url = system[service].url + operation.url_path(fuzzed_tenant.path_values())
                answer = http.get(url, params={**operation.required_query(), "top": 1})
                assert answer.status_code == 200, f"{operation.label}: {answer.status_code} {answer.text[:300]}"
                if "@odata.nextLink" in answer.json():
                    tokens[operation.label] = httpx.URL(answer.json()["@odata.nextLink"]).params["skiptoken"]
    return tokens
