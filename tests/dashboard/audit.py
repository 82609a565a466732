"""axe-core's audit of the page on screen for WCAG 2.0 and 2.1, levels A and AA, as readable lines.

axe is put into the page as an init script (``with_axe``): the browser runs it in each document before the
page's own modules, outside the page's Content-Security-Policy (``script-src 'self'``), which stays as served."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.async_api import Page

WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
SHOWN_TARGETS = 3


def described(view: str, violations: list[dict[str, Any]]) -> list[str]:
    """One line per violated rule: its id, impact, what it asks, and where (the first few elements)."""
    lines = []
    for violation in violations:
        targets = [" ".join(map(str, node["target"])) for node in violation["nodes"]]
        more = f" (+{len(targets) - SHOWN_TARGETS} more)" if len(targets) > SHOWN_TARGETS else ""
        lines.append(f"{view}: {violation['id']} [{violation['impact']}] {violation['help']}: "
                     f"{', '.join(targets[:SHOWN_TARGETS])}{more}")
    return lines


async def audit(page: Page, view: str) -> list[str]:
    """axe's WCAG 2 A/AA rules on the page as it is now; the violations, described."""
    # After two frames: laid out, and the layout's observers (a table's scrolling box) have run.
    results = await page.evaluate("""async (tags) => {
        await new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));
        return axe.run(document, {runOnly: {type: "tag", values: tags}, resultTypes: ["violations"]});
    }""", WCAG_TAGS)
    assert results["passes"], f"{view}: axe checked nothing (was the page drawn?)"
    return described(view, results["violations"])


async def with_axe(page: Page, axe: Path) -> Page:
    """``page`` with axe in each document it loads from now on (``axe``: the fixture's path)."""
    await page.add_init_script(path=str(axe))
    return page


def no_violations(found: list[str]) -> None:
    assert not found, f"{len(found)} WCAG 2 A/AA violation(s):\n" + "\n".join(found)
