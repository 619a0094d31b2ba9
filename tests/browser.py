"""Debian's chromium (/usr/bin/chromium) through Playwright for the browser tests: headless, offline, one fresh
context per participant, a screenshot of the last page on failure, and no uncaught page error allowed.

Nothing is downloaded: `playwright install` is not needed and must not be run. Missing chromium or playwright is a
test failure, not a skip, because CI installs both. Screenshots are kept in tests/artifacts/ (gitignored).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from conftest import ARTIFACTS, Server

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
# a test that takes `viewport` runs at both sizes: participants use phones as much as computers
at_desktop_and_phone_size = pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSTALL_HINT = "apt-get install -y chromium fonts-liberation fonts-dejavu-core && .venv/bin/pip install playwright"
TIMEOUT_MS = 20_000
VIEWPORT = {"width": 1400, "height": 1000}

# Finite CSS transitions/animations still running (the guidelines panel slides open in 0.2 s).
ANIMATIONS_DONE = """() => document.getAnimations().every(
    a => a.playState !== "running" || a.effect?.getComputedTiming().endTime === Infinity)"""


def playwright_or_fail():
    """sync_playwright and expect, or a failure saying what to install."""
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError as e:
        pytest.fail(f"playwright is not importable ({e}); install it with: {INSTALL_HINT}", pytrace=False)
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: the browser test needs Debian's chromium; {INSTALL_HINT}", pytrace=False)
    return sync_playwright, expect


class Browser:
    """Headless chromium for one test: fresh contexts (one per participant) that can reach only the server."""

    def __init__(self, browser, expect, server: Server):
        self.browser, self.expect, self.server = browser, expect, server
        self.page_errors: list[str] = []
        self.third_party: list[str] = []  # requests to anywhere but the study's server: refused, and kept here
        self.page = None  # the latest page: the one a failure screenshot shows

    def new_page(self, viewport: dict[str, int] = VIEWPORT):
        context = self.browser.new_context(viewport=viewport)
        # Participants' browsers contact only the study's server (codigit drops the UI's Google Fonts import);
        # anything else is refused at once and recorded, so a test can say no page asked for it.
        local = self.server.url + "/"

        def refuse(route) -> None:
            self.third_party.append(route.request.url)
            route.abort()

        context.route(lambda url: not url.startswith(local), refuse)
        self.page = context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.page.on("pageerror", lambda err: self.page_errors.append(str(err)))
        return self.page


@contextmanager
def chromium(server: Server, failure_png: str) -> Iterator[Browser]:
    """The system chromium through playwright; on a failure, the latest page is kept as ARTIFACTS/failure_png.
    Afterwards, the test fails on any uncaught error in any of its pages."""
    sync_playwright, expect = playwright_or_fail()
    expect.set_options(timeout=TIMEOUT_MS)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / failure_png).unlink(missing_ok=True)  # only ever the last run's
    with sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        except Exception as e:
            pytest.fail(f"could not start {CHROMIUM} through playwright: {e}\n{INSTALL_HINT}", pytrace=False)
        session = Browser(browser, expect, server)
        try:
            yield session
        except BaseException:
            if session.page is not None:
                with suppress(Exception):  # a failing screenshot must not hide the failure
                    session.page.screenshot(path=ARTIFACTS / failure_png, full_page=True)
            raise
        finally:
            browser.close()
    assert not session.page_errors, f"uncaught errors in the page: {session.page_errors}"


def option_name(text: str) -> re.Pattern:
    """An option's checkbox name as Argilla's form gives it ("2 Include / Incluir", "4"), for Playwright (whose
    selectors write a pattern between slashes and do not take Python's escaped spaces)."""
    return re.compile(r"^(\d+ )?" + re.escape(text).replace("\\ ", " ").replace("/", "\\/") + "$")
