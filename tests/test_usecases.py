"""The use-case register through the real CLI and its file: proposals, the board's decisions (only by a board
member, always with a reason), the list, and the model card's section, which refuses to claim a use the board
declined or has not decided."""

from __future__ import annotations

import json
import re
import stat

import pytest
from conftest import REPO, codigit

from codigit.errors import CodigitError
from codigit.usecases import FILE, UseCasesSpec, card_section, claimed, problem, propose, register

SPEC = UseCasesSpec(max_title_chars=20, max_text_chars=50)
STORYTIME = {"title": "Story time", "who": "Librarians", "purpose": "Reading prompts for children's groups",
             "not_for": "Grading children's writing"}  # fmt: skip
ADS = {"title": "Ad copy", "who": "A marketing firm", "purpose": "Writing advertisements", "not_for": "-"}


@pytest.fixture
def home(tmp_path):
    (tmp_path / "home").mkdir()
    policy = REPO / "annotation" / "policy.yaml"
    (tmp_path / "policy.yaml").write_text(f"extends: {policy}\nboard: [Ana Board, Ben Board]\n", encoding="utf-8")
    return tmp_path / "home"


def decide(home, uid, decision, by="ana board", reason="It serves the community"):
    return codigit("usecases", "decide", uid, decision, "--by", by, "--reason", reason, "--policy",
                   str(home.parent / "policy.yaml"), home=home)  # fmt: skip


@pytest.mark.parametrize(
    ("values", "rule"),
    [
        ({**STORYTIME, "who": "  "}, ("rules.usecase_empty", {})),
        ({**STORYTIME, "title": "x" * 21}, ("rules.usecase_too_long", {"limit": 20})),
        ({k: v for k, v in STORYTIME.items() if k != "not_for"}, ("rules.usecase_empty", {})),
        (STORYTIME, None),
    ],  # fmt: skip
    ids=["blank", "too-long", "missing", "fine"],
)
def test_a_proposal_must_say_every_part_within_its_limit(values, rule):
    assert problem(values, SPEC) == rule


def test_the_board_decides_with_a_reason_and_the_latest_decision_counts(home):
    first, second = propose(home, "p-aaaaaaaaaa", STORYTIME), propose(home, "p-bbbbbbbbbb", ADS)
    assert stat.S_IMODE((home / FILE).stat().st_mode) == 0o600  # it links proposals to pseudonyms
    listed = codigit("usecases", home=home)
    assert listed.returncode == 0 and listed.stdout.count("proposed") == 2 and "p-aaaaaaaaaa" not in listed.stdout
    outsider = decide(home, first, "approve", by="Someone Else")
    assert outsider.returncode == 2 and outsider.stderr.count("\n") == 1, outsider.stderr
    no_reason = decide(home, first, "approve", reason="  ")
    assert no_reason.returncode == 2 and "--reason is needed" in no_reason.stderr
    unknown = decide(home, "u-0000000000", "approve")
    assert unknown.returncode == 2 and "no use case 'u-0000000000'" in unknown.stderr
    assert decide(home, first, "decline", reason="Not yet").returncode == 0
    approved = decide(home, first, "approve")  # the board changed its mind: the latest decision counts
    assert approved.returncode == 0 and f"use case {first} ('Story time'): approved by Ana Board" in approved.stdout
    assert decide(home, second, "decline", by="BEN BOARD", reason="Not what we write for").returncode == 0
    states = {use.id: (use.state, use.decided_by, use.reason) for use, _ in register(home)}
    assert states == {first: ("approved", "Ana Board", "It serves the community"),
                      second: ("declined", "Ben Board", "Not what we write for")}  # fmt: skip
    entries = [json.loads(line) for line in (home / FILE).read_text().splitlines()]
    assert [e["event"] for e in entries] == ["proposed", "proposed", "decided", "decided", "decided"]  # all kept


def test_the_card_lists_the_register_and_claims_only_approved_uses(home):
    yes, no, waiting = (propose(home, f"p-{n}" * 2, v) for n, v in enumerate((STORYTIME, ADS, {**ADS, "title": "W"})))
    assert decide(home, yes, "approve").returncode == 0
    assert decide(home, no, "decline", reason="Not what we write for").returncode == 0
    for claim, why in ((no, "was declined by the board (Not what we write for)"), (waiting, "awaits the board"),
                       ("u-nothing", "is not in the register")):  # fmt: skip
        with pytest.raises(CodigitError, match=re.escape(f"use case {claim} {why}")):
            claimed(home, [claim])
        refused = codigit("export", str(home.parent / "no-run"), "--claim", claim, home=home)
        assert refused.returncode == 2 and why in refused.stderr and refused.stderr.count("\n") == 1
    decided, claims = claimed(home, [yes])
    card = card_section(decided, claims)
    assert f"- **Story time** ({yes}): Reading prompts for children's groups." in card
    assert f"| Ad copy ({no}) | declined |" in card and "Do not use this model for the declined uses" in card
    assert "W (" not in card and "p-0" not in card  # undecided uses and pseudonyms stay out
