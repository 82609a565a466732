"""The dashboard in a real browser: Debian's chromium driven by Playwright (its async API, on the session's
event loop), never a downloaded browser. The page is the ``system`` fixture's read API's."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.conftest import AUTH
from tests.dashboard.seed import Seeded, seed
from tests.support.processes import REPO

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ARTIFACTS = REPO / "test-artifacts" / "dashboard"
README_IMAGE = REPO / "docs" / "images" / "dashboard.png"
# axe-core (npm, pinned in package.json), installed by `make test`: the accessibility audit's engine.
AXE = Path(__file__).with_name("node_modules") / "axe-core" / "axe.min.js"


@pytest.fixture(scope="session")
def chromium() -> str:
    """The browser's path; a missing browser fails the tests (they never skip, never download one)."""
    if not Path(CHROMIUM).is_file() or not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"no chromium at {CHROMIUM}: install Debian's chromium package (infra/scripts/infra.sh browser) "
                    "or point CHROMIUM_PATH at a chromium binary; the dashboard tests never download a browser")
    return CHROMIUM


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        yield launched
        await launched.close()


class PageErrors(list):
    """What went wrong inside the page: uncaught exceptions and console errors."""


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB", timezone_id="UTC")
    opened = await context.new_page()
    errors = PageErrors()
    opened.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    # A 4xx the page expects (no Graph connection: 404) shows as a console error "Failed to load resource":
    # answers are judged by their status instead, and any 5xx is an error.
    opened.on("console", lambda message: errors.append(f"console: {message.text}")
              if message.type == "error" and not message.text.startswith("Failed to load resource") else None)
    opened.on("response", lambda response: errors.append(f"HTTP {response.status}: {response.url}")
              if response.status >= 500 else None)
    opened.errors = errors  # type: ignore[attr-defined]
    opened.set_default_timeout(20_000)
    yield opened
    await context.close()


async def new_key(system, tenant_id: str, role: str) -> str:
    """A key of ``role`` for ``tenant_id``, made by the operator on the write API."""
    async with httpx.AsyncClient(timeout=15) as http:
        made = await http.post(f"{system['ingest'].url}/v1/keys", headers=AUTH, json={
            "tenantId": tenant_id, "role": role, "userId": f"{role.lower()}-{uuid.uuid4().hex[:6]}@partner.example"})
    assert made.status_code == 201, made.text
    return made.json()["key"]


async def sign_in(page: Page, read_url: str, tenant_id: str, key: str, view: str = "overview") -> None:
    """Sign in through the form, as a person would, and open ``view``."""
    await page.goto(f"{read_url}/dashboard#/{view}")
    await page.get_by_label("Partner tenant id").fill(tenant_id)
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("button", name="Sign out").wait_for()


async def screenshot(page: Page, view: str) -> Path:
    """Keep what ``view`` looks like: test-artifacts/dashboard/<view>.png (the whole page)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{view}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


def no_page_errors(page: Page) -> None:
    assert not page.errors, "the page reported errors:\n" + "\n".join(page.errors)  # type: ignore[attr-defined]


async def drawn(page: Page, view: str) -> None:
    """Wait until ``view`` (a route's name, "alert" for one alert's page, "sign-in") has drawn its data:
    the page marks <main> with the view and keeps it aria-busy until then."""
    await expect(page.locator(f'main[data-view="{view}"]:not([aria-busy])')).to_be_attached()
    await expect(page.locator("main h1")).not_to_have_text("Something went wrong")


async def open_view(page: Page, view: str) -> None:
    """Follow the navigation link to ``view`` and wait until it has drawn."""
    await page.locator(f'nav a[data-view="{view}"]').click()
    await drawn(page, view)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def seeded(system, test_env, graph_emulator) -> Seeded:
    """One tenant with something on every view, shared by the tests that only look."""
    return await seed(system, test_env, f"tenant-dash-{datetime.now(UTC):%H%M%S%f}", graph_emulator)


@pytest.fixture(scope="session")
def axe() -> Path:
    """axe-core's script; missing, the audit fails (never skips) and says how to get it."""
    if not AXE.is_file():
        pytest.fail(f"no axe-core at {AXE}: run make test, which installs it (npm ci --prefix tests/dashboard, "
                    "from tests/dashboard/package.json)")
    return AXE
