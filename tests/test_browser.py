"""Participants in a real browser: a first visit (sign in, see the authoring form and guidelines), and a story's way
from the authoring form through `codigit review open` to a peer's review, checked in what `codigit collect` stores.

Drives the system chromium (Debian package, /usr/bin/chromium) headless through Playwright for Python. Nothing is
downloaded: `playwright install` is not needed and must not be run. Missing chromium or playwright is a test
failure, not a skip, because CI installs both. Screenshots are kept in tests/artifacts/ (gitignored).
"""

from __future__ import annotations

import csv
import json
import re
import uuid
from pathlib import Path

import pytest
from browser import ANIMATIONS_DONE, option_name, playwright_or_fail
from browser import chromium as open_chromium
from conftest import ARTIFACTS, REPO, STUDY, Participant, Server, codigit, login, own_study_server

from codigit.languages import shared_review_form
from codigit.study import load_study

pytestmark = pytest.mark.slow  # a real chromium against the server

DATASET = "stories"
WORDS = load_study(STUDY).participant_words()
FIELD_TITLE = "Writing invitation"
QUESTIONS = {"prompt": "Your prompt", "story": "Your story"}
GUIDELINES = REPO / "annotation" / "guidelines.md"
GUIDELINES_TITLE = "Writing with the CoDIGIT community"
PRIVACY_HEADING = "Privacy: please read"
PRIVACY_TEXT = "Do not include anything that identifies you or anyone else"


def _new_participants(server: Server, tmp_path: Path, n: int = 1) -> list[dict[str, str]]:
    """Fresh annotator accounts, made by one real `codigit participants add`; returns their logins rows."""
    roster = tmp_path / "roster.csv"
    tags = [uuid.uuid4().hex[:8] for _ in range(n)]
    roster.write_text(
        "name,email\n" + "".join(f"Browser Tester {t},browser-{t}@example.org\n" for t in tags), encoding="utf-8"
    )
    logins = tmp_path / "participant-logins.csv"
    result = codigit("participants", "add", str(roster), "--out", str(logins), home=server.home)
    assert result.returncode == 0, result.stderr
    with logins.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == n, rows
    for row in rows:
        assert re.fullmatch(r"p-[0-9a-f]{10}", row["username"]), row
        assert row["password"] and not row["password"].startswith("("), row
        assert row["login_url"].rstrip("/") == server.url, row
    return rows


def _new_participant(server: Server, tmp_path: Path) -> dict[str, str]:
    """One fresh annotator account, made by the real `codigit participants add`; returns its logins row."""
    return _new_participants(server, tmp_path)[0]


def _guideline_headings() -> list[str]:
    """The markdown headings of the guidelines file, as the UI should render them."""
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", GUIDELINES.read_text(encoding="utf-8"), flags=re.M)
    assert GUIDELINES_TITLE in headings and PRIVACY_HEADING in headings, headings
    return headings


def test_participant_signs_in_and_sees_authoring_form_and_guidelines(study_server: Server, tmp_path: Path):
    playwright_or_fail()  # fail at once, before any setup, when the browser is missing
    login = _new_participant(study_server, tmp_path)
    headings = _guideline_headings()
    with open_chromium(study_server, "browser-failure.png") as chromium:
        _walk_through(chromium.new_page(), chromium.expect, login, headings)


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
    page.wait_for_url(re.compile(r"/study/$"))  # participants land on the study home
    card = page.get_by_role("link", name=WORDS["stories_write"])
    expect(card).to_be_visible()
    page.screenshot(path=ARTIFACTS / "study-home.png")

    # 3. Open the authoring form from the study home: it lands in annotation mode on the writing invitation.
    card.click()
    page.wait_for_url(re.compile(r"/dataset/[0-9a-f-]{36}/annotation-mode"))
    expect(page.get_by_text(FIELD_TITLE, exact=True)).to_be_visible()
    _shown_invitation(page, expect)  # one of the study's invitations, its markdown rendered
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


