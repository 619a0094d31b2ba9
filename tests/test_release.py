"""Releases: determinism, tamper detection, withdrawal, the personal-data gate, diff, card, loading.

Snapshots here are typed records written by the real `write_snapshot` (collect's own path is tested in
test_collect.py and test_workflow.py); every release goes through the real CLI. Governance (approvals, publishing,
`release affected`, concurrent decisions) is in test_release_governance.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from conftest import REPO, codigit
from release_data import (
    AT,
    base,
    board_policy,
    consent,
    ok,
    one_line_error,
    release,
    reviews,
    snapshot,
    story,
    with_roster,
)

from codigit.records import Positionality, write_snapshot
from codigit.release.build import manifest_hash
from codigit.release.card import suppress


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return with_roster(tmp_path)


@pytest.mark.slow
def test_same_inputs_give_byte_identical_parquet_and_hash(tmp: Path):
    snap = write_snapshot(snapshot(*base(60)), tmp / "snaps")
    ok(release(tmp, "0.1.0", snap))
    other = tmp / "again"
    ok(codigit("release", "0.1.0", "--snapshot", str(snap), "--out", str(other), "--roster", str(tmp / "roster.csv")))
    a, b = tmp / "releases" / "0.1.0", other / "0.1.0"
    for split in ("train", "test"):
        name = f"data/{split}-00000-of-00001.parquet"
        assert (a / name).read_bytes() == (b / name).read_bytes()
    ma, mb = (json.loads((p / "manifest.json").read_text()) for p in (a, b))
    assert ma["dataset_hash"] == mb["dataset_hash"] and ma["records"] == mb["records"]
    assert ma["counts"]["train"] + ma["counts"]["test"] == 60 and ma["counts"]["test"] > 0
    assert ma["pseudonyms"] == [f"p-{k:03d}" for k in range(7)]
    again = release(tmp, "0.1.0", snap)
    assert again.returncode == 2 and "already exists" in again.stderr


@pytest.mark.slow
def test_release_loads_with_plain_datasets_without_codigit(tmp: Path):
    snap = write_snapshot(snapshot(*base()), tmp / "snaps")
    ok(release(tmp, "0.1.0", snap))
    code = (
        "import sys, datasets\n"
        f"ds = datasets.load_dataset({str(tmp / 'releases' / '0.1.0')!r})\n"
        "row = ds['train'][0]\n"
        "assert [m['role'] for m in row['messages']] == ['user', 'assistant'], row\n"
        "assert 'codigit' not in sys.modules\n"
        "print(sum(split.num_rows for split in ds.values()))  # a split with no records is not declared\n"
    )
    env = {"HF_HOME": str(tmp / "hf"), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "20"


@pytest.mark.parametrize("collective", [False, True])
def test_parquet_is_written_byte_for_byte_as_datasets_writes_it(tmp_path: Path, monkeypatch, collective: bool):
    """pyarrow writes a release's files directly (seconds faster than `datasets`), in the bytes `datasets` 5 wrote
    them in before, row groups included, with the features it reads a release by."""
    import datasets
    from datasets import Features, List, Value

    from codigit.release import build

    features = Features({
        "id": Value("string"), "messages": List({"role": Value("string"), "content": Value("string")}),
        "prompt": Value("string"), "response": Value("string"), "themes": List(Value("string")),
        "review_count": Value("int32"), "review_mean_rating": Value("float64"), "review_include": Value("int32"),
        "review_revise": Value("int32"), "review_exclude": Value("int32"), "attribution": Value("string"),
        "public": Value("bool"), "language": Value("string"), "license": Value("string"),
        **({"collective": Value("string")} if collective else {}),
    })  # fmt: skip
    assert build.parquet_schema(collective)[0].equals(features.arrow_schema, check_metadata=True)
    rows = [{"id": f"{k:016x}", "messages": [{"role": "user", "content": f"Prompt {k}?"},
             {"role": "assistant", "content": "Zoë 😀 " * k}], "prompt": f"Prompt {k}?", "response": "Zoë 😀 " * k,
             "themes": ["work", "care"][: k % 3], "review_count": 3, "review_mean_rating": 4 + k / 3,
             "review_include": 2, "review_revise": 1, "review_exclude": 0, "attribution": "Ada L." if k % 2 else None,
             "public": k % 3 == 0, "language": "en", "license": "cc-by-4.0",
             **({"collective": "a" if k % 2 else None} if collective else {})} for k in range(300)]  # fmt: skip
    monkeypatch.setattr(build, "ROW_GROUP_BYTES", 200_000)  # several row groups, as 100 MB make in a large release
    monkeypatch.setattr(datasets.config, "MAX_ROW_GROUP_SIZE", "200KB")
    build.write_parquet(rows, tmp_path / "ours.parquet")
    datasets.disable_progress_bars()
    columns = {name: [row[name] for row in rows] for name in features}
    datasets.Dataset.from_dict(columns, features=features).to_parquet(str(tmp_path / "theirs.parquet"))
    assert pq.ParquetFile(tmp_path / "ours.parquet").metadata.num_row_groups > 3
    assert (tmp_path / "ours.parquet").read_bytes() == (tmp_path / "theirs.parquet").read_bytes()


def test_card_and_pyproject_state_the_oldest_datasets_that_loads_a_release(tmp: Path):
    import tomllib

    from codigit.release.build import DATASETS_MIN

    # datasets 3.6.0 fails on these files ("Feature type 'List' not found"); 4.0.0 loads them (checked by hand in
    # separate environments: this one has a single datasets version)
    pins = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert [d for d in pins if d.startswith("datasets")] == [f"datasets>={DATASETS_MIN},<6"]
    ok(release(tmp, "0.1.0", write_snapshot(snapshot(*base()), tmp / "snaps")))
    for view in ("", "public"):
        card = (tmp / "releases" / "0.1.0" / view / "README.md").read_text()
        assert f"plain `datasets` {DATASETS_MIN} or later" in card
        schema = pq.read_schema(tmp / "releases" / "0.1.0" / view / "data/train-00000-of-00001.parquet")
        assert '"_type": "List"' in schema.metadata[b"huggingface"].decode()  # what makes datasets < 4 fail


def test_card_is_valid_hub_yaml_and_suppresses_small_groups(tmp: Path):
    stories, review_list, consents = base(30)
    answers = ["woman"] * 4 + ["man"] * 2 + ["non_binary"]  # 7 authors: 4, 2, 1
    pos = [Positionality(participant=f"p-{k:03d}", answers={"gender_identity": a}, given_at=AT)
           for k, a in enumerate(answers)]  # fmt: skip
    ok(release(tmp, "0.1.0", write_snapshot(snapshot(stories, review_list, consents, positionality=pos), tmp / "s")))
    text = (tmp / "releases" / "0.1.0" / "README.md").read_text()
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["license"] == "cc-by-4.0" and front["configs"][0]["data_files"][0]["split"] == "train"
    from huggingface_hub import DatasetCard

    assert DatasetCard(text).data.to_dict()["pretty_name"] == "CoDIGIT community stories"
    section = text.split("### Author demographics")[1].split("###")[0]
    assert "| Woman | <5 |" in section and "| Man | <5 |" in section and "| Non-binary | <5 |" in section
    assert "| 4 |" not in section and "| 2 |" not in section and "| 1 |" not in section
    assert "Ada L." in (tmp / "releases" / "0.1.0" / "CONTRIBUTORS.md").read_text()


def test_suppression_hides_a_single_small_group_and_the_next_smallest():
    assert suppress({"a": 10, "b": 6, "c": 2}, 5) == {"a": "10", "b": "<5", "c": "<5"}
    assert suppress({"a": 10, "b": 6}, 5) == {"a": "10", "b": "6"}
    assert suppress({"a": 10, "b": 3, "c": 1}, 5) == {"a": "10", "b": "<5", "c": "<5"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("parquet", "was modified after the release"),
        ("readme", "README.md was modified"),
        ("manifest-hash", "manifest.json was edited"),
        ("manifest-pseudonyms", "manifest.json was edited"),
        ("manifest-record", "differs from the manifest"),  # manifest hash recomputed: the record check still holds
        ("missing", "data/train-00000-of-00001.parquet is missing"),
        ("extra", "data/train-00001-of-00001.parquet is not part of the release"),
        ("public", "public/README.md was modified"),
    ],
)
@pytest.mark.slow
def test_verify_detects_tampering(tmp: Path, change: str, message: str):
    ok(release(tmp, "0.1.0", write_snapshot(snapshot(*base()), tmp / "snaps")))
    path = tmp / "releases" / "0.1.0"
    assert "verified" in ok(codigit("release", "verify", str(path))).stdout
    manifest = json.loads((path / "manifest.json").read_text())
    if change == "parquet":
        table = pq.read_table(path / "data/train-00000-of-00001.parquet")
        rows = table.to_pylist()
        rows[0]["response"] += " (edited)"
        pq.write_table(table.from_pylist(rows, schema=table.schema), path / "data/train-00000-of-00001.parquet")
    elif change == "readme":
        (path / "README.md").write_text((path / "README.md").read_text() + "\nextra\n")
    elif change == "manifest-hash":
        manifest["dataset_hash"] = "0" * 64
    elif change == "manifest-pseudonyms":
        manifest["pseudonyms"] = manifest["pseudonyms"][1:]  # would hide someone from `release affected`
    elif change == "manifest-record":
        manifest["records"][0]["hash"] = "0" * 64
        manifest["manifest_hash"] = manifest_hash(manifest)
    elif change == "extra":
        shutil.copy(path / "data/train-00000-of-00001.parquet", path / "data/train-00001-of-00001.parquet")
    elif change == "public":
        (path / "public/README.md").write_text("edited\n")
    else:
        (path / "data/train-00000-of-00001.parquet").unlink()
    if change.startswith("manifest"):
        (path / "manifest.json").write_text(json.dumps(manifest))
    result = codigit("release", "verify", str(path))
    assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1


@pytest.mark.slow
def test_withdrawal_is_honoured_diffed_and_traced_to_runs(tmp: Path):
    stories, review_list, consents = base()
    first = write_snapshot(snapshot(stories, review_list, consents), tmp / "snaps")
    ok(release(tmp, "0.1.0", first))
    runs = tmp / "runs"  # none here: tests/test_handoff.py traces a real training run
    # p-003 withdraws; a newer snapshot knows it, and even a release from the old snapshot must honour it
    gone = {s.story_id for s in stories if s.author == "p-003"}
    later = [s for s in stories if s.author != "p-003"]
    changed = later[0].model_copy(update={"story": "A rewritten story, still kind."})
    kept_reviews = [r for r in review_list if r.story_id not in gone]
    kept_consent = [c for c in consents if c.participant != "p-003"]
    second = snapshot([changed, *later[1:]], kept_reviews, kept_consent, withdrawals=["p-003"], sid="20260601T100000Z",
                      gone=gone)  # fmt: skip
    write_snapshot(second, tmp / "snaps")
    ok(release(tmp, "0.2.0", tmp / "snaps"))
    ok(release(tmp, "0.1.1", first))  # the older snapshot, after the withdrawal is known
    for version in ("0.2.0", "0.1.1"):
        manifest = json.loads((tmp / "releases" / version / "manifest.json").read_text())
        assert "p-003" not in manifest["pseudonyms"]
        assert not gone & {r["story_id"] for r in manifest["records"]}
    assert json.loads((tmp / "releases/0.1.1/manifest.json").read_text())["excluded"]["withdrawn"] == len(gone)

    log = (tmp / "releases/0.2.0/CHANGELOG.md").read_text()
    assert "Since 0.1.0" in log and "text changed" in log
    diff = ok(codigit("release", "diff", "0.1.0", "0.2.0", "--out", str(tmp / "releases"))).stdout
    assert f"0 added, {len(gone)} removed, 1 changed" in diff
    assert diff.count(": withdrawn") == len(gone)

    public_log = (tmp / "releases/0.2.0/public/CHANGELOG.md").read_text()
    assert "Removed" in public_log and "withdrawn" not in public_log  # no reason next to a record the public saw
    board = ["--policy", str(board_policy(tmp, ["A", "B"]))]
    out = ["--out", str(tmp / "releases"), "--snapshots", str(tmp / "snaps"), "--push-to-hub", "org/x", *board]
    ok(codigit("release", "approve", "0.1.0", "--by", "A", "--out", str(tmp / "releases"), *board))
    ok(codigit("release", "approve", "0.1.0", "--by", "B", "--out", str(tmp / "releases"), *board))
    stale = codigit("release", "publish", "0.1.0", *out, "--dry-run-to", str(tmp / "pub"))
    assert stale.returncode == 2 and "have since withdrawn" in stale.stderr and not (tmp / "pub").exists()
    affected = ok(codigit("release", "affected", "p-003", "--out", str(tmp / "releases"), "--runs", str(runs))).stdout
    assert "release 0.1.0" in affected and "run " not in affected
    assert "0.2.0" not in affected and "0.1.1" not in affected


@pytest.mark.slow
def test_personal_data_gate_blocks_until_decided(tmp: Path):
    stories, review_list, consents = base(10)
    leaky = story(100, "p-001", "Write to me at zelda.q@example.org or call +44 20 7946 0958, says Quintero.")
    flagged = story(101, "p-002")
    snap = write_snapshot(snapshot([*stories, leaky, flagged],
                                   [*review_list, *reviews(leaky), *reviews(flagged, flags=["personal_data"])],
                                   consents), tmp / "snaps")  # fmt: skip
    blocked = release(tmp, "0.1.0", snap)
    assert blocked.returncode == 2 and "2 stories need an organiser's decision" in blocked.stderr
    assert "email: zelda.q@example.org" in blocked.stderr and "roster name: Quintero" in blocked.stderr
    assert "a reviewer flagged personal_data" in blocked.stderr
    assert not (tmp / "releases" / "0.1.0").exists()
    for story_id, decision in ((leaky.story_id, "exclude"), (flagged.story_id, "keep")):
        ok(codigit("release", "decide", story_id, decision, "--by", "Organiser A", "--note", "checked",
                   "--snapshot", str(snap), "--out", str(tmp / "releases")))  # fmt: skip
    ok(release(tmp, "0.1.0", snap))
    manifest = json.loads((tmp / "releases/0.1.0/manifest.json").read_text())
    assert manifest["excluded"]["flagged_personal_data"] == 1
    assert {(d["story_id"], d["decision"], d["by"]) for d in manifest["decisions"]} == {
        (leaky.story_id, "exclude", "Organiser A"), (flagged.story_id, "keep", "Organiser A")}  # fmt: skip
    assert flagged.story_id in {r["story_id"] for r in manifest["records"]}
    # a decision binds to the text it was made on: an edited story is stopped again
    edited = flagged.model_copy(update={"story": flagged.story + " More."})
    snap2 = write_snapshot(snapshot([*stories, edited], [*review_list, *reviews(edited, flags=["personal_data"])],
                                    consents, sid="20260601T100000Z"), tmp / "snaps")  # fmt: skip
    again = release(tmp, "0.2.0", snap2)
    assert again.returncode == 2 and "1 stories need" in again.stderr


def test_rejections_consent_and_duplicates_are_counted(tmp: Path):
    stories, review_list, consents = base(10)
    low = story(50, "p-001")
    dup = story(51, "p-002", stories[0].story).model_copy(update={"prompt": stories[0].prompt + "  "})
    private = story(52, "p-005")
    consents = [c for c in consents if c.participant != "p-005"] + [consent("p-005", training=False, public=False)]
    extra = [*reviews(low, ratings=(1, 2, 2), decisions=("exclude", "exclude", "include")), *reviews(dup)]
    snap = write_snapshot(snapshot([*stories, low, dup, private], [*review_list, *extra], consents), tmp / "s")
    ok(release(tmp, "0.1.0", snap))
    manifest = json.loads((tmp / "releases/0.1.0/manifest.json").read_text())
    assert manifest["excluded"]["rejected"] == 1 and manifest["excluded"]["duplicate"] == 1
    assert manifest["excluded"]["no_consent"] == 1 + sum(s.author == "p-005" for s in stories)
    assert "mean rating 1.67 below 3.0" in manifest["excluded_stories"][low.story_id]


def test_bad_release_input_is_one_line_and_writes_nothing(tmp: Path, monkeypatch):
    snap = write_snapshot(snapshot(*base()), tmp / "snaps")
    for args, message in [
        (("release", "v1", "--snapshot", str(snap)), "'v1' is not a semantic version"),
        (("release", "0.1.0", "--snapshot", str(tmp / "none")), "run `codigit collect` first"),
        (("release", "0.1.0", "--snapshot", str(snap), "--policy", str(tmp / "roster.csv")), "expected a mapping"),
        (("release", "verify", str(tmp)), "not a release"),
        (("release", "decide", "nope", "keep", "--by", "A", "--snapshot", str(snap)), "no story 'nope'"),
    ]:
        result = codigit(*args, "--out", str(tmp / "releases")) if args[1] != "verify" else codigit(*args)
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)
        assert result.stderr.count("\n") == 1
    policy = tmp / "policy.yaml"
    policy.write_text((REPO / "annotation/policy.yaml").read_text().replace("min_reviews:", "min_reveiws:"))
    bad = codigit("release", "0.1.0", "--snapshot", str(snap), "--policy", str(policy), "--out", str(tmp / "r"))
    assert bad.returncode == 2 and "min_reveiws: unknown key" in bad.stderr
    assert not (tmp / "releases").exists() and not (tmp / "r").exists()


def test_interrupted_release_leaves_no_folder(tmp: Path, monkeypatch):
    from codigit.errors import CodigitError
    from codigit.release import build
    from codigit.release.manage import make_release
    from codigit.release.policy import load_policy
    from codigit.study import load_study

    snap = write_snapshot(snapshot(*base(60)), tmp / "snaps")  # 60: both splits have records
    calls = []

    def failing(rows, path):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(rows, path)

    real = build.write_parquet
    monkeypatch.setattr(build, "write_parquet", failing)
    with pytest.raises(CodigitError, match=r"0\.1\.0: could not be written \(No space left on device\); nothing"):
        make_release("0.1.0", snap, load_policy(REPO / "annotation/policy.yaml"),
                     load_study(REPO / "annotation/study.yaml"), tmp / "releases", None)  # fmt: skip
    assert not (tmp / "releases").exists()  # no release, and not even the empty folder it made for one


def test_story_edited_after_review_waits_for_a_review_of_its_new_text(tmp: Path):
    stories, review_list, consents = base(10)
    edited = stories[0].story_id
    review_list = [r.model_copy(update={"current_text": False}) if r.story_id == edited else r for r in review_list]
    again = [
        r.model_copy(update={"round": "2", "submitted_at": "2026-06-01T00:00:00.000000Z"}) for r in review_list[3:6]
    ]
    ok(release(tmp, "0.1.0", write_snapshot(snapshot(stories, [*review_list, *again], consents), tmp / "s")))
    manifest = json.loads((tmp / "releases/0.1.0/manifest.json").read_text())
    assert "0 reviews, policy needs 2" in manifest["excluded_stories"][edited]
    second = stories[1].story_id  # reviewed in rounds 1 and 2 by the same three people: counted once each
    row = next(r for r in pq.read_table(tmp / "releases/0.1.0/data/train-00000-of-00001.parquet").to_pylist()
               if r["id"] == next(x["id"] for x in manifest["records"] if x["story_id"] == second))  # fmt: skip
    assert row["review_count"] == 3


def test_roster_is_required_for_the_scan_unless_turned_off(tmp: Path):
    snap = write_snapshot(snapshot(*base()), tmp / "snaps")
    args = ["release", "0.1.0", "--snapshot", str(snap), "--out", str(tmp / "releases")]
    missing = codigit(*args, "--roster", str(tmp / "nope.csv"))
    assert missing.returncode == 2 and "--no-roster" in missing.stderr
    (tmp / "bad.csv").write_text("email\nz@example.org\n")
    nameless = codigit(*args, "--roster", str(tmp / "bad.csv"))
    assert nameless.returncode == 2 and "no `name` column" in nameless.stderr
    ok(codigit("release", "--out", str(tmp / "releases"), "0.1.0", "--snapshot", str(snap), "--no-roster"))


@pytest.mark.slow
def test_damaged_side_files_and_strays_are_one_line_errors_or_ignored(tmp: Path):
    snap = write_snapshot(snapshot(*base()), tmp / "snaps")
    (tmp / "releases" / "public").mkdir(parents=True)  # a stray folder with a manifest must not block releases
    (tmp / "releases" / "public" / "manifest.json").write_text("{}")
    ok(release(tmp, "0.1.0", snap))
    (tmp / "releases" / "decisions.jsonl").write_bytes(b"\xff\xfe not json\n")
    broken = release(tmp, "0.2.0", snap)
    assert broken.returncode == 2 and "damaged decisions file" in broken.stderr and broken.stderr.count("\n") == 1
    (tmp / "releases" / "decisions.jsonl").unlink()
    (tmp / "releases" / "0.1.0" / "approvals.jsonl").write_text('["not", "an", "object"]\n')
    policy = str(board_policy(tmp, ["A", "B"]))
    bad = codigit("release", "approve", "0.1.0", "--by", "A", "--out", str(tmp / "releases"), "--policy", policy)
    assert bad.returncode == 2 and "damaged approvals file" in bad.stderr
    empty = write_snapshot(snapshot([], [], []), tmp / "empty")
    none = release(tmp, "0.2.0", empty)
    assert none.returncode == 2 and "no story qualifies" in none.stderr and not (tmp / "releases/0.2.0").exists()


@pytest.mark.slow
def test_diff_of_two_public_views_matches_records_by_id(tmp: Path):
    stories, review_list, consents = base()
    ok(release(tmp, "0.1.0", write_snapshot(snapshot(stories, review_list, consents), tmp / "snaps")))
    gone = {s.story_id for s in stories if s.author == "p-003"}
    kept = [s for s in stories if s.author != "p-003"]
    edited = kept[0].model_copy(update={"story": "A rewritten story, still kind."})
    new = story(200, "p-001")
    later = snapshot([edited, *kept[1:], new], [r for r in review_list if r.story_id not in gone] + reviews(new),
                     consents, withdrawals=["p-003"], sid="20260601T100000Z", gone=gone)  # fmt: skip
    ok(release(tmp, "0.2.0", write_snapshot(later, tmp / "snaps")))
    ids = {v: {r["id"] for r in json.loads((tmp / "releases" / v / "public/manifest.json").read_text())["records"]}
           for v in ("0.1.0", "0.2.0")}  # fmt: skip
    added, removed = ids["0.2.0"] - ids["0.1.0"], ids["0.1.0"] - ids["0.2.0"]
    assert (len(added), len(removed)) == (2, len(gone) + 1)  # the edited story is one removal and one addition
    out = ok(codigit("release", "diff", "0.1.0/public", "0.2.0/public", "--out", str(tmp / "releases"))).stdout
    assert f"{len(added)} added, {len(removed)} removed, 0 changed" in out
    assert all(f"`{i}`" in out for i in added | removed) and "withdrawn" not in out and "authors:" not in out


@pytest.mark.slow
def test_release_after_one_without_a_public_view(tmp: Path):
    stories, review_list, consents = base()
    policy = ["--policy", str(board_policy(tmp, [], required=0))]
    ok(release(tmp, "0.1.0", write_snapshot(snapshot(stories, review_list, consents), tmp / "snaps"), *policy))
    old = tmp / "releases/0.1.0"  # made into a release as codigit wrote them before public views: one that verifies
    shutil.rmtree(old / "public")
    manifest = json.loads((old / "manifest.json").read_text())
    manifest["files"] = {name: h for name, h in manifest["files"].items() if not name.startswith("public/")}
    manifest["manifest_hash"] = manifest_hash(manifest)
    (old / "manifest.json").write_text(json.dumps(manifest))
    ok(codigit("release", "verify", str(old)))
    later = snapshot([*stories, story(300, "p-001")], [*review_list, *reviews(story(300, "p-001"))], consents,
                     sid="20260601T100000Z")  # fmt: skip
    ok(release(tmp, "0.2.0", write_snapshot(later, tmp / "snaps"), *policy))
    assert "1 added, 0 removed" in (tmp / "releases/0.2.0/CHANGELOG.md").read_text()
    assert "First release: 21 records" in (tmp / "releases/0.2.0/public/CHANGELOG.md").read_text()
    ok(release(tmp, "0.3.0", write_snapshot(later, tmp / "snaps2"), *policy))  # now a public view to compare with
    assert "Since 0.2.0" in (tmp / "releases/0.3.0/public/CHANGELOG.md").read_text()
    one_line_error(codigit("release", "publish", "0.1.0", "--push-to-hub", "org/x", "--out", str(tmp / "releases"),
                           *policy, "--dry-run-to", str(tmp / "p")),
                   "0.1.0 has no public view")  # fmt: skip


def test_reviews_by_someone_who_has_since_withdrawn_no_longer_count(tmp: Path):
    """A reviewer withdraws after the snapshot was taken (noted beside the snapshots by `participants withdraw`):
    a release from that snapshot judges and describes every story without their reviews."""
    from codigit.records import mirror_withdrawal

    stories, review_list, consents = base(10)
    snap_dir = write_snapshot(snapshot(stories, review_list, consents), tmp / "snapshots")
    mirror_withdrawal(tmp / "snapshots", "r-2", AT)
    ok(release(tmp, "0.1.0", snap_dir))
    rows = pq.read_table(tmp / "releases/0.1.0/data/train-00000-of-00001.parquet").to_pylist()
    assert rows and {(r["review_count"], r["review_mean_rating"], r["review_revise"]) for r in rows} == {(2, 4.5, 0)}
