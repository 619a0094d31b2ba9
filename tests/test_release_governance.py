"""Release governance: board approvals, publishing (dry run; the Hub is a closed local port), which releases and
training runs hold a person's text (`release affected`), and organisers' decisions recorded at the same moment.
Every command goes through the real CLI on releases made from hand-built snapshots (release_data.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import codigit
from release_data import (
    base,
    board_policy,
    ok,
    one_line_error,
    release,
    snapshot,
    with_roster,
)

from codigit.records import write_snapshot


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return with_roster(tmp_path)


@pytest.mark.slow
def test_publish_needs_board_approvals_of_this_exact_release(tmp: Path):
    stories, review_list, consents = base()
    consents = [c.model_copy(update={"public": c.participant != "p-002"}) for c in consents]
    members = ["Board One", "Board Two", "Board Three"]
    strict = board_policy(tmp, members, required=3, name="strict.yaml")  # the policy the release was made under
    snap = write_snapshot(snapshot(stories, review_list, consents), tmp / "snaps")
    ok(release(tmp, "0.1.0", snap, "--policy", str(strict)))
    # the current policy asks for fewer approvals: both approve and publish count the stricter (3)
    out = ["--out", str(tmp / "releases"), "--policy", str(board_policy(tmp, members))]
    dry = ["--push-to-hub", "org/codigit", "--dry-run-to", str(tmp / "public")]
    one_line_error(codigit("release", "publish", "0.1.0", *dry, *out), "0 of the 3 board approvals")
    assert "1 of 3" in ok(codigit("release", "approve", "0.1.0", "--by", "Board One", *out)).stdout
    assert "already approved" in ok(codigit("release", "approve", "0.1.0", "--by", "board one", *out)).stdout
    # one person typing a second name: refused, nothing recorded
    one_line_error(codigit("release", "approve", "0.1.0", "--by", "B. One", *out), "'B. One' is not on the board")
    assert len((tmp / "releases/0.1.0/approvals.jsonl").read_text().splitlines()) == 1
    assert "2 of 3" in ok(codigit("release", "approve", "0.1.0", "--by", "Board Two", *out)).stdout
    one_line_error(codigit("release", "publish", "0.1.0", *dry, *out), "2 of the 3 board approvals")
    # someone who has left the board no longer counts
    ok(codigit("release", "approve", "0.1.0", "--by", "Board Three", *out))
    changed = board_policy(tmp, [*members[1:], "Board Four"], name="changed.yaml")
    left = ["--out", str(tmp / "releases"), "--policy", str(changed)]
    one_line_error(codigit("release", "publish", "0.1.0", *dry, *left), "2 of the 3 board approvals")
    assert "would upload" in ok(codigit("release", "publish", "0.1.0", *dry, *out)).stdout
    ok(codigit("release", "verify", str(tmp / "public")))  # the public view checks on its own
    public_manifest = json.loads((tmp / "public/manifest.json").read_text())
    private = {"pseudonyms", "public_pseudonyms", "excluded_stories", "decisions", "consent_versions"}
    assert not private & public_manifest.keys()
    assert all(set(r) == {"id", "hash", "split"} for r in public_manifest["records"])
    for file in (tmp / "public").rglob("*"):
        if file.is_file() and file.suffix != ".parquet":
            assert "p-00" not in file.read_text(), file  # no pseudonym anywhere in what is published
    public = [r for f in (tmp / "public/data").glob("*.parquet") for r in pq.read_table(f).to_pylist()]
    assert public and all(r["public"] for r in public)
    assert len(public) == sum(s.author != "p-002" for s in stories)


@pytest.mark.slow
def test_policies_without_required_approvals_and_a_shipped_policy_without_a_board(tmp: Path):
    open_policy = board_policy(tmp, [], required=0)  # a study that asks for no approvals publishes without any
    ok(release(tmp, "0.1.0", write_snapshot(snapshot(*base()), tmp / "snaps"), "--policy", str(open_policy)))
    out = ["--out", str(tmp / "releases"), "--push-to-hub", "org/x"]
    ok(codigit("release", "publish", "0.1.0", *out, "--policy", str(open_policy), "--dry-run-to", str(tmp / "p")))
    one_line_error(codigit("release", "approve", "0.1.0", "--by", "A", *out[:2], "--policy", str(open_policy)),
                   "lists no board")  # fmt: skip
    # the shipped policy asks for 2 approvals and names no board yet: publishing says what to fill in
    shipped = codigit("release", "publish", "0.1.0", *out, "--dry-run-to", str(tmp / "q"))
    one_line_error(shipped, "needs 2 board approvals but the release policy's board lists 0 names")
    duplicate = board_policy(tmp, ["Ann", "ann "], name="dup.yaml")
    one_line_error(codigit("release", "approve", "0.1.0", "--by", "Ann", *out[:2], "--policy", str(duplicate)),
                   "board: a name appears twice")  # fmt: skip


@pytest.mark.slow
def test_publish_without_token_or_network_is_one_line(tmp: Path):
    from codigit.server.serve import free_port

    ok(release(tmp, "0.1.0", write_snapshot(snapshot(*base()), tmp / "snaps")))
    policy = ["--policy", str(board_policy(tmp, ["A", "B"]))]
    for name in ("A", "B"):
        ok(codigit("release", "approve", "0.1.0", "--by", name, "--out", str(tmp / "releases"), *policy))
    args = ("release", "publish", "0.1.0", "--push-to-hub", "org/x", "--out", str(tmp / "releases"), *policy)
    # nothing can leave this machine: the Hub endpoint is a closed local port
    env = {"HF_HOME": str(tmp / "hf"), "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}"}
    one_line_error(codigit(*args, env={**env, "HF_TOKEN": ""}), "no Hugging Face token")
    unreachable = codigit(*args, env={**env, "HF_TOKEN": "hf_not_a_real_token"})
    one_line_error(unreachable, "publishing release 0.1.0 to org/x failed")


def provenance_on(version: str, dataset_hash: str) -> str:
    """A run's provenance.json as `codigit train` writes it (tests/test_handoff.py checks that on a real run)."""
    from codigit.handoff import Code, Hardware, Provenance, RecipeUsed, ReleaseUsed, Seeds

    return Provenance(
        release=ReleaseUsed(path=f"releases/{version}", version=version, dataset_hash=dataset_hash, split="train",
                            records=20),
        recipe=RecipeUsed(file="recipe.yaml", codigit={}, sft={}, model={}),
        seeds=Seeds(seed=0),
        code=Code(git_commit=None, git_dirty=False, versions={}),
        hardware=Hardware(platform="linux", cpu_count=2, gpus=[]),
    ).model_dump_json()  # fmt: skip


