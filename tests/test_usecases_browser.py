"""The use-case register on the study home, in chromium: a member proposes a use (an incomplete proposal is refused
in the study's words and nothing typed is lost), sees it waiting for the board; the board decides with the real
CLI; another member then sees the use approved, with the board's reason, and nobody's pseudonym. Desktop and
phone."""

from __future__ import annotations

import re

import pytest
from browser import at_desktop_and_phone_size, chromium
from conftest import ARTIFACTS, REPO, codigit
from test_contributions_browser import sign_in
from test_participant_journey import NO_SIDEWAYS_SCROLL, accounts

from codigit.study import load_study

pytestmark = pytest.mark.slow  # a server of its own and a browser

STUDY = REPO / "annotation" / "texts-study.yaml"
T = load_study(STUDY).participant_words()
USE = {"title": "Story time", "who": "Librarians of the co-op's town",
       "purpose": "Reading prompts for children's writing groups", "not_for": "Grading children's writing"}  # fmt: skip


def fill(form, values: dict[str, str]) -> None:
    for name, value in values.items():
        form.locator(f'[name="{name}"]').fill(value)


@at_desktop_and_phone_size
def test_a_member_proposes_a_use_and_everyone_sees_the_boards_decision(served, tmp_path, viewport):
    size = "phone" if viewport["width"] < 500 else "desktop"
    proposer, reader = accounts(served, tmp_path, 2)
    with chromium(served, f"usecases-{size}-failure.png") as browser:
        page, expect = browser.new_page(viewport), browser.expect
        sign_in(page, expect, proposer)
        section = page.locator("#usecases")
        expect(section.get_by_role("heading", name=T["usecases_title"])).to_be_visible()
        expect(section).to_contain_text(T["usecases_none"])
        section.get_by_text(T["usecases_propose"]).click()
        form = page.locator("#usecase-form")
        fill(form, {**USE, "not_for": "   "})
        form.get_by_role("button", name=T["usecase_send"]).click()
        expect(section.get_by_role("alert")).to_have_text(T["rules.usecase_empty"])
        expect(form.get_by_label(T["usecase_who"])).to_have_value(USE["who"])  # nothing typed is lost
        form.get_by_label(T["usecase_not_for"]).fill(USE["not_for"])
        form.get_by_role("button", name=T["usecase_send"]).click()
        expect(section.locator("#usecase-status")).to_have_text(T["usecase_sent"])
        item = section.locator(".usecase")
        expect(item).to_have_count(1)
        expect(item).to_contain_text(USE["title"])
        expect(item).to_contain_text(T["usecase_mine"])
        expect(item).to_contain_text(T["usecase_proposed"])
        assert page.evaluate(NO_SIDEWAYS_SCROLL)
        section.screenshot(path=ARTIFACTS / f"usecases-{size}-proposed.png")

        listed = codigit("usecases", home=served.home)
        uid = re.search(r"^(u-[0-9a-f]{10})  proposed$", listed.stdout, re.M).group(1)
        policy = tmp_path / "policy.yaml"
        policy.write_text(f"extends: {REPO / 'annotation' / 'policy.yaml'}\nboard: [Ana Board]\n", encoding="utf-8")
        decided = codigit("usecases", "decide", uid, "approve", "--by", "Ana Board", "--reason",
                          "It is what the co-op writes for", "--policy", str(policy), home=served.home)  # fmt: skip
        assert decided.returncode == 0, decided.stderr

        other = browser.new_page(viewport)
        sign_in(other, expect, reader)
        shown = other.locator("#usecases .usecase")
        expect(shown).to_contain_text("It is what the co-op writes for")
        expect(shown).to_contain_text(USE["not_for"])
        expect(shown).not_to_contain_text(T["usecase_mine"])  # not theirs, and not whose
        assert proposer["username"] not in other.content()
        other.locator("#usecases").screenshot(path=ARTIFACTS / f"usecases-{size}-decided.png")
