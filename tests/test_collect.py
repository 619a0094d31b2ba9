"""`collect` as a pure function over database rows, the snapshot files, consent rules and study validation.

The end-to-end path through a real server is in test_workflow.py; these pin the rules case by case, fast.
"""

from __future__ import annotations

import json
import uuid

import pytest
from conftest import STUDY, codigit

from codigit.errors import CodigitError
from codigit.records import read_snapshot, write_snapshot
from codigit.rules import consent_rule
from codigit.snapshot import build_snapshot
from codigit.study import load_study

S = load_study(STUDY)
T1, T2, T3 = "2026-05-01 10:00:00.000000", "2026-05-02 10:00:00.000000", "2026-05-03 10:00:00.000000"


def vals(**answers) -> str:
    return json.dumps({k: {"value": v} for k, v in answers.items()})


def story_row(author, prompt="A prompt", story="A story", record=None, by=None, role="annotator"):
    answers = vals(prompt=prompt, story=story)
    return (author, "stories", record or uuid.uuid4().hex, "invitation-open", "{}", by or author, role, answers, T1)


def about_row(who, **answers):
    return (who, "about-you", uuid.uuid4().hex, "about-you", "{}", who, "annotator", vals(**answers), T1)


def consent_row(who, version, at, **answers):
    return (who, "consent", uuid.uuid4().hex, f"consent-{version}", "{}", who, "annotator", vals(**answers), at)


def review_row(story_id, reviewer, prompt="A prompt", story="A story", role="annotator", **answers):
    answers = {"rating": 4, "decision": "include", **answers}
    fields = json.dumps({"prompt": prompt, "story": story})
    return ("codigit", "review-1", uuid.uuid4().hex, story_id, fields, reviewer, role, vals(**answers), T2)


def ledger_row(who):
    fields = json.dumps({"event": "withdrawal", "participant": who, "at": T3, "reason": "x"})
    return ("codigit-organisers", "ledger", uuid.uuid4().hex, f"withdrawal-{who}", fields, None, None, None, None)


def test_only_the_participants_own_submitted_answers_count():
    rows = [
        story_row("p-a"),
        story_row("p-a", story="Organiser trying the form", by="owner", role="owner"),
        ("p-a", "stories", uuid.uuid4().hex, "invitation-work", "{}", None, None, None, None),  # unanswered
    ]
    snap = build_snapshot(rows, S, "test")
    assert [(s.author, s.story) for s in snap.stories] == [("p-a", "A story")]


def test_latest_consent_answer_wins_and_names_are_kept_only_when_asked_for():
    rows = [
        consent_row("p-a", "1.0", T1, training="yes", public="yes", attribution="name", attribution_name=" Ada  L. "),
        consent_row("p-a", "1.1", T2, training="yes", public="no", attribution="none", attribution_name="Ada"),
        consent_row("p-b", "1.0", T1, training="yes", public="yes", attribution="name", attribution_name=" Bo  S. "),
    ]
    consent = {c.participant: c for c in build_snapshot(rows, S, "test").consent}
    assert (consent["p-a"].version, consent["p-a"].public, consent["p-a"].attribution_name) == ("1.1", False, None)
    assert consent["p-a"].given_at == "2026-05-02T10:00:00.000000Z"
    assert consent["p-b"].attribution_name == "Bo S."


@pytest.mark.parametrize(
    ("training", "public", "attribution", "name", "message"),
    [
        (False, True, "none", "", "public_without_training"),
        (True, True, "name", "", "credit_without_name"),
        (True, False, "name", "Ada", "credit_without_public"),
        (True, True, "name", "x" * 101, "name_too_long"),
    ],
)
def test_invalid_consent_combinations(training, public, attribution, name, message):
    broken = consent_rule(_consent_values(training, public, attribution, name), S.consent)
    assert broken is not None and broken.rule == message


@pytest.mark.parametrize(
    ("training", "public", "attribution", "name"),
    [(False, False, "none", ""), (True, False, "none", ""), (True, True, "none", ""), (True, True, "name", "Ada")],
)
def test_valid_consent_combinations(training, public, attribution, name):
    assert consent_rule(_consent_values(training, public, attribution, name), S.consent) is None


def _consent_values(training: bool, public: bool, attribution: str, name: str) -> dict[str, str]:
    yes_no = {True: "yes", False: "no"}
    return {"training": yes_no[training], "public": yes_no[public], "attribution": attribution,
            "attribution_name": name}  # fmt: skip


