"""The live score on the real broker, PostgreSQL and Redis: status events in, read API out (SPEC §4, §6)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx

from tests.conftest import AUTH
from tests.services.scoring.conftest import (
    event_applied,
    read_api,
    score_of,
    status_event,
    wait_for_score,
)
from tests.support.kafka import read_topic
from tests.support.polling import eventually

T0 = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
LINKED = {"kind", "state", "complianceStatus", "score", "maxScore", "insights", "helpUrl", "actionUrl"}


async def test_a_status_event_moves_score_requirements_and_history(
    scoring, send_status, tenant_id, kafka_bootstrap, topic_prefix
):
    await send_status(
        status_event(
            tenant_id,
            "mfaEnforcedForAdmins",
            "compliant",
            T0,
            source="admin-mfa-report",
            insights={"totalAdmins": 3, "adminsWithMfa": 3},
        )
    )
    score = await wait_for_score(scoring, tenant_id, 37.5)  # 20 + 10 (no responded alert) of 80
    assert score["maxScore"] == 100 and score["projectedScore"] == 37.5
    assert score["lastRefreshDateTime"].endswith("Z") and score["updatedDateTime"].endswith("Z")

    requirements = (await read_api(scoring, tenant_id, "/requirements")).json()["value"]
    assert len(requirements) == 5 and all(LINKED <= set(r) for r in requirements)
    mfa = next(r for r in requirements if r["requirementType"] == "mfaEnforcedForAdmins")
    assert mfa | {"updatedDateTime": None} == mfa | {
        "id": "mfaEnforcedForAdmins",
        "kind": "mandatory",
        "state": "active",
        "complianceStatus": "compliant",
        "score": 20,
        "maxScore": 20,
        "observedDateTime": "2026-11-27T06:00:00Z",
        "source": "admin-mfa-report",
        "insights": {"totalAdmins": 3, "adminsWithMfa": 3},
        "insightSummary": "3 of 3 admins have MFA",
        "updatedDateTime": None,
    }
    assert mfa["helpUrl"].startswith("https://learn.microsoft.com/")
    others = [
        r
        for r in requirements
        if r["requirementType"] not in ("mfaEnforcedForAdmins", "securityAlertsPromptlyResolved")
    ]
    assert {(r["complianceStatus"], r["score"], r["insightSummary"]) for r in others} == {("noncompliant", 0, None)}

    history = (await read_api(scoring, tenant_id, "/history")).json()["value"]
    assert [(h["score"], h["compliantRequirementsCount"], h["totalRequirementsCount"]) for h in history] == [
        (37.5, 2, 5)
    ]

    # (30 s, as the other reads of what the outbox publishes: the first record on a topic just created
    # waits for its partition's leader.)
    changes = await read_topic(
        kafka_bootstrap, f"{topic_prefix}score-changes", count=1, timeout=30,
        predicate=lambda r: r["key"] == tenant_id,
    )
    assert changes[0]["headers"]["eventType"] == "score-changed"
    assert changes[0]["value"]["currentScore"] == 37.5 and changes[0]["value"]["previousScore"] is None


async def test_a_late_older_observation_never_overwrites_a_newer_one(
    scoring, send_status, tenant_id, db_pool
):
    await send_status(
        status_event(tenant_id, "securityContactProvided", "noncompliant", T0 + timedelta(hours=1))
    )
    await eventually(
        lambda: score_of(scoring, tenant_id), lambda s: s is not None and s["lastRefreshDateTime"], within=30
    )
    late = await send_status(status_event(tenant_id, "securityContactProvided", "compliant", T0))
    await event_applied(db_pool, late)
    # A marker event after the late one, on the same key (so the same partition): once it shows, the
    # late one has been through this process too.
    marker = await send_status(
        status_event(
            tenant_id,
            "securityContactProvided",
            "noncompliant",
            T0 + timedelta(hours=2),
            insights={"marker": True},
        )
    )
    await event_applied(db_pool, marker)
    requirements = await eventually(
        lambda: read_api(scoring, tenant_id, "/requirements"),
        lambda r: any(x["insights"] == {"marker": True} for x in r.json()["value"]),
        within=30,
    )
    contact = next(
        r for r in requirements.json()["value"] if r["requirementType"] == "securityContactProvided"
    )
    assert contact["complianceStatus"] == "noncompliant"
    assert (await score_of(scoring, tenant_id))["currentScore"] == 12.5
    history = (await read_api(scoring, tenant_id, "/history")).json()["value"]
    assert [h["score"] for h in history] == [12.5]  # the late compliant status never counted


async def test_graphs_noncomplaint_spelling_is_noncompliant(scoring, send_status, tenant_id):
    await send_status(status_event(tenant_id, "mfaEnforcedForAdmins", "compliant", T0))
    await wait_for_score(scoring, tenant_id, 37.5)
    await send_status(
        status_event(tenant_id, "mfaEnforcedForAdmins", "noncomplaint", T0 + timedelta(minutes=5))
    )
    await wait_for_score(scoring, tenant_id, 12.5)
    requirements = (await read_api(scoring, tenant_id, "/requirements")).json()["value"]
    assert (
        next(r for r in requirements if r["id"] == "mfaEnforcedForAdmins")["complianceStatus"]
        == "noncompliant"
    )
    history = (await read_api(scoring, tenant_id, "/history")).json()["value"]
    assert [h["score"] for h in history] == [12.5, 37.5]  # newest first


async def test_tenants_are_kept_apart(scoring, send_status):
    first, second = f"tenant-{uuid.uuid4().hex[:10]}", f"tenant-{uuid.uuid4().hex[:10]}"
    await send_status(status_event(first, "mfaEnforcedForAdmins", "compliant", T0))
    await send_status(status_event(first, "mfaEnforcedForAdminsOfCustomers", "compliant", T0))
    await send_status(status_event(second, "securityAlertsPromptlyResolved", "noncompliant", T0))
    await wait_for_score(scoring, first, 62.5)  # the two MFA requirements and no responded alert: 50 of 80
    await wait_for_score(scoring, second, 0.0)
    first_requirements = (await read_api(scoring, first, "/requirements")).json()["value"]
    assert {r["id"] for r in first_requirements if r["complianceStatus"] == "compliant"} == {
        "mfaEnforcedForAdmins",
        "mfaEnforcedForAdminsOfCustomers",
        "securityAlertsPromptlyResolved",  # the second tenant's noncompliant status is not the first's
    }
    assert len((await read_api(scoring, second, "/history")).json()["value"]) == 1


async def test_a_tenant_never_heard_of_agrees_with_its_response_time_figures(scoring, tenant_id):
    # No alert ever: /response-time says compliant (SPEC §3), so the score counts that requirement's
    # 10 points too; every other requirement has no status yet and is noncompliant (SPEC §4).
    async with httpx.AsyncClient(timeout=10) as http:
        figures = await http.get(f"{scoring.url}/v1/tenants/{tenant_id}/response-time", headers=AUTH)
    assert figures.status_code == 200 and figures.json()["compliant"] is True
    score = (await read_api(scoring, tenant_id)).json()
    assert score == {
        "currentScore": 12.5,  # 10 of 80
        "maxScore": 100,
        "projectedScore": 12.5,
        "lastRefreshDateTime": None,
        "updatedDateTime": None,
    }
    requirements = (await read_api(scoring, tenant_id, "/requirements")).json()["value"]
    assert {r["id"]: (r["complianceStatus"], r["score"]) for r in requirements} == {
        "mfaEnforcedForAdmins": ("noncompliant", 0),
        "securityAlertsPromptlyResolved": ("compliant", 10),
        "securityContactProvided": ("noncompliant", 0),
        "spendingBudgetSetForCustomerAzureSubscriptions": ("noncompliant", 0),
        "mfaEnforcedForAdminsOfCustomers": ("noncompliant", 0),
    }
    unobserved = next(r for r in requirements if r["id"] == "securityAlertsPromptlyResolved")
    assert unobserved["observedDateTime"] is None and unobserved["source"] is None
    assert (await read_api(scoring, tenant_id, "/history")).json() == {"value": []}


async def test_the_first_history_entry_counts_the_unobserved_response_time_requirement(
    scoring, send_status, tenant_id
):
    await send_status(status_event(tenant_id, "securityContactProvided", "compliant", T0))
    await wait_for_score(scoring, tenant_id, 37.5)  # 20 + 10 (no responded alert) of 80
    history = (await read_api(scoring, tenant_id, "/history")).json()["value"]
    assert [(h["score"], h["compliantRequirementsCount"], h["totalRequirementsCount"]) for h in history] == [
        (37.5, 2, 5)
    ]


async def test_a_requirement_the_catalogue_does_not_list_is_kept_but_not_scored(
    scoring, send_status, tenant_id, db_pool
):
    unknown = await send_status(status_event(tenant_id, "allUsersMfaRegistered", "compliant", T0))
    await event_applied(db_pool, unknown)
    await send_status(status_event(tenant_id, "mfaEnforcedForAdmins", "compliant", T0))
    await wait_for_score(scoring, tenant_id, 37.5, projectedScore=37.5)
    requirements = (await read_api(scoring, tenant_id, "/requirements")).json()["value"]
    assert "allUsersMfaRegistered" not in {r["id"] for r in requirements}
    stored = await db_pool.fetchval(
        "SELECT compliance_status FROM requirement_status WHERE tenant_id = $1 AND requirement_type = $2",
        tenant_id,
        "allUsersMfaRegistered",
    )
    assert stored == "compliant"


async def test_a_redelivered_event_takes_effect_once(scoring, send_status, tenant_id, db_pool):
    event = status_event(tenant_id, "securityContactProvided", "compliant", T0)
    await send_status(event)
    await send_status(event)
    later = await send_status(status_event(tenant_id, "mfaEnforcedForAdmins", "compliant", T0))
    await event_applied(db_pool, later)
    await wait_for_score(scoring, tenant_id, 62.5)
    history = (await read_api(scoring, tenant_id, "/history")).json()["value"]
    assert [h["score"] for h in history] == [62.5, 37.5]


async def test_the_read_api_wants_a_key_of_the_tenant(scoring, tenant_id):
    async with httpx.AsyncClient(timeout=10) as http:
        anonymous = await http.get(f"{scoring.url}/v1/tenants/{tenant_id}/security-score")
        assert anonymous.status_code == 401
        assert anonymous.headers["content-type"].startswith("application/problem+json")
        bad_top = await http.get(
            f"{scoring.url}/v1/tenants/{tenant_id}/security-score/history?top=0", headers=AUTH
        )
        assert bad_top.status_code == 422 and "top" in bad_top.json()["detail"]


async def test_a_malformed_status_goes_to_the_dead_letter_topic_and_blocks_nothing(
    scoring, send_status, tenant_id, kafka_bootstrap, topic_prefix
):
    poison = await send_status(status_event(tenant_id, "mfaEnforcedForAdmins", "sortOfCompliant", T0))
    await send_status(status_event(tenant_id, "mfaEnforcedForAdmins", "compliant", T0))
    await wait_for_score(scoring, tenant_id, 37.5)
    dead = await read_topic(
        kafka_bootstrap,
        f"{topic_prefix}dead-letter",
        count=1,
        timeout=30,
        predicate=lambda r: r["headers"].get("eventId") == poison["eventId"],
    )
    assert dead[0]["headers"]["dlq.error"] == "ValidationError"
    assert "complianceStatus" in dead[0]["headers"]["dlq.reason"]


async def test_a_record_of_another_event_type_is_dead_lettered_and_blocks_nothing(
    scoring, send_status, tenant_id, kafka_bootstrap, topic_prefix
):
    stranger = await send_status(
        status_event(tenant_id, "mfaEnforcedForAdmins", "compliant", T0, eventType="requirement-retired")
    )
    await send_status(status_event(tenant_id, "mfaEnforcedForAdmins", "compliant", T0))
    await wait_for_score(scoring, tenant_id, 37.5)
    dead = await read_topic(
        kafka_bootstrap,
        f"{topic_prefix}dead-letter",
        count=1,
        timeout=30,
        predicate=lambda r: r["headers"].get("eventId") == stranger["eventId"],
    )
    assert dead[0]["headers"]["dlq.error"] == "PoisonEvent"
    assert "requirement-retired" in dead[0]["headers"]["dlq.reason"]
