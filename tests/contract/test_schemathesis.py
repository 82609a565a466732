"""Schemathesis fuzzes both running APIs from their own ``/openapi.json``, with every check it has.

Each API, or each part of the write API (it has 40-odd operations), is one test (``[ingest-alerts]``,
``[scoring]``...); each of its operations is a subtest named after it. A failure prints the check that
failed and a ``curl`` line that reproduces it.
"""

from __future__ import annotations

import os
import zlib

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.core.parameters import ParameterLocation
from schemathesis.filters import FilterSet

from tests.conftest import AUTH
from tests.contract.conftest import Tenant
from tests.support.processes import ServiceProcess

pytestmark = pytest.mark.contract

# Bounded so the contract suite stays within a few minutes on a small machine: examples per operation
# in the fuzzing phase (the examples and coverage phases add a fixed set of cases each),
# seconds per request, and each part of an API as one test under pytest-timeout (the whole write API
# as one test took 90 s alone here, and over 150 s beside the rest of the suite on a slow CI machine).
# The fuzzing is CPU-bound (hypothesis in this process, the API serving it) and the suite already keeps
# both cores busy: 30 examples, not 50, keep `make test` within its 20 minutes on a slow day.
MAX_EXAMPLES_PER_OPERATION = 30
REQUEST_TIMEOUT_SECONDS = 10
SECONDS_PER_API_PART = 150

# The parts each API is fuzzed in, by name: its service and the operation filters (schemathesis's
# `[[operations]]` keys) of what the part leaves out. Every operation is in exactly one part (see
# test_the_parts_of_each_api_hold_each_of_its_operations_once).
ALERT_PATHS = r"/alerts(/|$)|/alert-actions$"
KEY_AUDIT_ACTION_PATHS = r"^/v1/(keys|audit|actions)(/|$)|^/health/"
SIGNAL_PATHS = r"/(signals|requirements|security-contact)(/|$)"
API_PARTS: dict[str, tuple[str, tuple[dict[str, str], ...]]] = {
    "ingest-alerts": ("ingest", ({"exclude-path-regex": ALERT_PATHS},)),
    "ingest-keys-audit-actions": ("ingest", ({"exclude-path-regex": KEY_AUDIT_ACTION_PATHS},)),
    "ingest-signals-contact": ("ingest", ({"exclude-path-regex": SIGNAL_PATHS},)),
    "ingest-tenant-settings": ("ingest", tuple({"include-path-regex": paths}
                                               for paths in (ALERT_PATHS, KEY_AUDIT_ACTION_PATHS, SIGNAL_PATHS))),
    "scoring": ("scoring", ()),
}