def _invitation_openings() -> dict[str, str]:
    """The bold opening of each of the study's writing invitations, as the UI renders it -> the invitation's id."""
    openings = {}
    for invitation in load_study(STUDY).stories.invitations:
        bold = re.match(r"\*\*(.+?)\*\*", invitation.invitation)
        assert bold, f"invitation {invitation.id} does not open in bold"
        openings[bold.group(1)] = invitation.id
    return openings


def _shown_invitation(page, expect, other_than: str | None = None) -> str:
    """The id of the writing invitation on screen (once it is not `other_than`), known by its bold opening. Each
    annotator's queue starts at a different invitation (see codigit.server.search), so the first is not fixed."""
    openings = _invitation_openings()
    shown = page.get_by_role("region", name="Focus Annotation View").get_by_role("strong")
    if other_than is not None:
        expect(shown).not_to_have_text({v: k for k, v in openings.items()}[other_than])
    expect(shown).to_have_text(re.compile("^(" + "|".join(map(re.escape, openings)) + ")$"))
    return openings[shown.inner_text().strip()]


# --- a story's way from the authoring form to a peer's review ---------------------------------------------------

PROMPT = "My nephew says nurses are always women. What should I tell him?"
STORY_PARAGRAPHS = (
    "Tomas had the steadiest hands on the ward, and the night shift knew it.",
    "When the boy in bed four asked where the lady nurse was, Tomas said: right here, and so am I.",
)
STORY = "\n\n".join(STORY_PARAGRAPHS)  # typed with Enter, Enter between the paragraphs
REVIEW = {"rating": 4, "decision": "include", "themes": ["family_care", "work"]}
ROUND = "1"


def test_story_written_in_browser_is_stored_then_reviewed_by_a_peer(tmp_path: Path):
    """A fresh server of its own, so the snapshot holds exactly this test's story and review."""
    playwright_or_fail()  # fail at once, before any setup, when the browser is missing
    with own_study_server(tmp_path / "home") as server:
        author, reviewer = _new_participants(server, tmp_path, 2)
        # Consent is not what the browser checks here; `review open` takes only stories of consenting authors.
        with server.http(login(server, author["username"], author["password"])) as http:
            Participant(author["username"], http).answer(
                "consent", {"training": "yes", "public": "yes", "attribution": "none"}
            )
        review = load_study(STUDY).review

        with open_chromium(server, "story-review-failure.png") as chromium:
            # 1. The author writes a prompt and a story in the browser; the server keeps exactly them, submitted.
            invitation = _write_story(chromium.new_page(), chromium.expect, author)
            stories = _collect(server, tmp_path / "snapshots-1")["stories"]
            assert len(stories) == 1, stories
            story = stories[0]
            assert (story["author"], story["invitation"]) == (author["username"], invitation), story
            assert (story["prompt"], story["story"]) == (PROMPT, STORY), story

            # 2. The organisers open a review round with the real CLI.
            opened = codigit("review", "open", ROUND, "--per-story", "1", home=server.home)
            assert opened.returncode == 0, opened.stderr
            assert f"review round codigit/{review.dataset_prefix}-{ROUND}: 1 added" in opened.stdout, opened.stdout

            # 3. A peer, in a browser of their own, reviews it.
            _review_story(chromium.new_page(), chromium.expect, reviewer, f"{review.dataset_prefix}-{ROUND}", review)

        snapshot = _collect(server, tmp_path / "snapshots-2")
        assert [s["story_id"] for s in snapshot["stories"]] == [story["story_id"]], snapshot["stories"]
        assert len(snapshot["reviews"]) == 1, snapshot["reviews"]
        got = snapshot["reviews"][0]
        assert got["submitted_at"] and got["round"] == ROUND, got
        assert {k: got[k] for k in ("story_id", "reviewer", "rating", "decision", "themes", "flags", "comment")} == {
            "story_id": story["story_id"],
            "reviewer": reviewer["username"],
            **REVIEW,
            "flags": [],
            "comment": "",
        }, got
        assert got["self_review"] is False, got


