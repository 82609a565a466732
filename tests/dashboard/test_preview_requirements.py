"""The overview's preview requirements, in the browser: the default catalogue has none, so this test starts a
read API of its own with a catalogue that has one (a temporary copy of shared/catalogue.yaml plus one
requirement becoming active in 45 days), on a database, topics, consumer group and Redis keys of its own:
the ``system`` fixture's services never see its events, nor it theirs."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import pytest_asyncio
import yaml
from playwright.async_api import expect

from shared.catalogue import DEFAULT_CATALOGUE_PATH
from shared.events import RequirementStatusObserved, Topic
from shared.kafka import ensure_topics, event_headers
from tests.conftest import AUTH, OPERATOR_KEY
from tests.dashboard.audit import audit, no_violations, with_axe
from tests.dashboard.conftest import drawn, no_page_errors, screenshot, sign_in
from tests.support.kafka import produce
from tests.support.polling import eventually
from tests.support.processes import ServiceProcess

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

PREVIEW = {
    "requirementType": "mfaRegisteredForAllUsers",
    "kind": "recommended",
    "maxScore": 20,
    "state": "preview",
    "displayName": "Register every user of the partner tenant for multifactor authentication",
    "description": "Every user, not only the admins, has registered a second factor.",
    "helpUrl": "https://learn.microsoft.com/entra/identity/authentication/concept-mfa-howitworks",
}


@pytest_asyncio.fixture(loop_scope="session")
async def preview_read_api(make_service, own_database, test_env, tmp_path, redis_client) -> AsyncIterator[
        tuple[ServiceProcess, str, str]]:
    """A read API whose catalogue has a preview requirement; (process, topic prefix, effectiveDateTime).
    Stopped, and its Redis keys removed, at the end."""
    effective = (datetime.now(UTC) + timedelta(days=45)).replace(hour=0, minute=0, second=0, microsecond=0)
    catalogue = yaml.safe_load(DEFAULT_CATALOGUE_PATH.read_text())
    assert not [r for r in catalogue["requirements"] if r.get("state") == "preview"], \
        "the default catalogue has a preview requirement now: this test's own one is no longer needed"
    catalogue["requirements"].append({**PREVIEW, "effectiveDateTime": effective.isoformat()})
    path = tmp_path / "catalogue.yaml"
    path.write_text(yaml.safe_dump(catalogue, sort_keys=False))

    name = uuid.uuid4().hex[:8]
    prefix = f"{test_env['KAFKA_TOPIC_PREFIX']}dash-preview-{name}-"  # under the run's: deleted with them
    await ensure_topics(test_env["KAFKA_BOOTSTRAP_SERVERS"], prefix)
    process = make_service("scoring", CATALOGUE_PATH=str(path), DATABASE_URL=own_database, KAFKA_TOPIC_PREFIX=prefix,
                           CONSUMER_GROUP=f"dash-preview-{name}", REDIS_KEY_PREFIX=f"dash-preview-{name}:")
    await asyncio.to_thread(process.start)
    try:
        yield process, prefix, effective.isoformat().replace("+00:00", "Z")
    finally:
        await asyncio.to_thread(process.stop)
        async for key in redis_client.scan_iter(match=f"{process.env['REDIS_KEY_PREFIX']}*", count=500):
            await redis_client.delete(key)


async def test_the_overview_lists_the_preview_requirements_below_with_their_dates(
        preview_read_api, tenant_id, test_env, page, axe):
    process, prefix, effective = preview_read_api
    read = process.url
    # The tenant's admins have MFA: a score of its own, which the preview requirement (no status: not
    # compliant) would lower once active.
    status = RequirementStatusObserved(tenant_id=tenant_id, requirement_type="mfaEnforcedForAdmins",
                                       compliance_status="compliant", observed_date_time=datetime.now(UTC),
                                       source="admin-mfa-report")
    await produce(test_env["KAFKA_BOOTSTRAP_SERVERS"], f"{prefix}{Topic.requirement_status.value}",
                  status.model_dump_json().encode(), key=status.kafka_key(),
                  headers={"content-type": "application/json", **event_headers(status)})
    score_path = f"/v1/tenants/{tenant_id}/security-score"
    async with httpx.AsyncClient(base_url=read, headers=AUTH, timeout=10) as http:
        async def statuses() -> dict[str, str]:
            answer = await http.get(f"{score_path}/requirements")
            return {r["requirementType"]: r["complianceStatus"] for r in answer.json()["value"]} \
                if answer.status_code == 200 else {}

        await eventually(statuses, lambda known: known.get("mfaEnforcedForAdmins") == "compliant",
                         what="the admins' MFA on this test's read API")
        score = (await http.get(score_path)).json()
        requirements = (await http.get(f"{score_path}/requirements")).json()["value"]
    preview = next(r for r in requirements if r["requirementType"] == PREVIEW["requirementType"])
    assert (preview["state"], preview["effectiveDateTime"]) == ("preview", effective), preview
    assert score["projectedScore"] != score["currentScore"], score

    await with_axe(page, axe)
    await sign_in(page, read, tenant_id, OPERATOR_KEY)
    await drawn(page, "overview")
    await expect(page.locator("#role")).to_have_text("adminAgent")
    await expect(page.locator("#current-score")).to_contain_text(f"{score['currentScore']:.2f}")
    await expect(page.locator("#projected-score")).to_contain_text(f"{score['projectedScore']:.2f}")

    active = page.get_by_role("table", name="Requirements that count toward the score")
    coming = page.get_by_role("table", name="Requirements that will count from their activation date")
    row = coming.locator(f'tr[data-requirement="{PREVIEW["requirementType"]}"]')
    await expect(row).to_contain_text(PREVIEW["displayName"])
    await expect(row).to_contain_text(PREVIEW["description"])
    await expect(row).to_contain_text(f"{preview['score']} of {PREVIEW['maxScore']}")
    await expect(row).to_contain_text("Recommended")
    activation = row.locator("time")
    await expect(activation).to_have_attribute("datetime", effective)
    day = datetime.fromisoformat(effective)
    await expect(activation).to_have_text(re.compile(rf"^{day.day} {day:%b}\w* {day.year}$"))  # en-GB: 1 Mar 2027
    await expect(row.get_by_role("link", name=f"How to fix: {PREVIEW['displayName']}")).to_have_attribute(
        "href", PREVIEW["helpUrl"])
    # Only there, and below every requirement that counts now.
    await expect(active.locator(f'tr[data-requirement="{PREVIEW["requirementType"]}"]')).to_have_count(0)
    await expect(active.locator("tbody tr")).to_have_count(len(requirements) - 1)


    async def boxes() -> tuple[dict | None, dict | None]:
        # Both rows drawn at once: a live refresh (the stream's `ready` reads the view again) may be
        # redrawing the tables at any moment, and a row being replaced has no box.
        return await active.locator("tbody tr").last.bounding_box(), await row.bounding_box()

    last_active, preview_row = await eventually(boxes, all, within=10, what="both tables drawn")
    assert preview_row["y"] > last_active["y"] + last_active["height"] - 1, (last_active, preview_row)
    await screenshot(page, "overview-preview")
    no_page_errors(page)
    no_violations(await audit(page, "overview with a preview requirement"))
