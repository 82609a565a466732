"""Each view of the dashboard audited by axe-core for WCAG 2.0 and 2.1, levels A and AA, in the real browser:
the sign-in form (also with its error), every view as an adminAgent (with its write controls and the
resolve dialog open), the same 320 pixels wide (WCAG's reflow width: nothing may need sideways scrolling but
a data table, which the keyboard must then reach), and an alert's page as a securityReader.

(``audit.py`` runs axe.)"""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from tests.dashboard.audit import SHOWN_TARGETS, audit, no_violations, with_axe
from tests.dashboard.conftest import drawn, new_key, no_page_errors, open_view, screenshot, sign_in
from tests.dashboard.seed import Seeded

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

VIEWS = ["overview", "response-time", "alerts", "customers", "deliveries", "connection"]
# WCAG 2.1's reflow (1.4.10): content readable 320 CSS pixels wide without scrolling in two directions.
REFLOW_WIDTH = 320


async def test_the_sign_in_form_passes_the_audit(system, page, axe):
    read = system["scoring"].url
    await with_axe(page, axe)
    await page.goto(f"{read}/dashboard")
    await drawn(page, "sign-in")
    found = await audit(page, "sign-in")
    # With its error said.
    await page.get_by_label("Partner tenant id").fill("tenant-nobody")
    await page.get_by_label("API key").fill("not-a-key")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#signin-problem")).not_to_be_empty()
    found += await audit(page, "sign-in, refused")
    await screenshot(page, "sign-in-refused")
    no_violations(found)


async def test_every_view_passes_the_audit_for_an_admin_agent(system, seeded: Seeded, page, axe):
    read = system["scoring"].url
    key = await new_key(system, seeded.tenant_id, "adminAgent")
    await with_axe(page, axe)
    await sign_in(page, read, seeded.tenant_id, key)
    await drawn(page, "overview")
    found = await audit(page, "overview")
    for view in VIEWS[1:]:
        await open_view(page, view)
        found += await audit(page, view)

    await page.goto(f"{read}/dashboard#/alerts/{seeded.urgent_alert}")
    await drawn(page, "alert")
    await expect(page.get_by_role("button", name="Redeliver", exact=False)).to_be_visible()
    found += await audit(page, "alert")
    await page.locator("#triage-heading").locator("..").get_by_role("button", name="Resolve").click()
    await expect(page.get_by_role("dialog", name="Resolve alert")).to_be_visible()
    found += await audit(page, "alert, resolve dialog")
    await page.keyboard.press("Escape")
    no_page_errors(page)
    no_violations(found)


async def sideways_overflow(page: Page, view: str) -> list[str]:
    """The elements wider than the window, outside a data table's own scrolling box (.table-wrap)."""
    wide = await page.evaluate("""() => [...document.querySelectorAll("body *")]
        .filter((e) => !e.closest(".table-wrap") && e.getBoundingClientRect().right > innerWidth + 1
                       && e.checkVisibility())
        .map((e) => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + (e.className && typeof e.className === "string"
                    ? "." + e.className.trim().split(/\\s+/).join(".") : ""))""")
    if not wide:
        return []
    return [f"{view}: 1.4.10 reflow: the page scrolls sideways {REFLOW_WIDTH} px wide, past the window: "
            f"{', '.join(wide[:SHOWN_TARGETS])}" + (f" (+{len(wide) - SHOWN_TARGETS} more)" if len(wide) > SHOWN_TARGETS
                                                    else "")]


async def test_every_view_reflows_320_pixels_wide(system, seeded: Seeded, page, axe):
    read = system["scoring"].url
    key = await new_key(system, seeded.tenant_id, "adminAgent")
    await with_axe(page, axe)
    await page.set_viewport_size({"width": REFLOW_WIDTH, "height": 720})
    await sign_in(page, read, seeded.tenant_id, key)
    await drawn(page, "overview")
    found = []
    for view in VIEWS:
        await open_view(page, view)
        found += await audit(page, f"{view}, {REFLOW_WIDTH} px") + await sideways_overflow(page, view)
        if view == "customers":
            # Its table is wider than the window: it scrolls in its box, a region the keyboard reaches.
            box = page.get_by_role("region", name="Customers and their admins' MFA")
            await expect(box).to_have_attribute("tabindex", "0")
            await screenshot(page, f"customers-{REFLOW_WIDTH}px")
    await page.goto(f"{read}/dashboard#/alerts/{seeded.urgent_alert}")
    await drawn(page, "alert")
    found += await audit(page, f"alert, {REFLOW_WIDTH} px") + await sideways_overflow(page, "alert")
    await screenshot(page, f"alert-{REFLOW_WIDTH}px")
    no_page_errors(page)
    no_violations(found)


async def test_an_alert_page_passes_the_audit_for_a_security_reader(system, seeded: Seeded, page, axe):
    read = system["scoring"].url
    key = await new_key(system, seeded.tenant_id, "securityReader")
    await with_axe(page, axe)
    await sign_in(page, read, seeded.tenant_id, key)
    await page.goto(f"{read}/dashboard#/alerts/{seeded.urgent_alert}")
    await drawn(page, "alert")
    found = await audit(page, "alert (securityReader)")
    no_page_errors(page)
    no_violations(found)
