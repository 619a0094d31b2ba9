"""A study that asks only for whole texts (`annotation/texts-only-study.yaml`), in chromium: the study home has no
writing step (the steps are numbered as shown), a review round of the texts appears as such, its link opens the
text review form with the text and its title, and the review counts. Desktop and phone."""

from __future__ import annotations

import re

import pytest
from browser import at_desktop_and_phone_size, chromium, option_name
from conftest import ARTIFACTS, REPO, codigit, login
from test_contributions import essay
from test_contributions_browser import sign_in
from test_participant_journey import NO_SIDEWAYS_SCROLL, accounts, home_state, step

from codigit.languages import shared_review_form
from codigit.simulate import Participant
from codigit.study import load_study

pytestmark = pytest.mark.slow  # a server of its own and a browser

STUDY = REPO / "annotation" / "texts-only-study.yaml"
S = load_study(STUDY)
T = S.participant_words()
CONSENT = {"training": "yes", "public": "yes", "attribution": "none"}


@at_desktop_and_phone_size
def test_a_texts_only_study_has_no_writing_step_and_its_texts_are_reviewed(served, tmp_path, viewport):
    size = "phone" if viewport["width"] < 500 else "desktop"
    reviewer, writer = accounts(served, tmp_path, 2)
    author = Participant(writer["username"], served.http(login(served, writer["username"], writer["password"])))
    author.answer("consent", CONSENT)
    author.answer("texts", {"title": "Harbour wall", "text": essay(4), "licence": "own_work", "keep": "no"},
                  external_id="text-1")  # fmt: skip
    opened = codigit("review", "open", "1", home=served.home)
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout.splitlines() == [
        "review round codigit/texts-review-1: 1 added, 0 already in round, 0 reviewed before unchanged, "
        "0 no consent form, 0 invalid consent, 0 short put back"
    ]  # no stories' round in a study without stories
    assert home_state(served, reviewer)["stories_dataset_id"] is None
    with chromium(served, f"texts-only-{size}-failure.png") as browser:
        page, expect = browser.new_page(viewport), browser.expect
        sign_in(page, expect, reviewer)
        expect(step(page, "stories")).to_be_hidden()
        expect(step(page, "reviews")).to_contain_text(T["step_reviews_texts"])
        expect(page.locator("#guidelines")).to_contain_text("Give only what you may give.")  # the texts' guidelines
        numbers = [step(page, name).locator(".n").inner_text() for name in ("consent", "about", "texts", "reviews")]
        assert numbers == ["1", "2", "3", "4"]
        reviews = step(page, "reviews")
        expect(reviews).to_contain_text(T["reviews_texts_round"].format(round="1", done=0, total=1))
        assert page.evaluate(NO_SIDEWAYS_SCROLL)
        page.screenshot(path=ARTIFACTS / f"texts-only-{size}-home.png", full_page=True)

        reviews.get_by_role("link", name=T["reviews_open"]).click()
        page.wait_for_url(re.compile(r"/dataset/[0-9a-f-]{36}/annotation-mode"))
        record = page.get_by_role("region", name="Focus Annotation View")
        expect(record.get_by_text("Harbour wall", exact=True)).to_be_visible()
        expect(record.get_by_text(essay(4)[:40])).to_be_visible()
        form = page.get_by_role("form", name="Annotation Questions")
        include = next(q for q in shared_review_form(S, texts=True)[1] if q.name == "decision").labels["include"]
        question = form.locator('[aria-label="Question: decision"]')
        question.get_by_role("button", name=include, exact=True).click()
        expect(question.get_by_role("checkbox", name=option_name(include))).to_be_checked()
        page.screenshot(path=ARTIFACTS / f"texts-only-{size}-review.png", full_page=True)
        form.get_by_role("button", name=re.compile(r"\bSubmit\b")).click()
        expect(
            record.get_by_text(re.compile("Nothing is waiting for you here|Nothing more to do here"))
        ).to_be_visible()

        page.goto(reviewer["login_url"].rstrip("/") + "/study/")
        expect(step(page, "reviews")).to_contain_text(T["reviews_texts_round"].format(round="1", done=1, total=1))
    collected = codigit("collect", "--out", str(tmp_path / "snaps"), home=served.home)
    assert collected.returncode == 0, collected.stderr
    snap = tmp_path / "snaps" / (tmp_path / "snaps" / "LATEST").read_text().strip()
    assert '"decision":"include"' in (snap / "text_reviews.jsonl").read_text()
