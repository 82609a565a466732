"""The contact and signal endpoints against the real broker and PostgreSQL, services as processes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

import shared.catalogue
from shared.auth import Role, create_key
from tests.conftest import AUTH
from tests.support.kafka import read_topic
from tests.support.polling import eventually

CONTACT = {"name": "SOC team", "email": "soc@Example.com", "phone": "+44 20 7123 4567"}


@pytest.fixture(scope="module")
def services(system):
    """The running system of the test session: the write API (ingest) and the read API (scoring).

    The session's processes rather than this module's own, so one scoring consumer group member
    applies the status events and every test reads the score it computed.
    """
    return system


@pytest.fixture
async def http():
    async with httpx.AsyncClient(timeout=15) as client:
        yield client


def ago(hours: float) -> str:
    """A past moment, on the whole second, as the wire writes it."""
    moment = (datetime.now(UTC) - timedelta(hours=hours)).replace(microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")


def write_url(services, tenant_id: str, path: str) -> str:
    return f"{services['ingest'].url}/v1/tenants/{tenant_id}{path}"


def read_url(services, tenant_id: str, path: str) -> str:
    return f"{services['scoring'].url}/v1/tenants/{tenant_id}{path}"


async def records(bootstrap: str, topic: str, key: str, *, at_least: int = 1) -> list[dict]:
    """Every record of ``key`` on ``topic`` (waiting for at least ``at_least`` of them)."""
    found = await read_topic(
        bootstrap, topic, count=at_least, timeout=20, predicate=lambda r: r["key"] == key
    )
    assert len(found) >= at_least, f"{len(found)} records of {key} on {topic}"
    # Read once more to the end, so records published after the first ones are seen too.
    return await read_topic(bootstrap, topic, timeout=20, predicate=lambda r: r["key"] == key)


def without_envelope_ids(event: dict) -> dict:
    """The event minus its random id and publication time (checked to be present)."""
    assert event["eventId"] and event["occurredDateTime"].endswith("Z")
    return {k: v for k, v in event.items() if k not in ("eventId", "occurredDateTime")}


def status_event(
    tenant_id: str, requirement: str, status: str, observed: str, source: str, insights: dict
) -> dict:
    return {
        "eventType": "requirement-status-observed",
        "schemaVersion": 1,
        "tenantId": tenant_id,
        "requirementType": requirement,
        "complianceStatus": status,
        "observedDateTime": observed,
        "source": source,
        "insights": insights,
    }


# --- security contact -----------------------------------------------------------------------------


async def test_contact_set_read_cleared_with_events(
    services, http, tenant_id, kafka_bootstrap, topic_prefix, make_service
):
    url = write_url(services, tenant_id, "/security-contact")
    missing = await http.get(url, headers=AUTH)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"

    put = await http.put(url, json=CONTACT, headers=AUTH)
    assert put.status_code == 200, put.text
    assert {k: put.json()[k] for k in ("name", "email", "phone", "updatedBy")} == {
        "name": "SOC team",
        "email": "soc@example.com",
        "phone": "+442071234567",
        "updatedBy": "operator",
    }

    contacts = await records(kafka_bootstrap, f"{topic_prefix}security-contacts", tenant_id)
    assert [r["headers"]["eventType"] for r in contacts] == ["security-contact-changed"]
    assert without_envelope_ids(contacts[0]["value"]) == {
        "eventType": "security-contact-changed",
        "schemaVersion": 1,
        "tenantId": tenant_id,
        "contact": {"name": "SOC team", "email": "soc@example.com", "phone": "+442071234567"},
        "actor": {"type": "user", "id": "operator"},
    }
    statuses = await records(
        kafka_bootstrap, f"{topic_prefix}requirement-status", f"{tenant_id}:securityContactProvided"
    )
    set_at = statuses[0]["value"]["observedDateTime"]
    assert [without_envelope_ids(r["value"]) for r in statuses] == [
        status_event(
            tenant_id,
            "securityContactProvided",
            "compliant",
            set_at,
            "security-contact",
            {"contactProvided": True},
        )
    ]

    # The same contact again changes nothing: no event.
    assert (
        await http.put(url, json={**CONTACT, "email": "soc@example.com"}, headers=AUTH)
    ).status_code == 200

    # The contact is in PostgreSQL: a second write API process (a restart, another replica) knows it.
    replica = make_service("ingest").start()
    try:
        got = await http.get(f"{replica.url}/v1/tenants/{tenant_id}/security-contact", headers=AUTH)
        assert got.status_code == 200 and got.json()["phone"] == "+442071234567"
    finally:
        replica.stop()

    deleted = await http.delete(url, headers=AUTH)
    assert deleted.status_code == 204
    assert (await http.get(url, headers=AUTH)).status_code == 404
    assert (await http.delete(url, headers=AUTH)).status_code == 204  # already gone: still done, no event

    contacts = await records(kafka_bootstrap, f"{topic_prefix}security-contacts", tenant_id, at_least=2)
    assert len(contacts) == 2
    assert without_envelope_ids(contacts[1]["value"])["contact"] is None
    statuses = await records(
        kafka_bootstrap,
        f"{topic_prefix}requirement-status",
        f"{tenant_id}:securityContactProvided",
        at_least=2,
    )
    assert [r["value"]["complianceStatus"] for r in statuses] == ["compliant", "noncompliant"]
    assert statuses[1]["value"]["insights"] == {"contactProvided": False}


async def test_concurrent_contact_changes_the_last_committed_is_the_newest_observation(
    services, http, tenant_id, kafka_bootstrap, topic_prefix
):
    url = write_url(services, tenant_id, "/security-contact")
    rounds = 6
    for i in range(rounds):
        body = {**CONTACT, "name": f"SOC {i}"}
        answers = await asyncio.gather(
            http.put(url, json=body, headers=AUTH), http.delete(url, headers=AUTH)
        )
        assert all(a.status_code in (200, 204) for a in answers), [a.text for a in answers]
    final = await http.get(url, headers=AUTH)
    statuses = await records(
        kafka_bootstrap, f"{topic_prefix}requirement-status", f"{tenant_id}:securityContactProvided"
    )
    # Read until the last change's event is there: one event per committed change, in commit order.
    observed = [datetime.fromisoformat(r["value"]["observedDateTime"]) for r in statuses]
    assert observed == sorted(observed) and len(set(observed)) == len(observed)
    newest = max(statuses, key=lambda r: datetime.fromisoformat(r["value"]["observedDateTime"]))
    assert newest["value"]["complianceStatus"] == (
        "compliant" if final.status_code == 200 else "noncompliant"
    )
    contacts = await records(kafka_bootstrap, f"{topic_prefix}security-contacts", tenant_id)
    assert len(contacts) == len(statuses)
    assert (contacts[-1]["value"]["contact"] is None) == (final.status_code == 404)


async def test_invalid_contact_is_422_naming_each_bad_field(services, http, tenant_id):
    response = await http.put(
        write_url(services, tenant_id, "/security-contact"),
        headers=AUTH,
        json={"name": "  ", "email": "soc@", "phone": "07123 456789"},
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    errors = response.json()["errors"]
    assert sorted(e["field"] for e in errors) == ["email", "name", "phone"]
    phone = next(e for e in errors if e["field"] == "phone")
    assert "E.164" in phone["message"]
    assert (
        await http.get(write_url(services, tenant_id, "/security-contact"), headers=AUTH)
    ).status_code == 404


async def test_roles_decide_who_sets_the_contact_and_sends_signals(services, http, tenant_id, test_env):
    dsn = test_env["DATABASE_URL"]
    reader = {"Authorization": f"Bearer {await create_key(dsn, tenant_id, Role.security_reader, 'rita')}"}
    admin = {
        "Authorization": f"Bearer {await create_key(dsn, tenant_id, Role.security_administrator, 'sam')}"
    }
    contact_url = write_url(services, tenant_id, "/security-contact")

    assert (await http.put(contact_url, json=CONTACT, headers=reader)).status_code == 403
    assert (await http.put(contact_url, json=CONTACT)).status_code == 401
    put = await http.put(contact_url, json=CONTACT, headers=admin)
    assert put.status_code == 200 and put.json()["updatedBy"] == "sam"
    assert (await http.get(contact_url, headers=reader)).status_code == 200
    assert (await http.delete(contact_url, headers=reader)).status_code == 403
    # Signals are the adminAgent's; a forbidden caller hears 403 before anything about its body.
    for path in (
        "/signals/admin-mfa",
        "/signals/customer-mfa",
        "/signals/spending",
        "/requirements/mfaEnforcedForAdmins/status",
    ):
        assert (
            await http.post(write_url(services, tenant_id, path), json={}, headers=admin)
        ).status_code == 403
    other_tenant = write_url(services, f"{tenant_id}-other", "/security-contact")
    assert (await http.put(other_tenant, json=CONTACT, headers=admin)).status_code == 403


# --- admin MFA ----------------------------------------------------------------------------------


async def test_admin_mfa_report_yields_the_status_with_counts(
    services, http, tenant_id, kafka_bootstrap, topic_prefix
):
    observed = ago(1)
    report = {
        "totalAdmins": 5,
        "adminsWithMfa": 4,
        "adminsRequiredButNotUsingMfa": 1,
        "emergencyAccessAccounts": 2,
        "emergencyAccessWithMfa": 1,
        "observedDateTime": observed,
    }
    response = await http.post(
        write_url(services, tenant_id, "/signals/admin-mfa"), json=report, headers=AUTH
    )
    assert response.status_code == 202, response.text
    insights = {
        "totalAdmins": 5,
        "adminsWithMfa": 4,
        "adminsWithoutMfa": 1,
        "adminsRequiredButNotUsingMfa": 1,
        "emergencyAccessAccounts": 2,
        "emergencyAccessWithMfa": 1,
    }
    assert response.json() == {
        "requirementType": "mfaEnforcedForAdmins",
        "complianceStatus": "noncompliant",
        "observedDateTime": observed,
        "insights": insights,
        "applied": True,
    }
    found = await records(
        kafka_bootstrap, f"{topic_prefix}requirement-status", f"{tenant_id}:mfaEnforcedForAdmins"
    )
    assert [without_envelope_ids(r["value"]) for r in found] == [
        status_event(
            tenant_id, "mfaEnforcedForAdmins", "noncompliant", observed, "admin-mfa-report", insights
        )
    ]
    assert found[0]["headers"]["eventType"] == "requirement-status-observed"


@pytest.mark.parametrize(
    ("report", "field"),
    [
        ({"totalAdmins": 2, "adminsWithMfa": 3}, "adminsWithMfa"),
        ({"totalAdmins": 2, "adminsWithMfa": -1}, "adminsWithMfa"),
        (
            {"totalAdmins": 2, "adminsWithMfa": 2, "emergencyAccessAccounts": 1, "emergencyAccessWithMfa": 2},
            "emergencyAccessWithMfa",
        ),
        ({"adminsWithMfa": 2}, "totalAdmins"),
    ],
)
async def test_contradictory_admin_counts_are_422(services, http, tenant_id, report, field):
    response = await http.post(
        write_url(services, tenant_id, "/signals/admin-mfa"), json=report, headers=AUTH
    )
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == [field]


async def test_an_observation_from_the_future_is_422(services, http, tenant_id):
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    response = await http.post(
        write_url(services, tenant_id, "/signals/admin-mfa"),
        headers=AUTH,
        json={"totalAdmins": 1, "adminsWithMfa": 1, "observedDateTime": future},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "observedDateTime"


# --- customers' MFA and the search on the read API ----------------------------------------------------


def customer(cid: str, name: str, admins: int, with_mfa: int) -> dict:
    return {
        "customerTenantId": cid,
        "customerName": name,
        "admins": admins,
        "adminsWithMfa": with_mfa,
        "nonAdminsWithMfa": 3,
        "totalUsers": 10,
    }


async def test_customer_mfa_report_status_and_search(
    services, http, tenant_id, kafka_bootstrap, topic_prefix
):
    customers = [
        customer("c-contoso", "Contoso Ltd", 2, 2),
        customer("c-fabrikam", "Fabrikam", 3, 1),
        customer("c-northwind", "Northwind Traders", 1, 1),
        customer("c-contoso2", "contoso 100%", 1, 1),
    ]
    observed = ago(2)
    posted = await http.post(
        write_url(services, tenant_id, "/signals/customer-mfa"),
        headers=AUTH,
        json={"customers": customers, "observedDateTime": observed},
    )
    assert posted.status_code == 202, posted.text
    insights = {"compliantCustomersCount": 3, "totalCustomersCount": 4}
    found = await records(
        kafka_bootstrap, f"{topic_prefix}requirement-status", f"{tenant_id}:mfaEnforcedForAdminsOfCustomers"
    )
    assert [without_envelope_ids(r["value"]) for r in found] == [
        status_event(
            tenant_id,
            "mfaEnforcedForAdminsOfCustomers",
            "noncompliant",
            observed,
            "customer-mfa-report",
            insights,
        )
    ]

    search_url = read_url(services, tenant_id, "/customers/mfa")

    async def listed(**params) -> dict:
        return (await http.get(search_url, params=params, headers=AUTH)).json()

    # The read API learns the figures from the customer-mfa events: soon after the 202, not with it.
    everyone = await eventually(listed, lambda page: page.get("@odata.count") == 4, what="the report on the read API")
    assert [c["customerName"] for c in everyone["value"]] == [
        "contoso 100%",
        "Contoso Ltd",
        "Fabrikam",
        "Northwind Traders",
    ]
    assert everyone["@odata.count"] == 4 and "@odata.nextLink" not in everyone
    assert everyone["value"][2] == {
        "customerTenantId": "c-fabrikam",
        "customerName": "Fabrikam",
        "admins": 3,
        "adminsWithMfa": 1,
        "adminsWithoutMfa": 2,
        "nonAdminsWithMfa": 3,
        "totalUsers": 10,
        "compliant": False,
        "observedDateTime": observed,
    }

    contoso = (await http.get(search_url, params={"search": "CONTOSO"}, headers=AUTH)).json()
    assert [c["customerTenantId"] for c in contoso["value"]] == ["c-contoso2", "c-contoso"]
    # The search text is literal: % and _ are not wildcards.
    percent = (await http.get(search_url, params={"search": "0%"}, headers=AUTH)).json()
    assert [c["customerTenantId"] for c in percent["value"]] == ["c-contoso2"]
    assert (await http.get(search_url, params={"search": "_"}, headers=AUTH)).json()["value"] == []
    noncompliant = (await http.get(search_url, params={"compliant": "false"}, headers=AUTH)).json()
    assert [c["customerTenantId"] for c in noncompliant["value"]] == ["c-fabrikam"]

    # A NUL or other control character in the search is refused, never sent to PostgreSQL.
    for bad_search in ("Con\x00toso", "line\nbreak"):
        refused = await http.get(search_url, params={"search": bad_search}, headers=AUTH)
        assert refused.status_code == 422, refused.text
        # Named as FastAPI and the request guard name every parameter: where it is, then its name.
        assert refused.json()["errors"][0]["field"] == "query.search"
    first = (await http.get(search_url, params={"top": 3}, headers=AUTH)).json()
    # The next page's link is relative: a forged Host header never becomes its origin.
    forged = (
        await http.get(search_url, params={"top": 3}, headers={**AUTH, "Host": "evil.example"})
    ).json()
    assert forged["@odata.nextLink"].startswith(f"/v1/tenants/{tenant_id}/customers/mfa?")
    assert "evil.example" not in forged["@odata.nextLink"]
    assert len(first["value"]) == 3 and first["@odata.count"] == 4
    second = (
        await http.get(services["scoring"].url + first["@odata.nextLink"], headers=AUTH)
    ).json()
    assert [c["customerName"] for c in second["value"]] == ["Northwind Traders"]
    assert "@odata.nextLink" not in second
    bad_page = await http.get(search_url, params={"top": 0}, headers=AUTH)
    assert bad_page.status_code == 422 and bad_page.json()["errors"][0]["field"] == "query.top"
    assert (await http.get(read_url(services, f"{tenant_id}-x", "/customers/mfa"), headers=AUTH)).json() == {
        "value": [],
        "@odata.count": 0,
    }

    # A later report replaces the figures; customers it leaves out are gone. An older one changes nothing.
    later = ago(1)
    replaced = await http.post(
        write_url(services, tenant_id, "/signals/customer-mfa"),
        headers=AUTH,
        json={"customers": [customer("c-fabrikam", "Fabrikam", 3, 3)], "observedDateTime": later},
    )
    assert replaced.json()["complianceStatus"] == "compliant" and replaced.json()["applied"] is True
    stale = await http.post(
        write_url(services, tenant_id, "/signals/customer-mfa"),
        headers=AUTH,
        json={"customers": customers, "observedDateTime": observed},
    )
    assert stale.status_code == 202 and stale.json()["applied"] is False
    now_listed = await eventually(listed, lambda page: [(c["customerTenantId"], c["compliant"])
                                                        for c in page["value"]] == [("c-fabrikam", True)],
                                  what="the later report, alone, on the read API")
    assert now_listed["@odata.count"] == 1
    found = await records(
        kafka_bootstrap,
        f"{topic_prefix}requirement-status",
        f"{tenant_id}:mfaEnforcedForAdminsOfCustomers",
        at_least=2,
    )
    assert [r["value"]["observedDateTime"] for r in found] == [observed, later]


async def test_contradictory_customer_counts_are_422(services, http, tenant_id):
    response = await http.post(
        write_url(services, tenant_id, "/signals/customer-mfa"),
        headers=AUTH,
        json={"customers": [customer("a", "A", 1, 1), customer("b", "B", 2, 5)]},
    )
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["customers[1].adminsWithMfa"]


# --- spending -------------------------------------------------------------------------------------


def spending(budget_a, spend_a, *, month: str, spend_b: float = 0) -> dict:
    return {
        "month": month,
        "customers": [
            {
                "customerTenantId": "cust-a",
                "customerName": "Alpha",
                "monthlyBudget": budget_a,
                "currentMonthSpend": spend_a,
            },
            {
                "customerTenantId": "cust-b",
                "customerName": "Beta",
                "monthlyBudget": None,
                "currentMonthSpend": spend_b,
            },
        ],
    }


async def test_spending_status_and_the_80_percent_notification_once_per_month(
    services, http, tenant_id, kafka_bootstrap, topic_prefix
):
    url = write_url(services, tenant_id, "/signals/spending")

    below = await http.post(url, json=spending(1000, 799.99, month="2026-11"), headers=AUTH)
    assert below.status_code == 202, below.text
    assert below.json()["complianceStatus"] == "compliant" and below.json()["notifications"] == []

    reached = await http.post(url, json=spending(1000, 800, month="2026-11", spend_b=5), headers=AUTH)
    assert reached.json()["complianceStatus"] == "noncompliant"  # Beta has usage and no budget
    assert reached.json()["notifications"] == [{"customerTenantId": "cust-a", "month": "2026-11"}]
    for spend in (850, 990, 1200):  # still November: notified already
        again = await http.post(url, json=spending(1000, spend, month="2026-11"), headers=AUTH)
        assert again.json()["notifications"] == []
    december = await http.post(url, json=spending(1000, 900, month="2026-12"), headers=AUTH)
    assert december.json()["notifications"] == [{"customerTenantId": "cust-a", "month": "2026-12"}]

    notified = await records(
        kafka_bootstrap, f"{topic_prefix}notifications", f"{tenant_id}:cust-a", at_least=2
    )
    assert [without_envelope_ids(r["value"]) for r in notified] == [
        {
            "eventType": "spending-budget-threshold-reached",
            "schemaVersion": 1,
            "tenantId": tenant_id,
            "customerTenantId": "cust-a",
            "customerName": "Alpha",
            "month": month,
            "budget": 1000.0,
            "spend": spend,
            "thresholdPercent": 80,
        }
        for month, spend in (("2026-11", 800.0), ("2026-12", 900.0))
    ]
    assert all(r["headers"]["eventType"] == "spending-budget-threshold-reached" for r in notified)

    statuses = await records(
        kafka_bootstrap,
        f"{topic_prefix}requirement-status",
        f"{tenant_id}:spendingBudgetSetForCustomerAzureSubscriptions",
        at_least=6,
    )
    assert [r["value"]["complianceStatus"] for r in statuses] == ["compliant", "noncompliant"] + [
        "compliant"
    ] * 4
    assert statuses[1]["value"]["insights"] == {
        "month": "2026-11",
        "totalCustomersCount": 2,
        "customersWithUsageCount": 2,
        "customersWithUsageWithoutBudgetCount": 1,
        "customersAtThresholdCount": 1,
    }


async def test_concurrent_reports_notify_once(services, http, tenant_id, kafka_bootstrap, topic_prefix):
    url = write_url(services, tenant_id, "/signals/spending")
    answers = await asyncio.gather(
        *(http.post(url, json=spending(100, 95, month="2027-01"), headers=AUTH) for _ in range(6))
    )
    assert all(a.status_code == 202 for a in answers)
    assert sum(len(a.json()["notifications"]) for a in answers) == 1
    notified = await records(kafka_bootstrap, f"{topic_prefix}notifications", f"{tenant_id}:cust-a")
    assert len(notified) == 1


async def test_bad_spending_figures_are_422(services, http, tenant_id):
    response = await http.post(
        write_url(services, tenant_id, "/signals/spending"),
        headers=AUTH,
        json={
            "month": "2026-1",
            "customers": [{"customerTenantId": "a", "monthlyBudget": -1, "currentMonthSpend": -2}],
        },
    )
    assert response.status_code == 422
    assert sorted(e["field"] for e in response.json()["errors"]) == [
        "customers[0].currentMonthSpend",
        "customers[0].monthlyBudget",
        "month",
    ]


# --- any requirement ----------------------------------------------------------------------------


async def test_generic_status_and_unknown_requirement(
    services, http, tenant_id, kafka_bootstrap, topic_prefix, make_service, tmp_path
):
    # A catalogue with one requirement no source owns: the generic endpoint is its way in.
    catalogue = tmp_path / "catalogue.yaml"
    catalogue.write_text(
        Path(shared.catalogue.__file__).with_name("catalogue.yaml").read_text()
        + "  - requirementType: partnerTrainingCompleted\n    kind: recommended\n    maxScore: 5\n"
    )
    ingest = make_service("ingest", CATALOGUE_PATH=str(catalogue)).start()
    try:
        url = f"{ingest.url}/v1/tenants/{tenant_id}/requirements/partnerTrainingCompleted/status"
        observed = ago(3)
        observed_local = (
            datetime.fromisoformat(observed.replace("Z", "+00:00"))
            .astimezone(timezone(timedelta(hours=1)))
            .isoformat()
        )
        posted = await http.post(
            url,
            headers=AUTH,
            json={
                "complianceStatus": "noncomplaint",
                "source": "partner-center",
                "observedDateTime": observed_local,
                "insights": {"coursesMissing": 2},
            },
        )
        assert posted.status_code == 202, posted.text
        found = await records(
            kafka_bootstrap, f"{topic_prefix}requirement-status", f"{tenant_id}:partnerTrainingCompleted"
        )
        assert [without_envelope_ids(r["value"]) for r in found] == [
            status_event(
                tenant_id,
                "partnerTrainingCompleted",
                "noncompliant",
                observed,
                "partner-center",
                {"coursesMissing": 2},
            )
        ]
        bad = await http.post(url, headers=AUTH, json={"complianceStatus": "sometimes"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "complianceStatus"
    finally:
        ingest.stop()

    unknown = await http.post(
        write_url(services, tenant_id, "/requirements/noSuchThing/status"),
        headers=AUTH,
        json={"complianceStatus": "compliant"},
    )
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    assert "noSuchThing" in unknown.json()["detail"]


@pytest.mark.parametrize(
    "requirement, owner",
    [
        ("securityContactProvided", "/security-contact"),
        ("securityAlertsPromptlyResolved", "response-time service"),
        ("mfaEnforcedForAdmins", "/signals/admin-mfa"),
        ("mfaEnforcedForAdminsOfCustomers", "/signals/customer-mfa"),
        ("spendingBudgetSetForCustomerAzureSubscriptions", "/signals/spending"),
    ],
)
async def test_a_status_one_source_owns_is_refused_by_the_generic_endpoint(
    services, http, tenant_id, requirement, owner
):
    refused = await http.post(
        write_url(services, tenant_id, f"/requirements/{requirement}/status"),
        headers=AUTH,
        json={"complianceStatus": "compliant"},
    )
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert owner in refused.json()["detail"] and refused.json()["requirementType"] == requirement
    views = await http.get(read_url(services, tenant_id, "/security-score/requirements"), headers=AUTH)
    if views.status_code == 200:  # (503 while the read cache is rebuilt says nothing either way)
        # No status received for it (securityAlertsPromptlyResolved is compliant even so: no
        # responded alert is compliant, docs/scoring.md), so the refused one reached nothing.
        assert all(
            (v["observedDateTime"], v["source"]) == (None, None)
            for v in views.json()["value"]
            if v["requirementType"] == requirement
        )


# --- each signal moves the score on the read API ------------------------------------------------------


async def requirement_views(http, services, tenant_id: str, wanted) -> dict[str, dict]:
    """The read API's requirements by type, once ``wanted(views)`` holds (polled, with a deadline)."""
    views: dict[str, dict] = {}
    deadline = asyncio.get_running_loop().time() + 30
    while asyncio.get_running_loop().time() < deadline:
        response = await http.get(read_url(services, tenant_id, "/security-score/requirements"), headers=AUTH)
        if response.status_code == 200:
            views = {r["requirementType"]: r for r in response.json()["value"]}
            if wanted(views):
                return views
        else:
            assert response.status_code == 503, response.text  # the cache being rebuilt: ask again
        await asyncio.sleep(0.2)
    raise AssertionError(f"the read API never showed what was expected; last: {views}")


