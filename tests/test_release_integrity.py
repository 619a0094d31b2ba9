"""What a release can trust: a policy that names only what the study has, a snapshot as `collect` wrote it, flags
that outlive their reviewer's withdrawal, a public view whose counts add up, and numeric options in range.

Snapshots are written by the real `write_snapshot`; releases go through the real CLI. The withdrawal path runs on a
real embedded server of its own: participants review through the UI's endpoints, one withdraws, `collect` reads
the database.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
from conftest import REPO, STUDY, add_participants, codigit, own_study_server
from release_data import AT, base, consent, ok, one_line_error, release, reviews, snapshot, story, with_roster

from codigit.errors import CodigitError
from codigit.records import META_FILE, mirror_withdrawal, read_snapshot, write_snapshot
from codigit.release.policy import check_policy, load_policy
from codigit.rules import text_sha
from codigit.snapshot import KEPT_FLAGS, KeptFlags, build_snapshot
from codigit.study import load_study

POLICY = REPO / "annotation" / "policy.yaml"


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return with_roster(tmp_path)


def edited_policy(tmp: Path, old: str, new: str) -> Path:
    text = POLICY.read_text(encoding="utf-8")
    assert old in text
    (tmp / "policy.yaml").write_text(text.replace(old, new, 1), encoding="utf-8")
    return tmp / "policy.yaml"


# 1. The policy names only what the study has


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("blocking_flags: [harmful, off_topic]", "blocking_flags: [harmfull, off_topic]",
         "blocking_flags: 'harmfull' is not a flag of the study's review form (did you mean 'harmful'?); its flags: "
         "personal_data, harmful, off_topic"),
        ("personal_data_flag: personal_data", "personal_data_flag: personal-data",
         "personal_data_flag: 'personal-data' is not a flag of the study's review form (did you mean "
         "'personal_data'?)"),
        ("blocking_flags: [harmful, off_topic]", "blocking_flags: [harmful, spam]",
         "blocking_flags: 'spam' is not a flag of the study's review form; its flags:"),
        ("min_mean_rating: 3.0", "min_mean_rating: 30", "min_mean_rating: 30.0 is above the review form's highest"),
    ],
)  # fmt: skip
def test_a_policy_naming_what_the_study_lacks_is_refused_in_one_line(tmp: Path, old: str, new: str, expected: str):
    snap = write_snapshot(snapshot(*base()), tmp / "snaps")
    policy = edited_policy(tmp, old, new)
    result = release(tmp, "0.1.0", snap, "--policy", str(policy))
    one_line_error(result, f"{policy}: {expected}")
    assert not (tmp / "releases").exists()
    # the library path (the demo's) refuses it too, before reading the snapshot
    from codigit.release.manage import make_release

    study = load_study(STUDY)
    with pytest.raises(CodigitError, match=re.escape(expected)):
        make_release("0.1.0", tmp / "nowhere", load_policy(policy), study, tmp / "releases", None)


def test_the_shipped_policy_names_only_what_the_shipped_study_has():
    check_policy(load_policy(POLICY), load_study(STUDY))


# 2. A snapshot is released only as `collect` wrote it


@pytest.mark.parametrize("part", ["stories", "reviews", "consent"])
def test_a_hand_edited_snapshot_is_refused_and_nothing_is_written(tmp: Path, part: str):
    snap = write_snapshot(snapshot(*base()), tmp / "snaps")
    file = snap / f"{part}.jsonl"
    lines = file.read_text(encoding="utf-8").splitlines()
    record = json.loads(lines[0])
    if part == "stories":  # a new text, valid JSON: it would go out with the reviews of the old one
        record["story"] = "A different story that nobody reviewed."
    elif part == "reviews":
        record["rating"] = 1
    else:
        record["public"] = not record["public"]
    file.write_text("\n".join([json.dumps(record), *lines[1:]]) + "\n", encoding="utf-8")
    result = release(tmp, "0.1.0", snap)
    one_line_error(result, f"{file}: changed since `codigit collect` wrote it")
    assert not (tmp / "releases").exists()
    other = codigit("agreement", "--snapshot", str(snap))  # every reader refuses it, not only release
    one_line_error(other, f"{part}.jsonl: changed since")


def test_a_snapshot_without_hashes_is_refused_by_release_but_still_read(tmp: Path):
    snap = write_snapshot(snapshot(*base()), tmp / "snaps")
    meta = json.loads((snap / META_FILE).read_text(encoding="utf-8"))
    assert set(meta["files"]) == {f"{p}.jsonl" for p in ("stories", "reviews", "consent", "positionality",
                                                         "withdrawals", "contributions", "text_reviews")}  # fmt: skip
    del meta["files"]  # as codigit wrote snapshots before it recorded hashes
    (snap / META_FILE).write_text(json.dumps(meta), encoding="utf-8")
    one_line_error(release(tmp, "0.1.0", snap), "snapshot without file hashes")
    assert "run `codigit collect` for a new snapshot" in release(tmp, "0.1.0", snap).stderr
    assert not (tmp / "releases").exists()
    assert len(read_snapshot(snap).stories) == 20  # analysis of an old snapshot still works
    ok(codigit("agreement", "--snapshot", str(snap), "--n-boot", "10"))


# 3. Flags outlive their reviewer's withdrawal


def withdrawn_flagger_snapshot():
    """Three stories everyone includes; r-0 flags the first harmful and the second personal data."""
    stories = [story(i, "p-001") for i in range(3)]
    flags = [["harmful"], ["personal_data"], []]
    review_list = [r for s, f in zip(stories, flags, strict=True)
                   for r in reviews(s, decisions=("include",) * 3, flags=f)]  # fmt: skip
    return stories, review_list, [consent("p-001")]


@pytest.mark.slow
def test_a_reviewer_who_withdraws_after_the_snapshot_still_flags(tmp: Path):
    """r-0 withdraws after the snapshot was taken (noted beside it): their reviews no longer count, their flags do."""
    stories, review_list, consents = withdrawn_flagger_snapshot()
    snap = write_snapshot(snapshot(stories, review_list, consents), tmp / "snaps")
    mirror_withdrawal(tmp / "snaps", "r-0", AT)
    blocked = release(tmp, "0.1.0", snap)
    assert blocked.returncode == 2 and "1 stories need an organiser's decision" in blocked.stderr
    assert f"story {stories[1].story_id}: a reviewer flagged personal_data" in blocked.stderr
    ok(codigit("release", "decide", stories[1].story_id, "exclude", "--by", "Organiser", "--snapshot", str(snap),
               "--out", str(tmp / "releases")))  # fmt: skip
    ok(release(tmp, "0.1.0", snap))
    manifest = json.loads((tmp / "releases/0.1.0/manifest.json").read_text())
    assert manifest["excluded_stories"][stories[0].story_id] == "rejected (flagged harmful)"
    assert [r["story_id"] for r in manifest["records"]] == [stories[2].story_id]
    assert not any(b"r-0" in p.read_bytes() for p in (tmp / "releases/0.1.0").rglob("*") if p.is_file())


def test_collect_keeps_withdrawn_reviewers_flags_as_counts_on_the_text_they_saw():
    study = load_study(STUDY)
    record = uuid.uuid4().hex
    story_id = str(uuid.UUID(record))
    answers = json.dumps({"prompt": {"value": "A prompt"}, "story": {"value": "A story"}})
    rows = [("p-a", "stories", record, "invitation-open", "{}", "p-a", "annotator", answers, "2026-05-01 10:00:00")]

    def ledger(fields: dict) -> tuple:
        return ("codigit-organisers", "ledger", uuid.uuid4().hex, "x", json.dumps(fields), None, None, None, None)

    def kept(who: str, flags: list[str], text: str = "A story") -> tuple:
        entry = KeptFlags(story_id=story_id, text_sha=text_sha("A prompt", text), flags=flags)
        return ledger({"event": KEPT_FLAGS, "participant": who, "at": AT, "reason": entry.model_dump_json()})

    for who in ("p-x", "p-y", "p-z"):
        rows.append(ledger({"event": "withdrawal", "participant": who, "at": AT, "reason": "x"}))
    rows += [
        kept("p-x", ["harmful", "personal_data"]),
        kept("p-x", ["harmful"]),  # the same reviewer in a later round: counted once
        kept("p-y", ["harmful"], text="An earlier story"),  # on a text the story no longer has
        kept("p-n", ["off_topic"]),  # not withdrawn: their review itself counts, nothing is kept
    ]
    still = json.dumps({"prompt": "A prompt", "story": "A story"})  # a review the withdrawal did not delete
    flagged = json.dumps({"rating": {"value": 2}, "decision": {"value": "exclude"}, "flags": {"value": ["harmful"]}})
    rows.append(("codigit", "review-1", uuid.uuid4().hex, story_id, still, "p-z", "annotator", flagged, AT))
    rows.append(ledger({"event": KEPT_FLAGS, "participant": "p-z", "at": AT, "reason": "not json"}))
    snap = build_snapshot(rows, study, "test")
    assert snap.stories[0].withdrawn_flags == {"harmful": 2, "personal_data": 1}
    assert snap.reviews == [] and snap.meta.excluded["reviews_by_withdrawn"] == 1
    assert [(p.participant, p.message.split(";")[0]) for p in snap.meta.problems] == [
        ("p-z", "unreadable kept flags in the ledger")]  # fmt: skip


REVIEWS = {"bea": (5, "include"), "cal": (4, "include"), "dan": (5, "include")}


@pytest.mark.slow
def test_a_flag_survives_its_reviewers_withdrawal_on_the_server(tmp_path: Path):
    """dan flags one story harmful and another personal data, then withdraws: `participants withdraw` deletes
    their reviews on the server, yet the next snapshot still stops both stories, and nothing of dan is released."""

    study = load_study(STUDY)
    texts = {"invitation-work": "Mara ran the lab...", "invitation-care": "Jonas and Lee...",
             "invitation-identity": "River chose the green coat..."}  # fmt: skip
    flags = {"invitation-work": ["harmful"], "invitation-care": ["personal_data"], "invitation-identity": []}
    with own_study_server(tmp_path / "home") as server:
        people = add_participants(server, {"ann": "Ann A", "bea": "Bea B", "cal": "Cal C", "dan": "Dan D"}, tmp_path)
        people["ann"].answer("consent", {"training": "yes", "public": "yes", "attribution": "none"})
        for invitation, text in texts.items():
            people["ann"].answer("stories", {"prompt": f"Prompt {invitation}?", "story": text}, invitation)
        ok(codigit("review", "open", "1", home=server.home))
        invitation_of = {text: invitation for invitation, text in texts.items()}
        for who, (rating, decision) in REVIEWS.items():
            p = people[who]
            for record in p.queue(p.dataset_id("review-1", study.workspace)):
                values = {"rating": rating, "decision": decision}
                if who == "dan" and (f := flags[invitation_of[record["fields"]["story"]]]):
                    values["flags"] = f
                p.submit(record["id"], values).raise_for_status()
        dan = people["dan"].username
        snaps = tmp_path / "snapshots"
        ok(codigit("participants", "withdraw", dan, "--snapshots", str(snaps), home=server.home))
        ok(codigit("collect", "--out", str(snaps), home=server.home))
    snap = read_snapshot(snaps)
    by_invitation = {s.invitation: s for s in snap.stories}
    assert {i: s.withdrawn_flags for i, s in by_invitation.items()} == {
        "invitation-work": {"harmful": 1},
        "invitation-care": {"personal_data": 1},
        "invitation-identity": {},
    }
    # dan's reviews are deleted on the server: the flags came through the ledger
    assert {r.reviewer for r in snap.reviews} == {people["bea"].username, people["cal"].username}
    assert "reviews_by_withdrawn" not in snap.meta.excluded
    for part in ("stories", "reviews"):
        assert dan not in (snaps / (snaps / "LATEST").read_text().strip() / f"{part}.jsonl").read_text()

    releases = tmp_path / "releases"
    blocked = codigit("release", "0.1.0", "--snapshot", str(snaps), "--out", str(releases), "--no-roster")
    care = by_invitation["invitation-care"].story_id
    assert blocked.returncode == 2 and f"story {care}: a reviewer flagged personal_data" in blocked.stderr
    ok(codigit("release", "decide", care, "exclude", "--by", "Organiser", "--snapshot", str(snaps),
               "--out", str(releases)))  # fmt: skip
    ok(codigit("release", "0.1.0", "--snapshot", str(snaps), "--out", str(releases), "--no-roster"))
    manifest = json.loads((releases / "0.1.0" / "manifest.json").read_text())
    work = by_invitation["invitation-work"].story_id
    assert manifest["excluded_stories"][work] == "rejected (flagged harmful)"
    assert [r["story_id"] for r in manifest["records"]] == [by_invitation["invitation-identity"].story_id]
    assert not any(dan.encode() in p.read_bytes() for p in (releases / "0.1.0").rglob("*") if p.is_file())


# 4. The public view's counts add up


@pytest.mark.slow
def test_public_view_counts_add_up(tmp: Path):
    stories, review_list, consents = base(30)
    consents = [c.model_copy(update={"public": False}) if c.participant == "p-002" else c for c in consents]
    consents = [c for c in consents if c.participant != "p-005"]  # no consent form: left out of both views
    low = story(40, "p-001")
    review_list += reviews(low, ratings=(1, 1, 2), decisions=("exclude",) * 3)
    ok(release(tmp, "0.1.0", write_snapshot(snapshot([*stories, low], review_list, consents), tmp / "snaps")))
    root = tmp / "releases" / "0.1.0"
    views = {view: json.loads((root / view / "manifest.json").read_text()) for view in ("", "public")}
    considered = len(stories) + 1
    for view, m in views.items():
        n = len(m["records"])
        assert m["counts"]["train"] + m["counts"]["test"] == n
        assert n + sum(m["excluded"].values()) == considered, (view, m["excluded"])
        card = (root / view / "README.md").read_text()
        assert f"Of {considered} stories considered, {n} are in this release" in card
        table = card.split("| left out because | stories |\n| --- | --- |\n")[1].split("\n\n")[0]
        assert sum(int(line.rsplit("|", 2)[1]) for line in table.splitlines()) == considered - n
    public, organisers = views["public"], views[""]
    assert public["counts"]["public"] == len(public["records"]) < len(organisers["records"])
    not_public = sum(s.author == "p-002" for s in stories)
    assert public["excluded"] == {**organisers["excluded"], "not_public": not_public}
    assert "| the author did not allow public release | " in (root / "public" / "README.md").read_text()
    ok(codigit("release", "verify", str(root)))


# 5. Numeric options out of range are one line


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--n-boot", "0"), "argument --n-boot: must be at least 1, not 0"),
        (("--n-boot", "-5"), "argument --n-boot: must be at least 1, not -5"),
        (("--n-boot", "many"), "argument --n-boot: 'many' is not a whole number"),
        (("--seed", "-1"), "argument --seed: must be at least 0, not -1"),
        (("--top", "-1"), "argument --top: must be at least 0, not -1"),
    ],
)
def test_agreement_numbers_out_of_range_are_one_line(tmp_path: Path, args: tuple[str, ...], expected: str):
    snap = write_snapshot(snapshot(*base(5)), tmp_path / "snaps")
    one_line_error(codigit("agreement", "--snapshot", str(snap), *args), expected)