def test_invalid_consent_is_a_problem_and_no_consent():
    rows = [consent_row("p-a", "1.0", T1, training="no", public="yes", attribution="none")]
    snap = build_snapshot(rows, S, "test")
    assert snap.consent == [] and snap.meta.excluded == {"consent_invalid": 1}
    assert [(p.participant, p.what) for p in snap.meta.problems] == [("p-a", "consent")]


def test_positionality_prefer_not_to_say_wins_and_use_no_keeps_nothing():
    about = {"use": "yes", "pronouns": ["they", "prefer_not_to_say"], "region": "europe", "self_description": " "}
    rows = [
        about_row("p-a", **about),
        about_row("p-b", use="no", region="asia"),
    ]
    snap = build_snapshot(rows, S, "test")
    assert [(p.participant, p.answers) for p in snap.positionality] == [
        ("p-a", {"pronouns": ["prefer_not_to_say"], "region": "europe"})
    ]
    assert snap.meta.excluded == {"positionality_not_for_use": 1}


@pytest.mark.parametrize(
    ("prompt", "story", "message"),
    [
        ("", "A story", "empty prompt"),
        ("A prompt", " \n ", "empty story"),
        ("p" * 1501, "A story", "prompt has 1501 characters"),
        ("A prompt", "s" * 6001, "story has 6001 characters"),
    ],
)
def test_empty_and_oversized_stories_are_problems_not_records(prompt, story, message):
    snap = build_snapshot([story_row("p-a", prompt, story)], S, "test")
    assert snap.stories == [] and snap.meta.excluded == {"stories_invalid": 1}
    assert message in snap.meta.problems[0].message


def test_reviews_self_review_changed_text_withdrawn_and_organisers():
    record = uuid.uuid4().hex
    story_id = str(uuid.UUID(record))
    rows = [
        story_row("p-a", story="Revised story", record=record),
        review_row(story_id, "p-a", story="First story"),  # the author, reviewing the version the round showed
        review_row(story_id, "p-b", story="First story", themes=["work", "identity"], flags=["harmful"]),
        review_row(story_id, "p-w"),  # withdrawn reviewer
        review_row(story_id, "owner", role="owner"),  # an organiser is not a reviewer
        review_row(str(uuid.uuid4()), "p-b"),  # a story not in the snapshot
        ledger_row("p-w"),
    ]
    snap = build_snapshot(rows, S, "test")
    assert snap.stories[0].changed_after_review
    by = {r.reviewer: r for r in snap.reviews}
    assert set(by) == {"p-a", "p-b"}
    assert by["p-a"].self_review and not by["p-b"].self_review
    assert by["p-b"].themes == ["identity", "work"] and by["p-b"].flags == ["harmful"]
    assert snap.meta.excluded == {"reviews_by_withdrawn": 1, "reviews_of_excluded_stories": 1}
    assert [w.participant for w in snap.withdrawals] == ["p-w"]


def test_withdrawn_author_leaves_out_everything_of_theirs():
    rows = [
        story_row("p-w"),
        consent_row("p-w", "1.0", T1, training="yes", public="yes", attribution="none"),
        about_row("p-w", use="yes", region="asia"),
        ledger_row("p-w"),
    ]
    snap = build_snapshot(rows, S, "test")
    assert not snap.stories and not snap.consent and not snap.positionality
    assert "p-w" not in snap.model_dump_json(exclude={"withdrawals"})
    assert snap.meta.excluded == {"consent_withdrawn": 1, "positionality_withdrawn": 1, "stories_withdrawn": 1}


def test_same_rows_same_records_in_any_order():
    rows = [story_row(f"p-{i}") for i in range(5)] + [consent_row("p-1", "1.0", T1, training="yes", public="no",
                                                                   attribution="none")]  # fmt: skip
    a, b = build_snapshot(rows, S, "x", "id"), build_snapshot(list(reversed(rows)), S, "x", "id")
    assert a.model_dump(exclude={"meta": {"created_at"}}) == b.model_dump(exclude={"meta": {"created_at"}})


def test_snapshot_round_trip_and_two_in_one_second(tmp_path):
    snap = build_snapshot([story_row("p-a"), review_row(str(uuid.uuid4()), "p-b")], S, "test", "20260501T100000Z")
    first, second = write_snapshot(snap, tmp_path), write_snapshot(snap, tmp_path)
    assert (first.name, second.name) == ("20260501T100000Z", "20260501T100000Z-2")
    assert (tmp_path / "LATEST").read_text().strip() == second.name
    again = read_snapshot(tmp_path)
    assert again.stories == snap.stories and again.meta.snapshot_id == second.name