# Operations whose bodies obey rules that JSON Schema cannot state, so a schema-valid body may still
# be refused with a 422 that names the rule (every other check still runs on them, and a 422 must
# still be a documented problem): rules across fields (MFA counts within their totals, a budget
# above zero, no alert id twice in one list, no detection or activity-log time in the future),
# rules of the world (a phone number that exists for its country code), and rules of the stored
# state or the clock (a new channel needs a secret, a key's expiry lies ahead).
RULES_NO_SCHEMA_STATES = (
    ("POST", "/v1/tenants/{tenant_id}/alerts"),
    ("PUT", "/v1/tenants/{tenant_id}/security-contact"),
    ("POST", "/v1/tenants/{tenant_id}/signals/admin-mfa"),
    ("POST", "/v1/tenants/{tenant_id}/signals/customer-mfa"),
    ("POST", "/v1/tenants/{tenant_id}/signals/spending"),
    ("PUT", "/v1/tenants/{tenant_id}/channels/{name}"),
    ("PUT", "/v1/tenants/{tenant_id}/connections/graph"),  # a certificate must parse, hold its key, be valid now
    ("PUT", "/v1/tenants/{tenant_id}/escalation-chain"),  # one recipient a step, delays that never decrease
    ("PUT", "/v1/tenants/{tenant_id}/alerts/{alert_id}/assignee"),  # an address as email_validator reads one
    ("POST", "/v1/tenants/{tenant_id}/alerts/{alert_id}/notes"),  # 1..4000 characters once trimmed, no control ones
    ("POST", "/v1/keys"),
)
ACCEPTED_OR_RULED_OUT = ["2xx", "401", "403", "404", "409", "422", "429"]
# The one-click response pages: a schema-valid token is still one this deployment never signed (400),
# or of an alert not there (404), used (409) or expired (410).
SIGNED_LINK_PATH = "/v1/actions/{token}"
SIGNED_LINK_REFUSALS = ["2xx", "400", "404", "409", "410"]
# A storm digest's bulk acknowledge link: the same refusals but 404 (an unknown alert is listed as such).
SIGNED_BULK_LINK_PATH = "/v1/actions/bulk/{token}"
SIGNED_BULK_LINK_REFUSALS = ["2xx", "400", "409", "410"]
# Bulk actions on alerts: a rule no schema states too (which fields go with the action; at most 500 alerts
# matched).
BULK_ALERTS_PATH = "/v1/tenants/{tenant_id}/alert-actions"
# Offboarding a tenant (#18) deletes it for good and refuses its writes from then on (410): the fuzzer
# only ever asks for a dry run, or the tenants it aims at (shared by every operation) would be gone.
# Real runs are tests/services/ingest/test_offboarding_api.py's.
OFFBOARDING_PATH = "/v1/tenants/{tenant_id}/offboarding"
# The read API's live stream of a tenant's changes (server-sent events, #14) never ends while its client
# listens: each valid example would wait out the request timeout, far past SECONDS_PER_API_PART. Its keys and
# tenants are checked by tests/contract/test_isolation.py, its events by tests/services/scoring/test_changes.py.
STREAM_PATH = "/v1/tenants/{tenant_id}/changes"


# A fixed seed: every run sends the same cases, so CI passes or fails on the code alone, never on the
# luck of the draw. Explore further with another seed: CONTRACT_SEED=$RANDOM make test PYTEST_ARGS="-m contract".
SEED = int(os.environ.get("CONTRACT_SEED", "20261201"))


def contract_config(base_url: str, left_out: tuple[dict[str, str], ...] = ()) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict({
        "seed": SEED,
        "base-url": base_url,
        "headers": dict(AUTH),
        "request-timeout": REQUEST_TIMEOUT_SECONDS,
        "generation": {
            "max-examples": MAX_EXAMPLES_PER_OPERATION,
            # No example database: nothing is written into the checkout; a failure prints its reproduction.
            "database": "none",
        },
        "operations": [
            # The operations of other parts: turned off (they match none of this part's, so the entries
            # below still apply to those).
            *({**filters, "enabled": False} for filters in left_out),
            # First: an operation takes the first entry that matches it (and an entry's method and path
            # filters are not both required), so this one, by path alone, must come before the POSTs'.
            {
                "include-path": SIGNED_LINK_PATH,
                "checks": {"positive_data_acceptance": {"expected-statuses": SIGNED_LINK_REFUSALS}},
            },
            {
                "include-path": SIGNED_BULK_LINK_PATH,
                "checks": {"positive_data_acceptance": {"expected-statuses": SIGNED_BULK_LINK_REFUSALS}},
            },
            {
                "include-method": "POST",
                "include-path": BULK_ALERTS_PATH,
                "checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED_OR_RULED_OUT}},
            },
            {
                # `insights` is free-form JSON, stored as PostgreSQL jsonb, which cannot hold U+0000: the
                # API refuses NUL anywhere in it with a 422, a rule no JSON Schema can state of every
                # nested key and string. So valid requests carry no NUL here (invalid ones are still
                # sent, and every other check still runs on this operation).
                "include-method": "POST",
                "include-path": "/v1/tenants/{tenant_id}/requirements/{requirement_type}/status",
                "generation": {"allow-x00": False},
            },
            *(
                {
                    "include-method": method,
                    "include-path": path,
                    "checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED_OR_RULED_OUT}},
                }
                for method, path in RULES_NO_SCHEMA_STATES
            ),
        ],
    })


