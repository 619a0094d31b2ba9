"""`codigit story ID`: what an organiser needs for the personal-data decision, from the real snapshot, decisions
file and roster, through the real CLI."""

from __future__ import annotations

from conftest import codigit
from release_data import base, consent, reviews, snapshot, story, with_roster

from codigit.records import write_snapshot


def test_story_shows_text_consent_reviews_flags_scan_and_decision(tmp_path):
    with_roster(tmp_path)  # Zelda Quintero is on the roster
    stories, review_list, consents = base(4)
    mention = story(9, author="p-002", text="Zelda Quintero wrote to me at zq@example.org about her son's school.")
    mention = mention.model_copy(update={"withdrawn_flags": {"personal_data": 1}})
    flagged = reviews(mention, flags=("personal_data",))
    consents = [c for c in consents if c.participant != "p-002"] + [consent("p-002", public=False, name="Bo")]
    snap = write_snapshot(snapshot([*stories, mention], [*review_list, *flagged], consents), tmp_path / "snaps")
    show = ["story", mention.story_id, "--snapshot", str(snap.parent), "--releases", str(tmp_path / "releases")]

    first = codigit(*show, "--roster", str(tmp_path / "roster.csv"))
    assert first.returncode == 0, first.stderr
    out = first.stdout
    assert f"story {mention.story_id} (snapshot 20260501T100000Z)" in out
    assert "author p-002 · invitation invitation-open" in out
    assert "consent 1.0: training yes, public no, credited as 'Bo'" in out
    assert "Zelda Quintero wrote to me at zq@example.org" in out
    assert "reviews: 3 (3 counted" in out and "r-0 · rating 4 · include · flags personal_data" in out
    assert "flags kept from reviewers who withdrew: personal_data ×1" in out
    assert "personal-data scan (with the roster's names): email: zq@example.org; roster name: Zelda Quintero" in out
    assert "decision:" not in out

    decided = codigit("release", "decide", mention.story_id, "exclude", "--by", "Organiser A", "--snapshot",
                      str(snap.parent), "--out", str(tmp_path / "releases"))  # fmt: skip
    assert decided.returncode == 0, decided.stderr
    again = codigit(*show, "--no-roster")
    assert again.returncode == 0, again.stderr
    assert "decision: exclude by Organiser A at " in again.stdout and "no longer applies" not in again.stdout
    assert "personal-data scan (without the roster's names): email: zq@example.org" in again.stdout


def test_unknown_story_is_one_line(tmp_path):
    snap = write_snapshot(snapshot(*base(2)), tmp_path / "snaps")
    result = codigit("story", "nope", "--snapshot", str(snap.parent), "--no-roster")
    assert result.returncode == 2
    error = "codigit: error: no story 'nope' in snapshot 20260501T100000Z (`codigit collect` first?)"
    assert result.stderr.strip() == error
