"""A participant's first visit, in a real browser: sign in, open the authoring dataset, see the form and guidelines.

Drives the system chromium (Debian package, /usr/bin/chromium) headless through Playwright for Python. Nothing is
downloaded: `playwright install` is not needed and must not be run. Missing chromium or playwright is a test
failure, not a skip, because CI installs both. Screenshots are kept in tests/artifacts/ (gitignored).
"""

from __future__ import annotations

import csv
import re
import uuid
from pathlib import Path

import pytest
from conftest import ARTIFACTS, REPO, Server, codigit

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

DATASET = "stories"
FIELD_TITLE = "Writing invitation"
INVITATION_TEXT = "Write a prompt and a story."
QUESTIONS = {"prompt": "Your prompt", "story": "Your story"}
GUIDELINES = REPO / "annotation" / "guidelines.md"
GUIDELINES_TITLE = "Writing with the CoDIGIT community"
PRIVACY_HEADING = "Privacy: please read"
PRIVACY_TEXT = "Do not include anything that identifies you or anyone else"

# Finite CSS transitions/animations still running (the guidelines panel slides open in 0.2 s).
ANIMATIONS_DONE = """() => document.getAnimations().every(
    a => a.playState !== "running" || a.effect?.getComputedTiming().endTime === Infinity)"""


def _playwright():
    """sync_playwright and expect, or a failure saying what to install."""
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError as e:
        pytest.fail(f"playwright is not importable ({e}); install it with: {INSTALL_HINT}", pytrace=False)
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: the browser test needs Debian's chromium; {INSTALL_HINT}", pytrace=False)
    return sync_playwright, expect


def _new_participant(server: Server, tmp_path: Path) -> dict[str, str]:
    """One fresh annotator account, made by the real `codigit participants add`; returns its logins row."""
    roster = tmp_path / "roster.csv"
    tag = uuid.uuid4().hex[:8]
    roster.write_text(f"name,email\nBrowser Tester {tag},browser-{tag}@example.org\n", encoding="utf-8")
    logins = tmp_path / "participant-logins.csv"
    result = codigit("participants", "add", str(roster), "--out", str(logins), home=server.home)
    assert result.returncode == 0, result.stderr
    with logins.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1, rows
    row = rows[0]
    assert re.fullmatch(r"p-[0-9a-f]{10}", row["username"]), row
    assert row["password"] and not row["password"].startswith("("), row
    return row


def _guideline_headings() -> list[str]:
    """The markdown headings of the guidelines file, as the UI should render them."""
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", GUIDELINES.read_text(encoding="utf-8"), flags=re.M)
    assert GUIDELINES_TITLE in headings and PRIVACY_HEADING in headings, headings
    return headings


def test_participant_signs_in_and_sees_authoring_form_and_guidelines(study_server: Server, tmp_path: Path):
    sync_playwright, expect = _playwright()
    expect.set_options(timeout=TIMEOUT_MS)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "browser-failure.png").unlink(missing_ok=True)  # only ever the last run's
    login = _new_participant(study_server, tmp_path)
    headings = _guideline_headings()
    assert login["login_url"].rstrip("/") == study_server.url, login

    with sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        except Exception as e:
            pytest.fail(f"could not start {CHROMIUM} through playwright: {e}\n{INSTALL_HINT}", pytrace=False)
        page_errors: list[str] = []
        try:
            context = browser.new_context(viewport=VIEWPORT)
            # The bundled UI asks Google Fonts for Inter; this machine is offline (and participants' browsers
            # need not be told about the study), so refuse at once rather than wait on DNS. It falls back fine.
            local = study_server.url + "/"
            context.route(lambda url: not url.startswith(local), lambda route: route.abort())
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.on("pageerror", lambda err: page_errors.append(str(err)))
            try:
                _walk_through(page, expect, login, headings)
            except BaseException:
                page.screenshot(path=ARTIFACTS / "browser-failure.png", full_page=True)
                raise
        finally:
            browser.close()
    assert not page_errors, f"uncaught errors in the page: {page_errors}"


def _walk_through(page, expect, login: dict[str, str], headings: list[str]) -> None:
    # 1. The handed-out login URL shows Argilla's sign-in form.
    page.goto(login["login_url"])
    page.wait_for_url("**/sign-in**")
    username = page.get_by_label("Username")
    password = page.get_by_label("Password")
    sign_in = page.get_by_role("button", name="Sign in")
    for element in (username, password, sign_in):
        expect(element).to_be_visible()
    expect(sign_in).to_be_disabled()  # until both fields are filled
    page.screenshot(path=ARTIFACTS / "login.png")

    # 2. Sign in through the form with the pseudonymous credentials from the logins CSV.
    username.fill(login["username"])
    password.fill(login["password"])
    expect(sign_in).to_be_enabled()
    sign_in.click()
    page.wait_for_url(lambda url: "/sign-in" not in url)
    card = page.get_by_text(DATASET, exact=True)
    expect(card).to_be_visible()
    page.screenshot(path=ARTIFACTS / "datasets.png")

    # 3. Open the authoring dataset: it lands in annotation mode on the writing invitation.
    card.click()
    page.wait_for_url(re.compile(r"/dataset/[0-9a-f-]{36}/annotation-mode"))
    expect(page.get_by_text(FIELD_TITLE, exact=True)).to_be_visible()
    expect(page.get_by_text(INVITATION_TEXT, exact=True)).to_be_visible()  # the markdown's bold opening
    form = page.get_by_role("form", name="Annotation Questions")
    expect(form).to_be_visible()
    for name, title in QUESTIONS.items():
        question = form.locator(f'[aria-label="Question: {name}"]')
        expect(question.get_by_text(re.compile(rf"^{re.escape(title)}\s*\*?$"))).to_be_visible()  # "*": required
        expect(question.get_by_role("textbox")).to_be_visible()
    expect(page.get_by_role("button", name="Submit")).to_be_visible()
    guidelines_toggle = page.get_by_role("button").filter(has_text=re.compile(r"^\s*Guidelines\s*$", re.I))
    expect(guidelines_toggle).to_have_attribute("aria-expanded", "false")
    page.screenshot(path=ARTIFACTS / "authoring-form.png")

    # 4. The guidelines panel opens below the record and renders the markdown file, privacy section included.
    guidelines_toggle.click()
    expect(guidelines_toggle).to_have_attribute("aria-expanded", "true")
    page.wait_for_function(ANIMATIONS_DONE)
    for heading in headings:
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
    expect(page.get_by_role("heading", name=GUIDELINES_TITLE, exact=True)).to_be_in_viewport()
    privacy = page.get_by_role("heading", name=PRIVACY_HEADING, exact=True)
    privacy.scroll_into_view_if_needed()
    expect(privacy).to_be_in_viewport()
    privacy_text = page.get_by_text(PRIVACY_TEXT)
    expect(privacy_text).to_be_visible()
    expect(privacy_text).to_be_in_viewport()
    expect(form).to_be_in_viewport()  # the form stays on screen beside the guidelines
    page.screenshot(path=ARTIFACTS / "guidelines.png", animations="disabled")