@pytest.fixture(params=list(API_PARTS))
def api_schema(request: pytest.FixtureRequest, system: dict[str, ServiceProcess]):
    service_name, left_out = API_PARTS[request.param]
    service = system[service_name]
    return schemathesis.openapi.from_url(f"{service.url}/openapi.json", config=contract_config(service.url, left_out))


schema = schemathesis.pytest.from_fixture("api_schema").exclude(path=STREAM_PATH)


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    # schemathesis 4.32 (pytest/lazy.py) reads and writes the private ``Node._nodeid``, which pytest 9.2
    # replaced by a structured id (pytest-dev/pytest#14758); it only renames the test in reports.
    # Drop this once schemathesis reads the public ``nodeid``.
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


def with_issued_skiptoken(case: schemathesis.Case, issued: dict[str, str]) -> None:
    """A valid request's ``skiptoken`` is one the API issued: it is opaque, and no schema can say
    which strings are tokens. So a generated one in an otherwise valid query becomes an issued one
    (or goes, if the operation had no second page to issue one for). Invalid queries keep theirs:
    made-up tokens are still sent, and must be refused with a 4xx."""
    if "skiptoken" not in case.query or case.meta is None or case.meta.is_negative_at(ParameterLocation.QUERY):
        return
    query = {name: value for name, value in case.query.items() if name != "skiptoken"}
    if case.operation.label in issued:
        query["skiptoken"] = issued[case.operation.label]
    case.query = query


def only_a_dry_run(case: schemathesis.Case) -> None:
    """An offboarding's body that asks for the real thing asks for a dry run instead (see OFFBOARDING_PATH);
    every other part of the case, valid or not, stays as generated."""
    if case.operation.path == OFFBOARDING_PATH and isinstance(case.body, dict) and case.body.get("dryRun") is False:
        case.body = {**case.body, "dryRun": True}


def aim_at(case: schemathesis.Case, tenant: Tenant) -> None:
    """Half of the cases address the set-up tenant and its real alerts, channel, deliveries and
    requirements, rather than generated names that exist nowhere (answered 200 with nothing, or 404).

    The half is chosen by a checksum of the generated tenant id, so a case replays the same way.
    Only valid path parameters are replaced: a case meant to be invalid there stays invalid.
    """
    params = case.path_parameters
    if "tenant_id" not in params or case.meta is None or case.meta.is_negative_at(ParameterLocation.PATH):
        return
    choice = zlib.crc32(str(params["tenant_id"]).encode())
    if choice % 2:
        return
    real = tenant.path_values(pick=choice // 2)
    case.path_parameters = {name: real.get(name, value) for name, value in params.items()}


@schema.parametrize()
@pytest.mark.timeout(SECONDS_PER_API_PART)
def test_api_keeps_its_contract(
    case: schemathesis.Case, fuzzed_tenant: Tenant, issued_skiptokens: dict[str, str]
) -> None:
    aim_at(case, fuzzed_tenant)
    only_a_dry_run(case)
    with_issued_skiptoken(case, issued_skiptokens)
    case.call_and_validate()


def operations_run(document: dict, left_out: tuple[dict[str, str], ...]) -> list[str]:
    """The labels of the operations a part's test runs: its config's filters applied as
    ``schemathesis.pytest.from_fixture`` applies them (schemathesis 4.32, pytest/lazy.py ``get_schema``)."""
    schema = schemathesis.openapi.from_dict(document, config=contract_config("http://127.0.0.1", left_out))
    schema = schema.clone(filter_set=schema.config.operations.filter_set_with(include=FilterSet()))
    return sorted(result.ok().label for result in schema.get_all_operations())


def test_the_parts_of_each_api_hold_each_of_its_operations_once(openapi_documents: dict[str, dict]) -> None:
    for service_name, document in openapi_documents.items():
        parts = {part: operations_run(document, left_out)
                 for part, (name, left_out) in API_PARTS.items() if name == service_name}
        assert all(parts.values()), f"a part of {service_name} with no operation: {parts}"
        assert sorted(label for labels in parts.values() for label in labels) == operations_run(document, ()), parts
