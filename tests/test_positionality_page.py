"""The positionality page: sections in order, one decodable inline PNG per plot, methods and references,
participant text escaped, and nothing on the page that the inputs did not hold."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

import pandas as pd
import pytest

from codigit.analysis.positionality_page import NO_CODING, SECTIONS, render

GROUPS = {"gender_identity": ["woman", "man", "nonbinary"], "age": ["18-29", "30-49"]}
ABSENT = ["agender", "genderfluid", "50-64", "65+", "trans man", "intersex"]  # plausible groups the inputs lack
CODES = ["care", "conflict", "work"]
CODING = {"round": "1", "codebook_version": "2", "coders": 2, "stories": 40,
          "alpha": [{"code": c, "alpha": a, "ci_low": a - 0.2, "ci_high": min(a + 0.1, 1), "n_items": 40}
                    for c, a in zip(CODES, (0.71, 0.85, 0.4), strict=True)],
          "reconciled": {"majority": 30, "adjudicator": 8, "unresolved": 2}}  # fmt: skip
ATTACK = "<script>alert(1)</script>"


class Page(HTMLParser):
    def __init__(self, text: str):
        super().__init__()
        self.h2: list[str] = []
        self.images: list[str] = []
        self.methods = self.references = self.marks = 0
        self.scripts = 0
        self.text: list[str] = []
        self._in: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self._in.append(tag)
        self.scripts += tag == "script"
        self.marks += tag == "mark"
        if tag == "img":
            self.images.append(attrs["src"])
            self.text.append(attrs.get("alt", ""))
        if tag == "p" and "methods" in (attrs.get("class") or ""):
            self.methods += 1
        if tag == "li" and (attrs.get("id") or "").startswith("ref-"):
            self.references += 1

    def handle_endtag(self, tag):
        if tag in self._in:
            del self._in[len(self._in) - 1 - self._in[::-1].index(tag) :]

    def handle_data(self, data):
        self.text.append(data)
        if self._in and self._in[-1] == "h2":
            self.h2.append(data.strip())


def frames(groups=GROUPS) -> dict:
    keys = [(q, g) for q, gs in groups.items() for g in gs]
    ratings = pd.DataFrame([{"question": q, "group": g, "reviewers": 5, "stories": 20, "r": 0.1 * i - 0.2,
                             "p": 0.01 * (i + 1), "p_adjusted": 0.02 * (i + 1)}
                            for i, (q, g) in enumerate(keys)])  # fmt: skip
    features = pd.DataFrame([{"question": q, "group": g, "authors": 6, "stories": 14, "words": 310.5,
                              "pronoun_she": 1.2, "pronoun_he": 0.8} for q, g in keys])  # fmt: skip
    codes = pd.DataFrame([{"question": q, "group": g, "authors": 6, "stories": 14, "code": c, "count": 2 + i + j,
                           "share": (2 + i + j) / 14, "ci_low": max((i + j) / 14, 0), "ci_high": (4 + i + j) / 14,
                           "rest_share": 0.3, "diff": (2 + i + j) / 14 - 0.3, "p": 0.001 if i == 0 else 0.5,
                           "p_adjusted": 0.01 if i == 0 else 0.6}
                          for i, (q, g) in enumerate(keys) for j, c in enumerate(CODES)])  # fmt: skip
    terms = ["kitchen", "mother", "football", "office", "train", "garden", "rent", "school", "phone"]
    distinctive = pd.DataFrame([{"question": q, "group": g, "authors": 6, "term": t, "n": 4, "count_group": 9,
                                 "count_rest": 3, "log_odds": 1.1, "z": 3.0 - 0.3 * j}
                                for q, g in keys for j, t in enumerate(terms)])  # fmt: skip
    excerpts = pd.DataFrame([{"question": q, "group": g, "term": "kitchen",
                              "excerpt": f"In the Kitchen at night {ATTACK} & she said \"no\""}
                             for q, g in keys])  # fmt: skip
    model = pd.DataFrame([{"question": q, "group": g, "judges": 5, "judgments": 40, "tuned_win_rate": 0.6,
                           "ci_low": 0.45, "ci_high": 0.75, "p": 0.2, "p_adjusted": 0.4} for q, g in keys])  # fmt: skip
    summary = {"snapshot": "20261130T0400Z", "authors": 40, "stories": 96, "people_with_positionality": 55,
               "questions": list(groups), "excluded": {"no consent": 3, "withdrawn": 1}}  # fmt: skip
    suppressed = ["gender_identity: an answer (2 people) pooled into other/suppressed: fewer than 5"]
    return {"k": 5, "summary": summary, "ratings": ratings, "story_features": features, "codes": codes,
            "distinctive": distinctive, "excerpts": excerpts, "model": model, "coding": CODING,
            "suppressed": suppressed}  # fmt: skip


@pytest.fixture
def page() -> str:
    return render(**frames())


def test_sections_in_order_with_methods_and_references(page):
    parsed = Page(page)
    assert parsed.h2 == list(SECTIONS.values())
    assert parsed.methods == len(SECTIONS) - 1  # one per section but the references
    assert parsed.references == 9 and "Fightin' Words" in page and "16(4), 372–403" in page
    assert "20261130T0400Z" in page and "no consent" in page and "k = 5" in page
    assert "pooled into other/suppressed" in page  # the suppression lines are shown
    for key in SECTIONS:  # the contents list links every section
        assert f"href='#{key}'" in page and f"id='{key}'" in page


def test_one_decodable_png_per_plot_and_nothing_external(page):
    parsed = Page(page)
    assert len(parsed.images) == 5  # alpha, codes, distinctive terms, ratings, model
    for src in parsed.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert parsed.scripts == 0 and "http://" not in page and "src='http" not in page and "<link" not in page


def test_excerpts_are_escaped_and_highlighted(page):
    assert ATTACK not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<mark>Kitchen</mark>" in page  # whole word, case kept
    assert Page(page).marks == 5 and Page(page).scripts == 0


def test_significant_codes_are_marked():
    parsed = Page(render(**frames()))
    text = "".join(parsed.text)
    assert text.count("✱") == len(CODES) + 1  # the first group's three codes, and the caption's legend


def test_without_coding_round_says_how_and_draws_no_codes():
    parsed = Page(render(**{**frames(), "coding": None, "model": None}))
    text = " ".join(parsed.text)
    assert "No coding round has been reconciled yet" in text
    assert "codigit coding open ROUND --codebook annotation/codebook.yaml" in text
    assert "codigit coding agreement ROUND" in text and "codigit coding reconcile ROUND" in text
    assert NO_CODING.startswith("No coding round")
    assert len(parsed.images) == 2  # distinctive terms and ratings only
    assert "share of each group's stories given each code, per question" not in text
    assert SECTIONS["model"] not in parsed.h2 and parsed.h2[2] == SECTIONS["codes"]


def test_no_group_name_that_the_inputs_lack():
    page = render(**frames())
    text = " ".join(Page(page).text).lower()
    markup = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page).lower()  # base64 can spell anything
    for name in ABSENT:
        assert name not in text and name not in markup
    for groups in GROUPS.values():
        for name in groups:
            assert name in text
    empty = {name: frame.iloc[:0] for name, frame in frames().items() if isinstance(frame, pd.DataFrame)}
    bare = render(**{**frames(), **empty, "suppressed": []})
    words = set(re.findall(r"[\w+-]+", " ".join(Page(bare).text)))  # whole words: "man" is in "Friedman"
    assert not words & {g for gs in GROUPS.values() for g in gs}
    assert len(Page(bare).images) == 1  # the alpha plot: it is about codes, not groups


def test_more_groups_than_panels_says_so():
    many = {"region": [f"region {i:02d}" for i in range(14)]}
    page = render(**frames(many))
    assert "2 more groups are not plotted" in page
    assert "region 13" in " ".join(Page(page).text)  # still listed, with its excerpts


def test_highlight_marks_whole_words_and_phrases_as_the_terms_were_read():
    from codigit.analysis.positionality_page import highlight

    assert highlight("kitchenette, Kitchen <b>", "kitchen") == "kitchenette, <mark>Kitchen</mark> &lt;b&gt;"
    assert highlight("I don’t  know", "don't know") == "I <mark>don’t  know</mark>"  # curly apostrophe, two spaces
