"""A participant's whole journey in Debian's chromium, as a person would take it: the link the organisers hand out,
sign-in, the study home, consent, writing, the study's rules refusing what would not count, a story removed only
after a confirmation, a review round with feedback, and leaving the study; at desktop and at phone size, with an
accessibility audit (axe-core) of codigit's own pages and of the sign-in page.

Each test has a server of its own (so its snapshot holds only what it did), started with `--snapshots` in its temp
folder, and the study file copied with `review.feedback_to_authors: true`. Screenshots go to tests/artifacts/; the
docs' (docs/screenshots/) are copied from there.
"""

from __future__ import annotations

import csv
import json
import re
import uuid
from pathlib import Path

import pytest
from browser import DESKTOP, PHONE, chromium, option_name, playwright_or_fail
from conftest import ARTIFACTS, STUDY, Participant, codigit, feedback_study_server, login

from codigit.languages import shared_review_form
from codigit.study import load_study

pytestmark = pytest.mark.slow  # a browser, and a server of its own for each test

S = load_study(STUDY)
T = S.participant_words()
PROMPT = "My daughter asked whether girls can be engineers. What should I say?"
STORY = "Amira built her first bridge out of lolly sticks; it held her brother's whole toy lorry."
TOO_LONG = "word " * 1300  # 6,500 characters, the study takes 6,000
NO_SIDEWAYS_SCROLL = "() => document.documentElement.scrollWidth <= window.innerWidth"


@pytest.fixture
def study(tmp_path):
    """(server, study file, snapshots folder) for one test, the study initialised by the real `codigit init`."""
    playwright_or_fail()
    with feedback_study_server(tmp_path) as served:
        yield served


def accounts(server, tmp_path: Path, n: int) -> list[dict[str, str]]:
    """Logins rows of n new participants, made by the real `codigit participants add`."""
    roster = tmp_path / f"roster-{uuid.uuid4().hex[:6]}.csv"
    roster.write_text("name,email\n" + "".join(f"Person {i},person{i}-{roster.stem}@example.org\n" for i in range(n)))
    logins = tmp_path / f"{roster.stem}-logins.csv"
    result = codigit("participants", "add", str(roster), "--out", str(logins), home=server.home)
    assert result.returncode == 0, result.stderr
    with logins.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def home_state(server, row: dict[str, str]) -> dict:
    """What the server holds for the participant, as the study home's API reports it (not what the page shows)."""
    with server.http(login(server, row["username"], row["password"])) as http:
        return http.get("/codigit/home").raise_for_status().json()