def test_failed_write_leaves_no_partial_snapshot(tmp_path, monkeypatch):
    """Whatever breaks mid-write (here: the disk fills up on the third file), no folder is left half-written."""
    import builtins

    real_open, opened = builtins.open, []

    def failing_open(path, mode="r", *args, **kwargs):
        if "w" in mode and str(path).endswith(".jsonl"):
            opened.append(path)
            if len(opened) == 3:
                raise OSError(28, "No space left on device")
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", failing_open)
    with pytest.raises(CodigitError, match="No space left on device"):
        write_snapshot(build_snapshot([story_row("p-a")], S, "test"), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_corrupt_snapshot_is_a_one_line_error(tmp_path):
    path = write_snapshot(build_snapshot([story_row("p-a")], S, "test"), tmp_path)
    (path / "stories.jsonl").write_text('{"story_id": "truncated', encoding="utf-8")
    result = codigit("agreement", "--snapshot", str(tmp_path))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "not a readable snapshot" in result.stderr
    missing = codigit("agreement", "--snapshot", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "run `codigit collect` first" in missing.stderr


def test_agreement_without_reviews_says_so(tmp_path):
    write_snapshot(build_snapshot([story_row("p-a")], S, "test"), tmp_path)
    result = codigit("agreement", "--snapshot", str(tmp_path))
    assert result.returncode == 2 and "has no reviews" in result.stderr


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("    - name: public\n", "    - name: publik\n", "consent.questions: needs a label question named 'public'"),
        ("labels: {include: Include,", "labels: {accept: Include,", "question 'decision' must have exactly"),
        ("        prefer_not_to_say: Prefer not to say\n    - name: trans_experience", "    - name: trans_experience",
         "question 'gender_identity' needs a 'prefer_not_to_say' label"),
        ("      title: Age range\n", "      title: Age range\n      required: true\n", "are all optional"),
        ("      values: [1, 2, 3, 4, 5]\n", "", "`values` is for rating questions, and needed there"),
        ("  max_story_chars: 6000", "  max_story_chars: 0", "stories.max_story_chars: Input should be greater"),
    ],
)  # fmt: skip
def test_study_rules_are_one_line_errors(tmp_path, old, new, expected):
    text = STUDY.read_text(encoding="utf-8")
    assert old in text
    (tmp_path / "study.yaml").write_text(text.replace(old, new, 1), encoding="utf-8")
    line = codigit("collect", "--study", str(tmp_path / "study.yaml"), home=tmp_path).stderr.strip()
    assert line.count("\n") == 0 and expected in line, line


def test_collect_without_a_database_says_what_to_do(tmp_path):
    result = codigit("collect", "--study", str(STUDY), home=tmp_path / "empty")
    assert result.returncode == 2 and "codigit serve" in result.stderr
    env = {"ARGILLA_API_URL": "http://127.0.0.1:9", "ARGILLA_API_KEY": "k"}
    external = codigit("collect", "--study", str(STUDY), home=tmp_path, env=env)
    assert external.returncode == 2 and "--database-url" in external.stderr
    bad = codigit("collect", "--study", str(STUDY), "--database-url", "mysql://x/y", home=tmp_path)
    assert bad.returncode == 2 and "--database-url 'mysql://x/y'" in bad.stderr


def test_malformed_review_answers_are_problems_and_later_rounds_count_once(tmp_path):
    record = uuid.uuid4().hex
    story_id = str(uuid.UUID(record))
    rows = [
        story_row("p-a", record=record),
        review_row(story_id, "p-b", rating=None),  # a server whose form lets the rating be skipped
        review_row(story_id, "p-c", rating=5),
        review_row(story_id, "p-d", rating=2),
    ]
    round2 = review_row(story_id, "p-c", rating=4)
    rows.append((*round2[:1], "review-2", *round2[2:]))
    snap = build_snapshot(rows, S, "test")
    assert [(p.participant, p.what) for p in snap.meta.problems] == [("p-b", "review")]
    assert snap.meta.excluded == {"reviews_invalid": 1}
    write_snapshot(snap, tmp_path)
    report = codigit("agreement", "--snapshot", str(tmp_path), "--format", "json")
    assert report.returncode == 0, report.stderr  # p-c reviewed the story twice: one review counts
    assert json.loads(report.stdout)["reviews"] == 2
