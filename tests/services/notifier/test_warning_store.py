"""At-risk warnings on the real PostgreSQL: a warning delivery per change of state for the worse, none
for a repeat, an older observation or a redelivered event (a database of each test's own: no
notifier process of the run picks up these deliveries)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import asyncpg
import pytest_asyncio

from services.notifier.warning_store import record_requirement_status
from shared.db import create_pool
from shared.events import RequirementStatusObserved

NOW = datetime.now(UTC)


@pytest_asyncio.fixture
async def pool(own_database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(own_database, schema="notifier")
    yield pool
    await pool.close()


def status(compliance: str, *, at_risk: bool = False, minutes_ago: float = 0, near_limit: bool = False,
           requirement: str = "securityAlertsPromptlyResolved") -> RequirementStatusObserved:
    return RequirementStatusObserved(
        tenant_id="t1", requirement_type=requirement, compliance_status=compliance, source="test",
        observed_date_time=NOW - timedelta(minutes=minutes_ago),
        insights={"atRisk": at_risk, "openCount": 1, "openAlertNearLimit": near_limit})


async def warnings_sent(pool) -> list[tuple[str, str, str]]:
    rows = await pool.fetch("SELECT subject_id, channel, payload FROM notification_deliveries WHERE kind = 'warning' "
                            "ORDER BY created_at, channel")
    return [(r["subject_id"].split(":")[2], r["channel"], json.loads(r["payload"])["reason"]) for r in rows]


async def test_a_warning_per_change_for_the_worse_to_the_contact_and_the_escalation_address(pool):
    apply = record_requirement_status
    assert await apply(pool, status("compliant", minutes_ago=30), now=NOW, escalation_email=True) == 0
    at_risk = status("compliant", at_risk=True, minutes_ago=20)
    assert await apply(pool, at_risk, now=NOW, escalation_email=True) == 2
    assert await apply(pool, at_risk, now=NOW, escalation_email=True) is None  # redelivered: applied before
    assert await apply(pool, status("compliant", at_risk=True, minutes_ago=15), now=NOW, escalation_email=True) == 0
    assert await apply(pool, status("noncompliant", at_risk=True, minutes_ago=10), now=NOW,
                       escalation_email=False) == 1
    # An observation older than the one recorded changes nothing (the topic is not ordered across keys).
    assert await apply(pool, status("compliant", minutes_ago=25), now=NOW, escalation_email=True) == 0
    assert await apply(pool, status("noncompliant", minutes_ago=5), now=NOW, escalation_email=True) == 0
    assert await warnings_sent(pool) == [
        ("at-risk", "email:contact", "at-risk"), ("at-risk", "email:escalation", "at-risk"),
        ("noncompliant", "email:contact", "noncompliant")]
    state = await pool.fetchrow("SELECT compliance_status, at_risk FROM requirement_states WHERE tenant_id = 't1'")
    assert (state["compliance_status"], state["at_risk"]) == ("noncompliant", False)


async def test_an_open_alert_nearing_24_hours_is_one_warning_per_flip(pool):
    """The row keeps the near-limit state: a warning when it turns true, none while it stays true (even
    with the requirement failing meanwhile: that is a warning of its own), one again after it was false."""
    apply = record_requirement_status
    assert await apply(pool, status("compliant", minutes_ago=30), now=NOW, escalation_email=False) == 0
    near = status("compliant", near_limit=True, minutes_ago=25)
    assert await apply(pool, near, now=NOW, escalation_email=False) == 1
    assert await apply(pool, near, now=NOW, escalation_email=False) is None  # redelivered: applied before
    assert await apply(pool, status("compliant", near_limit=True, minutes_ago=20), now=NOW,
                       escalation_email=False) == 0
    assert await apply(pool, status("noncompliant", near_limit=True, minutes_ago=15), now=NOW,
                       escalation_email=False) == 1
    state = await pool.fetchrow("SELECT near_limit FROM requirement_states WHERE tenant_id = 't1'")
    assert state["near_limit"] is True
    assert await apply(pool, status("noncompliant", minutes_ago=10), now=NOW, escalation_email=False) == 0
    assert await apply(pool, status("noncompliant", near_limit=True, minutes_ago=5), now=NOW,
                       escalation_email=False) == 1
    assert await warnings_sent(pool) == [
        ("alert-near-limit", "email:contact", "alert-near-limit"), ("noncompliant", "email:contact", "noncompliant"),
        ("alert-near-limit", "email:contact", "alert-near-limit")]


async def test_a_status_from_long_ago_is_recorded_but_warns_nobody(pool):
    """A notifier rebuilding its state from the compacted topic, or catching up after an outage."""
    assert await record_requirement_status(pool, status("noncompliant", minutes_ago=180,
                                                        requirement="mfaEnforcedForAdmins"),
                                           now=NOW, escalation_email=True) == 0
    assert await warnings_sent(pool) == []
    assert await record_requirement_status(pool, status("compliant", minutes_ago=2, requirement="mfaEnforcedForAdmins"),
                                           now=NOW, escalation_email=True) == 0
    assert await record_requirement_status(pool, status("noncompliant", minutes_ago=1,
                                                        requirement="mfaEnforcedForAdmins"),
                                           now=NOW, escalation_email=False) == 1


async def test_a_notifier_mails_one_warning_per_change_from_the_requirement_status_topic(
    tenant_id, start_notifier, publish, notifier_pool, smtp_server
):
    """The real notifier process on the real broker and SMTP server: a status change for the worse
    is one e-mail to the contact, saying why and what to do; its repeat is none."""
    from shared.events import Topic
    from tests.services.notifier.helpers import applied, set_contact
    from tests.support.polling import eventually

    start_notifier(ESCALATION_EMAIL="")
    await set_contact(publish, notifier_pool, tenant_id, "soc@partner.example")
    observed = datetime.now(UTC)
    fine = status("compliant").model_copy(update={"tenant_id": tenant_id, "observed_date_time": observed})
    risky = RequirementStatusObserved(
        tenant_id=tenant_id, requirement_type="securityAlertsPromptlyResolved", compliance_status="compliant",
        source="response-time", observed_date_time=observed + timedelta(seconds=1),
        insights={"atRisk": True, "averageResponseTimeInHours": 3.5, "projectedAverageResponseTimeInHours": 25.0,
                  "openCount": 2, "oldestOpenAgeHours": 23.0})
    again = risky.model_copy(update={"event_id": uuid4(), "observed_date_time": observed + timedelta(seconds=2)})
    for event in (fine, risky, again):
        await publish(Topic.requirement_status, event)
    await eventually(lambda: applied(notifier_pool, fine.event_id, risky.event_id, again.event_id), interval=0.2,
                     what="the three statuses applied")
    mails = await eventually(lambda: smtp_server.mail.for_tenant(tenant_id, "warning"), interval=0.2,
                             what="the warning e-mail")
    assert len(mails) == 1 and mails[0]["To"] == "soc@partner.example"
    assert mails[0]["Subject"] == "[Partner Center] At risk: Respond to security alerts within 24 hours on average"
    body = mails[0].get_body(("plain",)).get_content()
    assert "Projected, if the open alerts were answered now: 25.0 hours" in body and "Answer the open alerts" in body