@pytest.mark.slow
def test_affected_finds_runs_on_the_public_view_and_reports_unreadable_provenance(tmp: Path):
    stories, review_list, consents = base()
    consents = [c.model_copy(update={"public": c.participant != "p-002"}) for c in consents]  # p-002: not public
    ok(release(tmp, "0.1.0", write_snapshot(snapshot(stories, review_list, consents), tmp / "snaps")))
    hashes = {view: json.loads((tmp / "releases/0.1.0" / view / "manifest.json").read_text())["dataset_hash"]
              for view in ("", "public")}  # fmt: skip
    assert hashes[""] != hashes["public"]  # training accepts either folder, and records the one it read
    runs = tmp / "runs"
    for run, content in {
        "on-release": provenance_on("0.1.0", hashes[""]),
        "on-public": provenance_on("0.1.0", hashes["public"]),
        "other": provenance_on("9.0.0", "0" * 64),
        "truncated": '{"release": {"version": "0.1.0", "datas',
        "a-list": "[1, 2]",
        "no-hash": '{"release": {"version": "0.1.0"}}',
    }.items():
        (runs / run).mkdir(parents=True)
        (runs / run / "provenance.json").write_text(content)
    where = ["--out", str(tmp / "releases"), "--runs", str(runs)]
    public_author = ok(codigit("release", "affected", "p-003", *where))
    listed = sorted(line.split()[1] for line in public_author.stdout.splitlines() if line.startswith("run "))
    assert listed == ["on-public", "on-release"]
    assert "run on-public trained on release 0.1.0 (public view)" in public_author.stdout
    warnings = public_author.stderr.splitlines()
    assert len(warnings) == 3 and all(w.startswith("codigit: warning: ") for w in warnings)
    assert all(f"runs/{run}/provenance.json" in public_author.stderr for run in ("truncated", "a-list", "no-hash"))
    private_author = ok(codigit("release", "affected", "p-002", *where)).stdout  # not in the public view
    assert "run on-release" in private_author and "on-public" not in private_author


def _decide_at_once(barrier, out: Path, snap: Path, story_id: str) -> None:
    from codigit.release.manage import decide

    barrier.wait()
    decide(out, snap, story_id, "keep", "Organiser", "")


def test_concurrent_decisions_are_all_kept(tmp: Path):
    import multiprocessing

    stories, review_list, consents = base(8)
    snap = write_snapshot(snapshot(stories, review_list, consents), tmp / "snaps")
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(len(stories))
    procs = [ctx.Process(target=_decide_at_once, args=(barrier, tmp / "releases", snap, s.story_id)) for s in stories]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * len(stories)
    lines = (tmp / "releases/decisions.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["story_id"] for line in lines) == sorted(s.story_id for s in stories)