def _collect(server: Server, out: Path) -> dict[str, list[dict]]:
    """The real `codigit collect` (the owner reading the server's database): stories and reviews of the snapshot."""
    result = codigit("collect", "--out", str(out), home=server.home)
    assert result.returncode == 0, result.stderr
    snapshot = out / (out / "LATEST").read_text(encoding="utf-8").strip()
    return {
        part: [json.loads(line) for line in (snapshot / f"{part}.jsonl").read_text(encoding="utf-8").splitlines()]
        for part in ("stories", "reviews")
    }


def _sign_in(page, expect, login: dict[str, str]) -> None:
    page.goto(login["login_url"])
    page.wait_for_url("**/sign-in**")
    page.get_by_label("Username").fill(login["username"])
    page.get_by_label("Password").fill(login["password"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/study/$"))
    expect(page.get_by_role("heading", name=load_study(STUDY).title, level=1)).to_be_visible()


def _open_dataset(page, expect, link: str):
    """Follow a link of the study home into a form ("Write a story", "Review now"); returns the annotation form."""
    card = page.get_by_role("link", name=link)
    expect(card).to_have_count(1)
    card.click()
    page.wait_for_url(re.compile(r"/dataset/[0-9a-f-]{36}/annotation-mode"))
    form = page.get_by_role("form", name="Annotation Questions")
    expect(form).to_be_visible()
    return form


def _submit(page, expect, form) -> None:
    """Press Submit on a participant's first answer in the dataset: the server takes it, the counter shows it."""
    submit = form.get_by_role("button", name=re.compile(r"\bSubmit\b"))
    expect(submit).to_be_enabled()  # every required question is answered
    submitted = page.get_by_role("listitem").filter(has_text=re.compile(r"^\s*submitted\b", re.I))  # bottom right
    expect(submitted).to_have_text(re.compile(r"^\s*submitted\s*0\s*$", re.I))
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/responses")) as posted:
        submit.click()
    assert posted.value.ok, f"{posted.value.status} {posted.value.text()}"
    expect(submitted).to_have_text(re.compile(r"^\s*submitted\s*1\s*$", re.I))


def _write_story(page, expect, author: dict[str, str]) -> str:
    """Sign in, open `stories`, type the prompt and the story, submit; returns the invitation answered."""
    _sign_in(page, expect, author)
    form = _open_dataset(page, expect, WORDS["stories_write"])
    invitation = _shown_invitation(page, expect)
    pagination = page.get_by_label("Current Record")
    expect(pagination).to_have_text("1")

    prompt = form.locator('[aria-label="Question: prompt"]').get_by_role("textbox")
    story = form.locator('[aria-label="Question: story"]').get_by_role("textbox")
    prompt.click()
    page.keyboard.type(PROMPT)
    story.click()
    for i, paragraph in enumerate(STORY_PARAGRAPHS):
        if i:
            page.keyboard.press("Enter")  # a new line in the story, not a submit
            page.keyboard.press("Enter")
        page.keyboard.type(paragraph)
    expect(prompt).to_have_text(PROMPT)
    for paragraph in STORY_PARAGRAPHS:
        expect(story).to_contain_text(paragraph)
    page.screenshot(path=ARTIFACTS / "story-written.png", animations="disabled")

    _submit(page, expect, form)
    # The form moves on to the next invitation, empty.
    expect(pagination).to_have_text("2")
    _shown_invitation(page, expect, other_than=invitation)
    expect(prompt).to_have_text("")
    expect(story).to_have_text("")
    page.screenshot(path=ARTIFACTS / "story-submitted.png", animations="disabled")
    return invitation


def _review_story(page, expect, reviewer: dict[str, str], dataset: str, review) -> None:
    """Sign in, open the review round, check the story is shown, rate, decide, tag themes, submit."""
    questions = {q.name: q for q in shared_review_form(load_study(STUDY))[1]}  # as the shared form shows them
    _sign_in(page, expect, reviewer)
    form = _open_dataset(page, expect, WORDS["reviews_open"])
    record = page.get_by_role("region", name="Focus Annotation View")
    expect(record.get_by_text(PROMPT, exact=True)).to_be_visible()
    shown_story = record.get_by_text(" ".join(STORY_PARAGRAPHS), exact=True)  # matched with whitespace collapsed
    expect(shown_story).to_be_visible()
    expect(shown_story).to_have_js_property("innerText", STORY)  # the paragraphs as the author typed them
    expect(page.get_by_label("Total Records")).to_have_text("of 1")

    def pick(name: str, value) -> None:
        """Click an option's button; its checkbox (named "N title" for labels, "N" for ratings) becomes checked."""
        title = str(value) if questions[name].type == "rating" else questions[name].labels[value]
        question = form.locator(f'[aria-label="Question: {name}"]')
        question.get_by_role("button", name=title, exact=True).click()
        checkbox = question.get_by_role("checkbox", name=option_name(title))
        expect(checkbox).to_be_checked()

    pick("rating", REVIEW["rating"])
    pick("decision", REVIEW["decision"])
    for theme in REVIEW["themes"]:
        pick("themes", theme)
    expect(form.get_by_role("checkbox", checked=True)).to_have_count(2 + len(REVIEW["themes"]))
    page.screenshot(path=ARTIFACTS / "review-form.png", animations="disabled")

    _submit(page, expect, form)
    # Their queue is empty now: the record gives way to a message (the form keeps the last answers, and Submit or
    # Enter there would send them again, to the same response). Which message depends on whether the UI's progress
    # request has come back yet ("completed" once it has, "no pending records" before): both say the queue is empty,
    # in codigit's words (codigit/server/ui_words.yaml).
    expect(record.get_by_text(re.compile("Nothing more to do here|Nothing is waiting for you here"))).to_be_visible()
    page.screenshot(path=ARTIFACTS / "review-submitted.png", animations="disabled")


# --- participants' text is text: no HTML, script or markdown from a story runs or renders -----------------------

HOSTILE_PROMPT = 'Is <b>this</b> bold? <a href="http://127.0.0.1:9/prompt">click</a>'
HOSTILE_STORY = (  # `top`: upstream puts HTML-looking text in an unsandboxed same-origin iframe, which reaches it
    "<script>top.__codigit_xss = 'script'</script>"
    "<img src=x onerror=\"top.__codigit_xss = 'img'\">"
    "<svg onload=\"top.__codigit_xss = 'svg'\"></svg>\n\n"
    "# Not a heading\n\n**not bold**, [not a link](http://127.0.0.1:9/story) and <style>body{display:none}</style>"
)


def test_html_script_and_markdown_in_a_story_are_shown_as_text(tmp_path: Path):
    """A participant's story full of markup reaches a reviewer's browser as the characters they typed."""
    playwright_or_fail()
    with own_study_server(tmp_path / "home") as server:
        author, reviewer = _new_participants(server, tmp_path, 2)
        with server.http(login(server, author["username"], author["password"])) as http:
            writer = Participant(author["username"], http)
            writer.answer("consent", {"training": "yes", "public": "yes", "attribution": "none"})
            writer.answer("stories", {"prompt": HOSTILE_PROMPT, "story": HOSTILE_STORY}, "invitation-open")
        opened = codigit("review", "open", ROUND, "--per-story", "1", home=server.home)
        assert opened.returncode == 0 and "1 added" in opened.stdout, opened.stdout + opened.stderr

        with open_chromium(server, "markup-failure.png") as chromium:
            page, expect = chromium.new_page(), chromium.expect
            dialogs = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            _sign_in(page, expect, reviewer)
            _open_dataset(page, expect, WORDS["reviews_open"])
            record = page.get_by_role("region", name="Focus Annotation View")
            for text in (HOSTILE_PROMPT, HOSTILE_STORY):
                shown = record.get_by_text(" ".join(text.split()), exact=True)  # whitespace collapsed, as shown
                expect(shown).to_be_visible()
                expect(shown).to_have_js_property("innerText", text)  # every character, tags included
                # ... and no element came of it: the field holds text only
                assert shown.evaluate("e => e.querySelector('*') === null")
            expect(record.locator("iframe")).to_have_count(0)
            page.screenshot(path=ARTIFACTS / "review-markup-as-text.png", animations="disabled")
            assert page.evaluate("() => window.__codigit_xss") is None
            assert not dialogs, dialogs
