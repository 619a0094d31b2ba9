"""Several collectives in one study: the roster's `collective` column, through `participants add` and `collect`
on a real server, into the release (a column, per-collective counts in the card, a collective of fewer than k
authors pooled as "other"), a model trained with one token per collective in each record's own voice, and
`generate` answering every prompt in every voice."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml
from conftest import REPO, add_participants, codigit, own_study_server, recipe
from release_data import base, snapshot

from codigit.records import write_snapshot
from codigit.release.manage import make_release
from codigit.release.policy import load_policy
from codigit.study import load_study

# authors p-000 .. p-006 (release_data.base): four weavers, two millers, one in no collective
GROUPS = {"p-000": "weavers", "p-001": "weavers", "p-002": "weavers", "p-003": "weavers", "p-004": "millers",
          "p-005": "millers"}  # fmt: skip


def release_of(root, groups: dict[str, str], k: int = 3, n: int = 40):
    stories, reviews, consent = base(n)
    stories = [s.model_copy(update={"collective": groups.get(s.author)}) for s in stories]
    snap = write_snapshot(snapshot(stories, reviews, consent), root / "snaps")
    policy = load_policy(REPO / "annotation/policy.yaml").model_copy(update={"min_group_size": k})
    release, manifest, _ = make_release("0.1.0", snap, policy, load_study(REPO / "annotation/study.yaml"),
                                        root / "releases", None)  # fmt: skip
    return release, manifest, stories


def test_the_release_carries_each_records_collective_and_pools_small_ones(tmp_path):
    release, _, stories = release_of(tmp_path, GROUPS)
    import pyarrow.parquet as pq

    rows = [r for p in (release / "data").glob("*.parquet") for r in pq.read_table(p).to_pylist()]
    by_prompt = {s.prompt: s for s in stories}
    assert len(rows) == len(stories)
    for row in rows:
        label, want = row["collective"], GROUPS.get(by_prompt[row["prompt"]].author)
        assert label == {"weavers": "weavers", "millers": "other", None: None}[want]  # two millers < k = 3
    card = (release / "README.md").read_text()
    weavers = sum(GROUPS.get(s.author) == "weavers" for s in stories)
    assert f"| weavers | {weavers} | 4 |" in card and "| other | " in card and "| <3 |" in card
    assert "`collective` is the author's collective" in card
    public = pd.concat([pd.read_parquet(p) for p in (release / "public" / "data").glob("*.parquet")])
    assert set(public["collective"].dropna()) <= {"weavers", "other"}
    verified = codigit("release", "verify", str(release))
    assert verified.returncode == 0, verified.stderr


def test_a_release_without_collectives_keeps_its_columns(tmp_path):
    release, _, _ = release_of(tmp_path, {})
    assert "collective" not in pd.read_parquet(next((release / "data").glob("*.parquet"))).columns
    assert "### Collectives" not in (release / "README.md").read_text()


@pytest.mark.slow
def test_participants_add_notes_the_collective_and_collect_gives_it_to_their_stories(tmp_path):
    with own_study_server(tmp_path / "home") as server:
        roster = tmp_path / "roster.csv"
        roster.write_text("name,email,collective\nAda,ada@example.org,weavers\nBo,bo@example.org,millers\n"
                          "Cy,cy@example.org,\n")  # fmt: skip
        bad = tmp_path / "bad.csv"
        bad.write_text("name,collective\nDi,Weavers Guild\n")
        refused = codigit("participants", "add", str(bad), home=server.home)
        assert refused.returncode == 2 and "row 2: collective 'Weavers Guild'" in refused.stderr
        assert refused.stderr.count("\n") == 1
        logins = tmp_path / "logins.csv"
        assert codigit("participants", "add", str(roster), "--out", str(logins), home=server.home).returncode == 0
        people = add_participants(server, {"ada": "Ada", "bo": "Bo", "cy": "Cy"}, tmp_path)  # the same accounts
        for who in people.values():
            who.answer("stories", {"prompt": "A prompt?", "story": f"A story by {who.username}."},
                       external_id="invitation-open")  # fmt: skip
        collected = codigit("collect", "--out", str(tmp_path / "snaps"), home=server.home)
        assert collected.returncode == 0, collected.stderr
        snap = tmp_path / "snaps" / (tmp_path / "snaps" / "LATEST").read_text().strip()
        stories = [json.loads(line) for line in (snap / "stories.jsonl").read_text().splitlines()]
        got = {s["author"]: s["collective"] for s in stories}
        assert got == {people["ada"].username: "weavers", people["bo"].username: "millers",
                       people["cy"].username: None}  # fmt: skip
        spaces = [w["name"] for w in people["ada"].http.get("/me/workspaces").json()["items"]]
        assert "codigit-organisers" not in spaces  # the ledger, where collectives are noted, is out of their reach


@pytest.mark.slow
def test_a_model_learns_a_token_per_collective_and_answers_in_each_voice(tmp_path):
    from codigit.generate import generate_run
    from codigit.train.llama3 import save_random_llama
    from codigit.train.run import prepare, train

    save_random_llama(tmp_path / "tiny", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                      tie_word_embeddings=True)  # fmt: skip
    release, manifest, _ = release_of(tmp_path, {**GROUPS, "p-006": "millers"}, k=2)  # no "other" now
    world = {"root": tmp_path, "model": tmp_path / "tiny", "release": release, "hash": manifest.dataset_hash}
    refused = codigit("train", str(recipe(world, "one", voices=True, collectives=["weavers"])))
    assert refused.returncode == 2 and "list at least two in collectives" in refused.stderr
    path = recipe(world, "voices", voices=True, collectives=["weavers", "millers"], max_steps=2)
    p = prepare(path)
    ids = p.tokenizer.convert_tokens_to_ids(["<|collective:weavers|>", "<|collective:millers|>"])
    seen = {i for row in p.trainer.train_dataset for i in ids if i in row["input_ids"]}
    assert seen == set(ids)  # each record opens with its own collective's token, and both occur
    run = train(path)
    config = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert sorted(config["trainable_token_indices"]["embed_tokens"]) == sorted(ids)
    suite = tmp_path / "suite.jsonl"
    suite.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"Tell me about day {i}."}) + "\n" for i in (1, 2)))
    out = generate_run(run, [str(suite)], samples=1, seed=0, greedy=True, max_new_tokens=4, batch_size=4,
                       temperature=1.0, top_p=1.0)  # fmt: skip
    frame = pd.read_parquet(out)
    voices = [json.loads(m).get("collective") for m in frame.loc[frame["model"] == "tuned", "meta"]]
    assert sorted(voices) == ["millers", "millers", "weavers", "weavers"]  # every prompt in every voice
    assert all("collective" not in json.loads(m) for m in frame.loc[frame["model"] == "base", "meta"])
    assert yaml.safe_load(path.read_text())["voices"] is True
    from codigit.analysis.report import analyze

    analysis = analyze(run, n_boot=50)  # the report compares the voices (analysis/voices.py's own tests plant them)
    assert "<h2>Voices of the collectives</h2>" in (analysis / "report.html").read_text()
    assert set(pd.read_csv(analysis / "voices-means.csv")["collective"]) == {"weavers", "millers"}


@pytest.mark.slow
def test_a_community_garden_trains_one_adapter_per_collective_and_affected_finds_them(tmp_path):
    from codigit.handoff import read_provenance
    from codigit.train.llama3 import save_random_llama

    save_random_llama(tmp_path / "tiny", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                      tie_word_embeddings=True)  # fmt: skip
    release, manifest, stories = release_of(tmp_path, GROUPS, k=2)
    world = {"root": tmp_path, "model": tmp_path / "tiny", "release": release, "hash": manifest.dataset_hash}
    path = recipe(world, "garden", max_steps=2, save_steps=2)
    trained = codigit("train", "--each-collective", str(path), timeout=900)
    assert trained.returncode == 0, trained.stderr[-3000:]
    garden = tmp_path / "runs" / "garden"
    assert sorted(p.name for p in garden.iterdir() if (p / "provenance.json").exists()) == ["millers", "weavers"]
    for name in ("millers", "weavers"):
        provenance = read_provenance(garden / name)
        assert provenance.recipe.codigit["only_collective"] == name and (garden / name / "adapter").is_dir()
    found = codigit("release", "affected", "p-004", "--out", str(tmp_path / "releases"), "--runs",
                    str(tmp_path / "runs"))  # fmt: skip
    assert found.returncode == 0, found.stderr
    assert "garden/millers" in found.stdout and "garden/weavers" in found.stdout  # every adapter of that release
    plain, plain_manifest, _ = release_of(tmp_path / "none", {})
    other = recipe({**world, "release": plain, "hash": plain_manifest.dataset_hash}, "plain", max_steps=1)
    refused = codigit("train", "--each-collective", str(other))
    assert refused.returncode == 2 and "needs a study of several collectives" in refused.stderr
