"""Helpers for the tests that drive Debian's Chromium through Playwright: the browser's path and flags, axe-core's
accessibility check (from npm, installed by ``tools/install-axe.sh``), the horizontal-overflow measure, and keyboard
and waiting helpers (:func:`tab_to`, :func:`wait_until`)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: axe-core's script, as tools/install-axe.sh installs it (MMADFER_AXE overrides)
AXE = Path(os.environ.get("MMADFER_AXE") or ROOT / ".venv/axe/node_modules/axe-core/axe.min.js")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-default-apps", "--disable-domain-reliability", "--metrics-recording-only",
                 "--no-pings", "--disable-features=MediaRouter,OptimizationHints,Translate"]
#: the two screen sizes every page is checked at
WIDE, PHONE = {"width": 1440, "height": 900}, {"width": 390, "height": 844}


def axe_violations(page) -> list[dict]:
    """axe-core's violations on the page as shown (its script injected through DevTools, so the page's own CSP stays
    as it is): ``[{id, help, nodes}]``, empty when it finds none. Skips without axe-core, except in CI."""
    if not AXE.is_file():
        if os.environ.get("CI"):
            raise AssertionError(f"axe-core not found at {AXE}: run tools/install-axe.sh")
        pytest.skip("axe-core is not installed (tools/install-axe.sh)")
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE.read_text(encoding="utf-8") + "\n;0")
    return page.evaluate("""async () => (await axe.run(document, {resultTypes: ['violations']})).violations
        .map(v => ({id: v.id, help: v.help, nodes: v.nodes.slice(0, 4).map(n => n.target.join(' ') + ': ' + n.failureSummary)}))""")


def overflow(page) -> int:
    """How many CSS pixels the page is wider than its viewport (0 or less: no horizontal scrolling)."""
    return page.evaluate("() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
                         " - window.innerWidth")


def check_page(page, shots: Path, name: str) -> None:
    """Zero axe-core violations and a screenshot (``shots/serve-<name>-<width>.png``) at 1440 and at 390 px wide,
    where the page must not be wider than the screen."""
    assert axe_violations(page) == [], name
    page.screenshot(path=str(shots / f"serve-{name}-1440.png"), full_page=True)
    page.set_viewport_size(PHONE)
    try:
        page.wait_for_timeout(150)  # the chart redraws on resize
        assert overflow(page) <= 0, f"{name}: {overflow(page)} px wider than the 390 px phone"
        assert axe_violations(page) == [], f"{name} at 390 px"
        page.screenshot(path=str(shots / f"serve-{name}-390.png"), full_page=True)
    finally:
        page.set_viewport_size(WIDE)


def tab_to(page, selector: str, limit: int = 60, back: bool = False) -> None:
    """Press Tab (Shift+Tab with ``back``) until the focused element matches ``selector``: keyboard only."""
    for _ in range(limit):
        if page.evaluate("s => !!document.activeElement && document.activeElement.matches(s)", selector):
            return
        page.keyboard.press("Shift+Tab" if back else "Tab")
    raise AssertionError(f"Tab never reached {selector}; focus is on "
                         + page.evaluate("() => document.activeElement.outerHTML.slice(0, 200)"))


def wait_until(page, condition, message: str, timeout_s: float = 30.0) -> None:
    """Let the page run (and Playwright deliver its events) until ``condition()`` holds."""
    for _ in range(int(timeout_s * 10)):
        if condition():
            return
        page.wait_for_timeout(100)
    raise AssertionError(message)