def sign_in(page, expect, row: dict[str, str]) -> None:
    """From the handed-out link to the study home."""
    page.goto(row["login_url"])
    page.wait_for_url("**/sign-in")
    expect(page.get_by_role("heading", name=S.title)).to_be_visible()  # the study's words, not Argilla's claim
    expect(page.get_by_text(S.description)).to_be_visible()
    assert page.evaluate(NO_SIDEWAYS_SCROLL)
    page.get_by_label("Username").fill(row["username"])
    page.get_by_label("Password").fill(row["password"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/study/$"))
    expect(page.get_by_role("heading", name=S.title, level=1)).to_be_visible()


def step(page, name: str):
    return page.locator(f"#step-{name}")


def write(page, expect, prompt: str, story: str, screenshot: str | None = None):
    """Type a pair into the writing form on screen and press Submit; returns the form."""
    form = page.get_by_role("form", name="Annotation Questions")
    expect(form).to_be_visible()
    for name, text in (("prompt", prompt), ("story", story)):
        box = form.locator(f'[aria-label="Question: {name}"]').get_by_role("textbox")
        box.click()
        page.keyboard.press("Control+A")
        page.keyboard.press("Delete")
        page.keyboard.insert_text(text)
    if screenshot:  # without an earlier refusal's message, which no longer applies
        for close in page.locator(".toast__close").all():
            close.click()
        expect(page.locator(".toast-danger")).to_have_count(0)
        page.screenshot(path=ARTIFACTS / screenshot, animations="disabled")
    form.locator("button.button--submit").click()  # "Submit", or Argilla's word for it in the chosen language
    return form


def refused(page, expect, message: str) -> None:
    """Argilla's alert shows the server's refusal, in the study's words (it clears earlier ones first)."""
    expect(page.locator(".toast-danger[role=alert]").filter(has_text=message)).to_be_visible()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_participants_journey_from_sign_in_to_leaving(study, tmp_path, viewport):
    server, study_file, snapshots = study
    size = "phone" if viewport == PHONE else "desktop"
    row = accounts(server, tmp_path, 1)[0]
    with chromium(server, f"journey-{size}-failure.png") as browser:
        page, expect = browser.new_page(viewport), browser.expect
        sign_in(page, expect, row)

        # The study home: the steps in order, each with its state; nothing counts yet.
        expect(step(page, "consent")).to_contain_text(T["consent_none"].split(".")[0])
        expect(step(page, "about")).to_contain_text(T["about_todo"].split(".")[0])
        expect(step(page, "stories")).to_contain_text(T["stories_counts"].format(written=0, counting=0))
        expect(step(page, "reviews")).to_contain_text(T["reviews_none"])
        expect(page.get_by_text(T["contact"].format(contact=S.contact))).to_be_visible()
        assert page.evaluate(NO_SIDEWAYS_SCROLL)
        page.screenshot(path=ARTIFACTS / f"{size}-home-start.png", full_page=True)

        # Consent: an invalid combination is refused where it is given, and nothing is stored.
        consent = page.locator("#consent-form")
        consent.get_by_role("group", name=re.compile("fine-tune")).get_by_label("No").check()
        consent.get_by_role("group", name=re.compile("published")).get_by_label("Yes").check()
        consent.get_by_role("group", name=re.compile("credit you")).get_by_label("Do not name me").check()
        consent.get_by_role("button", name=T["consent_save"]).click()
        expect(page.get_by_role("alert")).to_have_text(T["rules.public_without_training"])
        assert home_state(server, row)["consent"]["state"] == "none"
        consent.get_by_role("group", name=re.compile("fine-tune")).get_by_label("Yes").check()
        consent.get_by_role("button", name=T["consent_save"]).click()
        expect(page.get_by_role("status")).to_have_text(T["consent_saved"])
        expect(step(page, "consent")).to_contain_text("Given on")
        assert home_state(server, row)["consent"]["values"] == {
            "training": "yes",
            "public": "yes",
            "attribution": "none",
        }

        # Writing: an over-long and an empty story are refused with the rule, what was typed stays, nothing is stored.
        page.get_by_role("link", name=T["stories_write"]).click()
        page.wait_for_url(re.compile(r"/dataset/[0-9a-f-]{36}/annotation-mode"))
        current = page.get_by_label("Current Record")
        expect(current).to_have_text("1")
        form = write(page, expect, PROMPT, TOO_LONG)
        refused(page, expect, T["rules.story_too_long"].format(chars=len(TOO_LONG.strip()), limit=6000))
        expect(current).to_have_text("1")
        expect(form.locator('[aria-label="Question: story"]').get_by_role("textbox")).to_contain_text("word word")
        expect(page.locator("#codigit-counter-story")).to_contain_text(f"{len(TOO_LONG.strip())} / 6000")
        write(page, expect, PROMPT, "   ")
        refused(page, expect, T["rules.story_empty"])
        assert home_state(server, row)["stories"] == []
        write(page, expect, PROMPT, STORY, screenshot=f"{size}-story-form.png")
        expect(current).to_have_text("2")  # saved: the form moves on to the next invitation
        assert page.evaluate(NO_SIDEWAYS_SCROLL)

        # Removing a story takes a confirmation that says what it does: Cancel keeps it, Yes removes it.
        discard = form.locator("button.button--discard")
        discard.click()
        dialog = page.get_by_role("dialog", name=T["discard_title"])
        expect(dialog).to_contain_text(T["discard_text"].split(":")[0])
        page.screenshot(path=ARTIFACTS / f"{size}-discard-confirm.png", animations="disabled")
        # Keys pressed in the dialog do not reach Argilla's shortcuts (Backspace discards, Enter submits there):
        # Backspace does nothing, Enter presses the focused Cancel.
        expect(dialog.get_by_role("button", name=T["cancel"])).to_be_focused()
        page.keyboard.press("Backspace")
        page.keyboard.press("Enter")
        expect(dialog).to_have_count(0)
        expect(current).to_have_text("2")
        assert [s["state"] for s in home_state(server, row)["stories"]] == ["counts"]
        page.get_by_role("region", name="Focus Annotation View").click()  # outside any text box
        page.keyboard.press("Backspace")  # Argilla's Discard shortcut asks first too
        expect(dialog).to_be_visible()
        page.keyboard.press("Escape")
        expect(dialog).to_have_count(0)
        expect(current).to_have_text("2")
        discard.click()
        page.get_by_role("dialog", name=T["discard_title"]).get_by_role("button", name=T["discard_yes"]).click()
        expect(current).to_have_text("3")
        expect(page.get_by_text(T["draft_note"])).to_be_visible()

        # Back on the study home (codigit's link; at phone size, where it has no room, Argilla's own "Home"), where
        # each story says whether it counts, from the same rules.
        back = page.get_by_role("link", name=re.compile(T["home_link"]) if size == "desktop" else "Home")
        back.first.click()
        page.wait_for_url(re.compile(r"/study/$"))
        expect(step(page, "stories")).to_contain_text(T["stories_counts"].format(written=1, counting=1))
        expect(page.locator(".story[data-state=counts]")).to_contain_text(T["story_counts"])
        expect(page.locator(".story[data-state=discarded]")).to_contain_text(T["story_discarded"])
        expect(page.locator(".story[data-state=counts]")).to_contain_text(PROMPT)
        page.screenshot(path=ARTIFACTS / f"{size}-home-after.png", full_page=True)
        assert page.evaluate(NO_SIDEWAYS_SCROLL)

        # Leaving: a confirmation that says what happens; Cancel changes nothing; Yes records it as the CLI would.
        page.get_by_role("button", name=T["withdraw_button"]).click()
        leave = page.get_by_role("dialog", name=T["withdraw_confirm_title"])
        expect(leave).to_contain_text(T["withdraw_confirm_text"].split(",")[0])
        expect(leave.get_by_role("button", name=T["cancel"])).to_be_focused()
        assert page.evaluate(NO_SIDEWAYS_SCROLL)
        page.screenshot(path=ARTIFACTS / f"{size}-withdraw-confirm.png", animations="disabled")
        leave.get_by_role("button", name=T["cancel"]).click()
        assert home_state(server, row)["withdrawn_at"] is None
        page.get_by_role("button", name=T["withdraw_button"]).click()
        leave.get_by_label(T["withdraw_reason"]).fill("moving away")
        leave.get_by_role("button", name=T["withdraw_yes"]).click()
        expect(page.locator("#withdrawn-text")).to_contain_text(T["withdrawn_text"].split(" on ")[0])
        page.screenshot(path=ARTIFACTS / f"{size}-withdrawn.png", full_page=True)
        assert not browser.third_party, browser.third_party

    # Same ledger entry and snapshot effect as `codigit participants withdraw`.
    import argilla as rg

    ledger = rg.Argilla(api_url=server.url, api_key=server.api_key).datasets("ledger", workspace="codigit-organisers")
    entries = [r.fields for r in ledger.records(with_responses=False)]
    assert [(e["event"], e["participant"], e["reason"]) for e in entries] == [
        ("withdrawal", row["username"], "moving away")]  # fmt: skip
    mirror = [json.loads(x) for x in (snapshots / "ledger" / "withdrawals.jsonl").read_text().splitlines()]
    assert [(m["participant"], m["at"]) for m in mirror] == [(row["username"], entries[0]["at"])]
    again = codigit("participants", "withdraw", row["username"], "--snapshots", str(snapshots),
                    "--study", str(study_file), home=server.home)  # fmt: skip
    assert again.returncode == 0 and "was already withdrawn at " + entries[0]["at"] in again.stdout
    collected = codigit("collect", "--study", str(study_file), "--out", str(snapshots), home=server.home)
    assert collected.returncode == 0, collected.stderr
    snap = snapshots / (snapshots / "LATEST").read_text().strip()
    assert (snap / "stories.jsonl").read_text() == "" and row["username"] in (snap / "withdrawals.jsonl").read_text()


def test_review_round_in_the_browser_is_fair_and_feedback_reaches_only_the_author_after_it_closes(study, tmp_path):
    server, study_file, _ = study
    rows = accounts(server, tmp_path, 3)
    people = [Participant(r["username"], server.http(login(server, r["username"], r["password"]))) for r in rows]
    for i, person in enumerate(people):
        person.answer("consent", {"training": "yes", "public": "yes", "attribution": "none"})
        person.answer("stories", {"prompt": f"Question {i}?", "story": f"Story number {i}."}, "invitation-open")
    opened = codigit("review", "open", "1", "--per-story", "2", "--study", str(study_file), home=server.home)
    assert opened.returncode == 0 and "3 added" in opened.stdout, opened.stdout + opened.stderr
    author, reviewer, other = rows
    with chromium(server, "fair-round-failure.png") as browser:
        page, expect = browser.new_page(), browser.expect
        sign_in(page, expect, reviewer)
        expect(step(page, "reviews")).to_contain_text(T["reviews_round"].format(round="1", done=0, total=2))
        page.get_by_role("link", name=T["reviews_open"]).click()
        page.wait_for_url(re.compile(r"/dataset/[0-9a-f-]{36}/annotation-mode"))
        record = page.get_by_role("region", name="Focus Annotation View")
        seen = []
        for _ in range(2):  # the two stories that are not their own ("Story number 1.")
            shown = record.get_by_text(re.compile(r"^Story number [02]\.$"))
            if seen:
                expect(shown).not_to_have_text(seen[-1])
            expect(shown).to_be_visible()
            seen.append(shown.inner_text())
            form = page.get_by_role("form", name="Annotation Questions")
            revise = next(q for q in shared_review_form(S)[1] if q.name == "decision").labels["revise"]
            for name, option in (("rating", "4"), ("decision", revise)):  # "Include after revision / Incluir…"
                question = form.locator(f'[aria-label="Question: {name}"]')
                question.get_by_role("button", name=option, exact=True).click()
                expect(question.get_by_role("checkbox", name=option_name(option))).to_be_checked()
            form.locator('[aria-label="Question: comment"]').get_by_role("textbox").click()
            page.keyboard.type("Give the bridge a name.")
            form.get_by_role("button", name=re.compile(r"\bSubmit\b")).click()
        assert sorted(seen) == ["Story number 0.", "Story number 2."]
        expect(
            record.get_by_text(re.compile("Nothing is waiting for you here|Nothing more to do here"))
        ).to_be_visible()

        author_page = browser.new_page()
        sign_in(author_page, expect, author)
        expect(author_page.locator(".feedback")).to_have_count(0)  # the round is open: no feedback yet
    closed = codigit("review", "close", "1", "--study", str(study_file), home=server.home)
    assert closed.returncode == 0, closed.stderr
    with chromium(server, "feedback-failure.png") as browser:
        page, expect = browser.new_page(), browser.expect
        sign_in(page, expect, author)
        feedback = page.locator(".story .feedback")
        expect(feedback).to_contain_text(T["feedback_title"])
        expect(feedback).to_contain_text("4/5 · Include after revision — “Give the bridge a name.”")
        assert reviewer["username"] not in page.content()
        page.screenshot(path=ARTIFACTS / "desktop-feedback.png", full_page=True)
        other_page = browser.new_page()
        sign_in(other_page, expect, other)  # their story had one review too: they see that one, on their story only
        expect(other_page.locator(".story")).to_have_count(1)
        expect(other_page.locator(".feedback li")).to_have_count(1)
        reviewer_page = browser.new_page()
        sign_in(reviewer_page, expect, reviewer)  # nobody reviewed the reviewer's story: no feedback shown
        expect(reviewer_page.locator(".story")).to_have_count(1)
        expect(reviewer_page.locator(".feedback")).to_have_count(0)


def test_codigit_pages_and_sign_in_pass_an_accessibility_audit(study, tmp_path):
    """No serious or critical axe-core violation on the sign-in page, the study home and its dialog; what axe finds
    in Argilla's own forms is written to tests/artifacts/axe-argilla-forms.json (listed in docs/organisers.md)."""
    from axe_playwright_python.sync_playwright import Axe

    server, *_ = study
    row = accounts(server, tmp_path, 1)[0]
    axe = Axe()

    def serious(page) -> list[str]:
        found = axe.run(page).response["violations"]
        return [f"{v['id']} ({v['impact']}): {v['help']}" for v in found if v["impact"] in ("serious", "critical")]

    with chromium(server, "axe-failure.png") as browser:
        page, expect = browser.new_page(), browser.expect
        page.goto(row["login_url"])
        page.wait_for_url("**/sign-in")
        expect(page.get_by_role("heading", name=S.title)).to_be_visible()
        assert serious(page) == [], "sign-in"
        sign_in(page, expect, row)
        assert serious(page) == [], "study home"
        page.get_by_role("button", name=T["withdraw_button"]).click()
        assert serious(page) == [], "withdraw dialog"
        page.keyboard.press("Escape")
        forms = {}
        for link in (T["stories_write"], T["about_open"]):
            page.get_by_role("link", name=link).click()
            page.wait_for_url(re.compile(r"/annotation-mode"))
            expect(page.get_by_role("form", name="Annotation Questions")).to_be_visible()
            forms[link] = sorted(
                {f"{v['id']} ({v['impact']}): {v['help']}" for v in axe.run(page).response["violations"]}
            )
            page.go_back()
            page.wait_for_url(re.compile(r"/study/$"))
        (ARTIFACTS / "axe-argilla-forms.json").write_text(json.dumps(forms, indent=2) + "\n", encoding="utf-8")


def test_a_participant_reads_the_study_in_the_language_they_choose(study, tmp_path):
    """The study home offers the study's languages; the choice holds for the study home, the sign-in page, the
    server's messages and Argilla's own words where Argilla has that language."""
    from codigit.languages import localise

    server, study_file, _ = study
    es = localise(load_study(study_file), "es")
    row = accounts(server, tmp_path, 1)[0]
    with chromium(server, "language-failure.png") as browser:
        page, expect = browser.new_page(), browser.expect
        sign_in(page, expect, row)
        page.get_by_label(re.compile(T["language"])).select_option("es")
        expect(page.get_by_role("heading", name=es.title, level=1)).to_be_visible()
        expect(page.locator("html")).to_have_attribute("lang", "es")
        expect(step(page, "consent")).to_contain_text(es.texts["consent_none"].split(".")[0])
        consent = page.locator("#consent-form")
        training = next(q for q in es.consent_questions if q.name == "training")
        expect(consent.get_by_role("group", name=re.compile(re.escape(training.title)))).to_be_visible()
        expect(page.get_by_role("button", name=es.texts["withdraw_button"])).to_be_visible()
        page.screenshot(path=ARTIFACTS / "desktop-home-es.png", full_page=True)

        page.get_by_role("link", name=es.texts["stories_write"]).click()  # the server's refusal, in Spanish
        page.wait_for_url(re.compile(r"/annotation-mode"))
        write(page, expect, PROMPT, "   ")
        refused(page, expect, es.texts["rules.story_empty"])
        page.goto(server.url + "/study/")
        page.get_by_role("button", name=es.texts["sign_out"]).click()
        page.wait_for_url("**/sign-in")
        expect(page.get_by_role("heading", name=es.title)).to_be_visible()  # remembered in this browser
    assert home_state(server, row)["language"] == "es"
