"""A contributor gives a text in chromium: the study home shows the texts step (numbered after the stories), its
link opens their own form, a text without a licence name is refused in the study's words and nothing typed is
lost, and once given it counts on the home page. Desktop and phone."""

from __future__ import annotations

import re

import pytest
from browser import at_desktop_and_phone_size, chromium, option_name
from conftest import ARTIFACTS, REPO
from test_participant_journey import NO_SIDEWAYS_SCROLL, accounts, home_state, refused, step

from codigit.study import load_study

pytestmark = pytest.mark.slow  # a server of its own and a browser

STUDY = REPO / "annotation" / "texts-study.yaml"
S = load_study(STUDY)
T = S.participant_words()
TEXT = "The harbour wall was warm from the day. " * 12


def sign_in(page, expect, row: dict[str, str]) -> None:
    """From the handed-out link to the study home, which names this study."""
    page.goto(row["login_url"])
    page.wait_for_url("**/sign-in")
    expect(page.get_by_role("heading", name=S.title)).to_be_visible()
    page.get_by_label("Username").fill(row["username"])
    page.get_by_label("Password").fill(row["password"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/study/$"))


@at_desktop_and_phone_size
def test_a_contributor_gives_a_text_from_the_study_home(served, tmp_path, viewport):
    size = "phone" if viewport["width"] < 500 else "desktop"
    row = accounts(served, tmp_path, 1)[0]
    with chromium(served, f"texts-{size}-failure.png") as browser:
        page, expect = browser.new_page(viewport), browser.expect
        sign_in(page, expect, row)
        consent = page.locator("#consent-form")
        for group in ("train the study", "published"):
            consent.get_by_role("group", name=re.compile(group)).get_by_label("Yes").check()
        consent.get_by_role("group", name=re.compile("credit you")).get_by_label("Do not name me").check()
        consent.get_by_role("button", name=T["consent_save"]).click()
        expect(page.get_by_role("status")).to_have_text(T["consent_saved"])
        texts = step(page, "texts")
        expect(texts).to_contain_text(T["step_texts"])
        expect(texts).to_contain_text(T["texts_counts"].format(given=0, counting=0))
        assert texts.locator(".n").inner_text() == "4" and step(page, "reviews").locator(".n").inner_text() == "5"
        assert page.evaluate(NO_SIDEWAYS_SCROLL)
        page.screenshot(path=ARTIFACTS / f"texts-{size}-home.png", full_page=True)

        page.get_by_role("link", name=T["texts_write"]).click()
        page.wait_for_url(re.compile(r"/dataset/[0-9a-f-]{36}/annotation-mode"))
        form = page.get_by_role("form", name="Annotation Questions")
        for name, value in (("title", "Harbour wall"), ("text", TEXT)):
            form.locator(f'[aria-label="Question: {name}"]').get_by_role("textbox").click()
            page.keyboard.insert_text(value)
        licences = {q.name: q for q in S.contributions.questions}["licence"].labels
        keep = {q.name: q for q in S.contributions.questions}["keep"].labels
        for question, label in (("licence", licences["other_open"]), ("keep", keep["yes"])):
            group = form.locator(f'[aria-label="Question: {question}"]')
            group.get_by_role("button", name=label, exact=True).click()
            expect(group.get_by_role("checkbox", name=option_name(label))).to_be_checked()
        form.locator("button.button--submit").click()
        refused(page, expect, T["rules.licence_unnamed"])
        expect(form.locator('[aria-label="Question: text"]').get_by_role("textbox")).to_contain_text("harbour wall")
        form.locator('[aria-label="Question: licence_name"]').get_by_role("textbox").click()
        page.keyboard.insert_text("GNU Free Documentation License 1.3")
        page.screenshot(path=ARTIFACTS / f"texts-{size}-form.png", full_page=True)
        form.locator("button.button--submit").click()
        title = form.locator('[aria-label="Question: title"]').get_by_role("textbox")
        expect(title).not_to_contain_text("Harbour wall")  # taken: on to the next empty slot

        page.goto(row["login_url"].rstrip("/") + "/study/")
        expect(step(page, "texts")).to_contain_text(T["texts_counts"].format(given=1, counting=1))
    assert home_state(served, row)["contributions"]["counting"] == 1