async def current_score(http, services, tenant_id: str) -> float:
    response = await http.get(read_url(services, tenant_id, "/security-score"), headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()["currentScore"]


async def test_each_signal_moves_the_score_on_the_read_api(services, http, tenant_id):
    def compliant(*types: str):
        return lambda views: all(views.get(t, {}).get("complianceStatus") == "compliant" for t in types)

    def write(path: str) -> str:
        return write_url(services, tenant_id, path)

    # A tenant that never sent an alert: no responded alert in the window is compliant (SPEC §3). The
    # response-time service publishes nothing for it, and the score agrees with /response-time anyway.
    figures = await http.get(read_url(services, tenant_id, "/response-time"), headers=AUTH)
    assert figures.status_code == 200, figures.text
    assert figures.json()["compliant"] is True and figures.json()["respondedCount"] == 0
    views = await requirement_views(http, services, tenant_id, lambda v: bool(v))
    prompt = views["securityAlertsPromptlyResolved"]
    assert (prompt["complianceStatus"], prompt["source"]) == ("compliant", None)
    assert prompt["score"] == prompt["maxScore"] > 0
    total = sum(v["maxScore"] for v in views.values() if v["state"] == "active")
    assert await current_score(http, services, tenant_id) == pytest.approx(100 * prompt["maxScore"] / total)

    signals = [
        ("securityContactProvided", "put", "/security-contact", CONTACT),
        ("mfaEnforcedForAdmins", "post", "/signals/admin-mfa", {"totalAdmins": 2, "adminsWithMfa": 2}),
        (
            "mfaEnforcedForAdminsOfCustomers",
            "post",
            "/signals/customer-mfa",
            {"customers": [customer("c1", "One", 1, 1)]},
        ),
        (
            "spendingBudgetSetForCustomerAzureSubscriptions",
            "post",
            "/signals/spending",
            {"customers": [{"customerTenantId": "c1", "monthlyBudget": 10, "currentMonthSpend": 1}]},
        ),
    ]
    earned = prompt["maxScore"]
    for requirement, method, path, body in signals:
        response = await http.request(method.upper(), write(path), json=body, headers=AUTH)
        assert response.status_code in (200, 202), response.text
        views = await requirement_views(http, services, tenant_id, compliant(requirement))
        assert views[requirement]["score"] == views[requirement]["maxScore"] > 0
        earned += views[requirement]["maxScore"]
        # Every point counted so far, the response-time requirement's included, and no other.
        assert await current_score(http, services, tenant_id) == pytest.approx(100 * earned / total)
    # Every requirement compliant, through its real path: four signals and no alert ever answered late.
    assert earned == total
    assert await current_score(http, services, tenant_id) == 100.0
    assert all(v["complianceStatus"] == "compliant" for v in views.values())

    # And back: each noncompliant signal takes its requirement's points away.
    undo = [
        ("securityContactProvided", "delete", "/security-contact", None),
        ("mfaEnforcedForAdmins", "post", "/signals/admin-mfa", {"totalAdmins": 2, "adminsWithMfa": 1}),
        (
            "mfaEnforcedForAdminsOfCustomers",
            "post",
            "/signals/customer-mfa",
            {"customers": [customer("c1", "One", 2, 1)]},
        ),
        (
            "spendingBudgetSetForCustomerAzureSubscriptions",
            "post",
            "/signals/spending",
            {"customers": [{"customerTenantId": "c1", "monthlyBudget": None, "currentMonthSpend": 1}]},
        ),
    ]
    for requirement, method, path, body in undo:
        response = await http.request(method.upper(), write(path), json=body, headers=AUTH)
        assert response.status_code in (202, 204), response.text
        views = await requirement_views(
            http,
            services,
            tenant_id,
            lambda v, r=requirement: v.get(r, {}).get("complianceStatus") == "noncompliant",
        )
        assert views[requirement]["score"] == 0
    views = await requirement_views(http, services, tenant_id, compliant("securityAlertsPromptlyResolved"))
    remaining = views["securityAlertsPromptlyResolved"]["maxScore"]
    total = sum(v["maxScore"] for v in views.values() if v["state"] == "active")
    assert await current_score(http, services, tenant_id) == pytest.approx(100 * remaining / total)
