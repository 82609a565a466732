"""The dashboard in a real browser (Debian's chromium) against the four services as processes: it shows
what the read API says, acts through the write API, follows changes live, and shows a reader no write
control. Each view's screenshot is kept in test-artifacts/dashboard/; the overview's is the README's."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.async_api import expect

from tests.conftest import AUTH, OPERATOR_KEY
from tests.dashboard.conftest import README_IMAGE, drawn, new_key, no_page_errors, open_view, screenshot, sign_in
from tests.dashboard.seed import admin_mfa, post_alert, requirement_status
from tests.support.polling import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

VIEWS = ["overview", "response-time", "alerts", "customers", "deliveries", "connection"]
# The only buttons a reader may see: signing out, filtering, searching and paging.
READ_ONLY_BUTTONS = {"Sign out", "Apply filters", "Search", "Show", "Previous page", "Next page"}
WRITE_CONTROL = re.compile(r"acknowledge|resolve|redeliver|assign|note", re.IGNORECASE)


async def test_the_overview_shows_the_score_the_api_reports(system, seeded, page):
    read = system["scoring"].url
    key = await new_key(system, seeded.tenant_id, "adminAgent")
    await sign_in(page, read, seeded.tenant_id, key)

    async with httpx.AsyncClient(timeout=10, headers=AUTH) as http:
        score = (await http.get(f"{read}/v1/tenants/{seeded.tenant_id}/security-score")).json()
        requirements = (await http.get(f"{read}/v1/tenants/{seeded.tenant_id}/security-score/requirements")).json()
    await expect(page.locator("#current-score")).to_contain_text(f"{score['currentScore']:.2f}")
    await expect(page.locator("#projected-score")).to_contain_text(f"{score['projectedScore']:.2f}")

    # Each requirement as Partner Center shows it: type, display name, status, score of max, how to fix.
    for requirement in requirements["value"]:
        row = page.locator(f'tr[data-requirement="{requirement["requirementType"]}"]')
        await expect(row).to_contain_text(requirement["displayName"])
        await expect(row).to_contain_text(f"{requirement['score']} of {requirement['maxScore']}")
        await expect(row).to_contain_text("Mandatory" if requirement["kind"] == "mandatory" else "Recommended")
        await expect(row).to_contain_text("Compliant" if requirement["complianceStatus"] == "compliant"
                                          else "Not compliant")
        if requirement["helpUrl"]:
            await expect(row.get_by_role("link", name=re.compile("How to fix"))).to_have_attribute(
                "href", requirement["helpUrl"])
        if requirement.get("insightSummary"):
            await expect(row).to_contain_text(requirement["insightSummary"])
    assert await page.get_by_role("banner").count() == 1 and await page.get_by_role("main").count() == 1
    assert await page.get_by_role("navigation", name="Views").count() == 1
    no_page_errors(page)

    shot = await screenshot(page, "overview")
    # The README's picture changes only when asked for, so a test run leaves the checkout as it was.
    if os.environ.get("UPDATE_README_SCREENSHOT"):
        README_IMAGE.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, README_IMAGE)


async def test_every_view_draws_and_offers_its_actions(system, seeded, page):
    read = system["scoring"].url
    key = await new_key(system, seeded.tenant_id, "adminAgent")
    await sign_in(page, read, seeded.tenant_id, key)

    await open_view(page, "response-time")
    urgent = page.locator(f'tr[data-alert="{seeded.urgent_alert}"]')
    await expect(urgent).to_have_attribute("data-urgent", "true")
    await expect(urgent).to_contain_text("left")
    await expect(urgent.get_by_role("button", name=re.compile("^Acknowledge"))).to_be_visible()
    # Least time left first.
    order = await page.locator("table.open-alerts tbody tr").evaluate_all("rows => rows.map(r => r.dataset.alert)")
    assert order == [seeded.urgent_alert, seeded.fresh_alert], order
    await screenshot(page, "response-time")

    await open_view(page, "alerts")
    await expect(page.locator("table.alerts tbody tr")).to_have_count(4)
    await expect(page.locator('tr[data-alert="answered-1"]')).to_contain_text("Responded")
    await page.get_by_label("Severity").select_option("medium")
    await page.get_by_role("button", name="Apply filters").click()
    await expect(page.locator("table.alerts tbody tr")).to_have_count(1)
    await expect(page.locator(f'tr[data-alert="{seeded.fresh_alert}"]')).to_be_visible()
    await screenshot(page, "alerts")

    await page.goto(f"{read}/dashboard#/alerts/{seeded.urgent_alert}")
    await expect(page.locator("main h1")).to_have_text("Suspicious sign-in from a new country")
    await expect(page.locator("#timeline")).to_contain_text("received")
    await expect(page.get_by_role("button", name=re.compile("^Redeliver"))).to_be_visible()
    await expect(page.get_by_label("Assign to (e-mail)")).to_be_visible()
    await screenshot(page, "alert")

    await page.goto(f"{read}/dashboard#/alerts/{seeded.partner_center_alert}")
    await expect(page.locator("#sync-state")).to_contain_text("synced")
    await expect(page.locator("#alert-response")).to_contain_text("Responded")
    await screenshot(page, "alert-from-partner-center")

    await open_view(page, "customers")
    await expect(page.locator("main tbody tr")).to_have_count(2)
    # The customer's name is shown as text, never run as markup.
    await expect(page.locator('tr[data-customer="fabrikam-customer"]')).to_contain_text("Fabrikam <script>")
    await page.get_by_label("Customer name contains").fill("contoso")
    await page.get_by_role("button", name="Search").click()
    await expect(page.locator("main tbody tr")).to_have_count(1)
    await screenshot(page, "customers")

    await open_view(page, "deliveries")
    dead = page.locator(f'tr[data-delivery="{seeded.dead_delivery}"]')
    await expect(dead).to_contain_text("HTTP 503")
    await expect(dead.get_by_role("button", name=re.compile("^Redeliver"))).to_be_visible()
    await screenshot(page, "deliveries")

    await open_view(page, "connection")
    await expect(page.locator("#connection-state")).to_have_text("Working")
    await screenshot(page, "connection")
    no_page_errors(page)


async def test_a_requirement_status_updates_the_page_live(system, tenant_id, page):
    write, read = system["ingest"].url, system["scoring"].url
    async with httpx.AsyncClient(timeout=15) as http:
        await admin_mfa(http, write, tenant_id, total=4, with_mfa=3)
        await eventually(lambda: requirement_status(http, read, tenant_id, "mfaEnforcedForAdmins"),
                         lambda status: status == "noncompliant", what="the admin-MFA status on the read API")
        key = await new_key(system, tenant_id, "securityReader")
        await sign_in(page, read, tenant_id, key)
        row = page.locator('tr[data-requirement="mfaEnforcedForAdmins"]')
        await expect(row.locator(".status")).to_have_text("Not compliant")
        await expect(page.locator("#live")).to_have_attribute("data-state", "live")
        before = await page.locator("#current-score").inner_text()
        await page.evaluate("window.notReloaded = true")

        await admin_mfa(http, write, tenant_id, total=4, with_mfa=4)
        # The stream's change redraws the overview: no reload, no polling (its fallback waits 30 s).
        await expect(row.locator(".status")).to_have_text("Compliant", timeout=10_000)
        await expect(page.locator("#current-score")).not_to_have_text(before, timeout=5_000)
        assert await page.evaluate("window.notReloaded") is True
    no_page_errors(page)


async def test_the_time_left_is_read_again_each_minute_with_no_change(system, seeded, page):
    """A clock runs on its own: the open alerts' time left is read again every minute though no event
    says anything changed (the page's clock is Playwright's, moved on by a minute)."""
    await page.clock.install()
    await sign_in(page, system["scoring"].url, seeded.tenant_id, OPERATOR_KEY, view="response-time")
    await expect(page.locator("#live")).to_have_attribute("data-state", "live")
    await page.clock.run_for(1_000)  # the one refresh the stream's `ready` asks for, debounced
    await drawn(page, "response-time")
    await asyncio.sleep(1)
    reads: list[str] = []
    page.on("request", lambda request: reads.append(request.url) if "orderby=timeLeft" in request.url else None)

    await page.clock.run_for(30_000)
    await asyncio.sleep(1)
    assert reads == [], "read again before a minute passed"
    async with page.expect_request(lambda request: "orderby=timeLeft" in request.url, timeout=10_000):
        await page.clock.run_for(31_000)
    await drawn(page, "response-time")
    no_page_errors(page)


async def test_acknowledging_an_alert_from_the_page_stops_its_clock(system, tenant_id, page):
    write, read = system["ingest"].url, system["scoring"].url
    async with httpx.AsyncClient(timeout=15, headers=AUTH) as http:
        config = (await http.get(f"{read}/dashboard/config.json")).json()
        assert config["writeApiUrl"] == write, (
            f"the page would write to {config['writeApiUrl']}, not this run's write API {write}: the system fixture "
            "must start the read API with WRITE_API_PUBLIC_URL=<write API url> (and the write API with "
            "DASHBOARD_ORIGINS=<read API url>)")
        await post_alert(http, write, tenant_id, "ack-1", "Impossible travel", detected=(
            datetime.now(UTC) - timedelta(hours=3)).isoformat())
        await eventually(lambda: http.get(f"{read}/v1/tenants/{tenant_id}/alerts/ack-1"),
                         lambda answer: answer.status_code == 200, what="the alert on the read API")

        key = await new_key(system, tenant_id, "securityAdministrator")
        await sign_in(page, read, tenant_id, key, view="response-time")
        row = page.locator('tr[data-alert="ack-1"]')
        await row.get_by_role("button", name="Acknowledge Impossible travel").click()
        await expect(page.locator("#status")).to_contain_text("Acknowledged")

        async def responded():
            alert = (await http.get(f"{read}/v1/tenants/{tenant_id}/alerts/ack-1")).json()
            return alert if alert.get("respondedDateTime") else None

        alert = await eventually(responded, interval=0.2, what="the acknowledgement on the read API")
        assert 2.9 < alert["latencyHours"] < 3.5 and alert["status"] == "investigating"
        assert alert["respondedBy"].startswith("securityadministrator-"), alert["respondedBy"]

        # The open-alerts table follows, and the alert's page says it was answered and when.
        await expect(row).to_have_count(0, timeout=10_000)
        # As the alert e-mail's link opens it.
        await page.goto(f"{read}/dashboard?tenant={tenant_id}&alert=ack-1")
        await expect(page.locator("#alert-response")).to_contain_text("Responded")
        await expect(page.locator("#alert-status")).to_have_text("investigating")
    no_page_errors(page)


async def test_a_security_reader_sees_no_write_control(system, seeded, page):
    read = system["scoring"].url
    key = await new_key(system, seeded.tenant_id, "securityReader")
    await sign_in(page, read, seeded.tenant_id, key)
    await expect(page.locator("#role")).to_have_text("securityReader")
    # Keyboard: on a fresh load the first Tab reaches the skip link, and the views are links followed by keys.
    await page.reload()
    await expect(page.locator("main h1")).to_have_text("Partner Center security score")
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.textContent") == "Skip to content"
    await page.locator('nav a[data-view="alerts"]').focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("main h1")).to_have_text("Alerts")

    async def visible_controls() -> tuple[set[str], int]:
        names = set(await page.get_by_role("button").evaluate_all(
            "buttons => buttons.filter(b => b.checkVisibility()).map(b => b.textContent.trim())"))
        fields = await page.locator("textarea, input[type=email], dialog").count()
        return names, fields

    for view in VIEWS:
        await open_view(page, view)
        names, fields = await visible_controls()
        assert names <= READ_ONLY_BUTTONS, f"{view}: a reader sees {names - READ_ONLY_BUTTONS}"
        assert fields == 0, f"{view}: a reader sees a form to write"
    # The alert that has a dead delivery, open, with 2 hours left: every write control would be here.
    await page.goto(f"{read}/dashboard#/alerts/{seeded.urgent_alert}")
    await expect(page.locator("#timeline")).to_be_visible()
    names, fields = await visible_controls()
    assert names <= READ_ONLY_BUTTONS and fields == 0, names
    assert await page.get_by_role("button", name=WRITE_CONTROL).count() == 0
    await screenshot(page, "reader-alert")
    no_page_errors(page)


async def test_the_page_serves_its_own_files_and_nothing_else(system):
    read, write = system["scoring"].url, system["ingest"].url
    async with httpx.AsyncClient(base_url=read, timeout=10) as http:
        page = await http.get("/dashboard")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and f"connect-src 'self' {write}" in policy, policy
        module = await http.get("/dashboard/assets/views/overview.js")
        assert module.status_code == 200 and module.headers["content-type"].startswith("text/javascript")
        assert (await http.get("/dashboard/config.json")).json() == {"writeApiUrl": write}
        for outside in ("/dashboard/assets/%2e%2e/app.py", "/dashboard/assets/..%2f..%2fshared%2fsettings.py",
                        "/dashboard/assets/missing.js"):
            refused = await http.get(outside)
            assert refused.status_code == 404, (outside, refused.status_code)
            assert refused.headers["content-type"] == "application/problem+json"
