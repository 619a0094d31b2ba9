"""Blind pairwise evaluation through a real server: `codigit compare open`, judges in Argilla, `results`."""

from __future__ import annotations

import json

import krippendorff
import numpy as np
import pandas as pd
import pytest
from conftest import add_participants, codigit, own_study_server

pytestmark = pytest.mark.slow  # a server of the module's own, judges answering through it


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compare")
    with own_study_server(tmp / "home") as srv:
        yield srv, tmp


def fake_run(tmp, name="run", wording="An answer to question"):
    run = tmp / name
    run.mkdir(exist_ok=True)
    rows = []
    for i in range(6):
        for model in ("base", "tuned"):
            rows.append({"model": model, "suite": "open", "prompt_id": f"q{i}", "sample": 0, "seed": i,
                         "prompt": f"Question {i}?", "text": f"{wording} {i}, version {len(model)}",
                         "prompt_tokens": 3, "new_tokens": 3, "finished": True, "seconds": 0.1,
                         "meta": "{}"})  # fmt: skip
    pd.DataFrame(rows).to_parquet(run / "generations.parquet")
    return run


def test_blind_comparison_round_trip(server):
    srv, tmp = server
    run = fake_run(tmp)
    opened = codigit("compare", "open", str(run), "--per-pair", "3", home=srv.home)
    assert opened.returncode == 0, opened.stderr
    stored = json.loads((run / "analysis/compare-1.key.json").read_text())
    key, name = stored["pairs"], stored["dataset"]
    assert name.startswith("compare-run-") and name.endswith("-1") and name in opened.stdout
    assert len(key) == 6 and {v["a"] for v in key.values()} == {"base", "tuned"}  # both orders occur
    records = srv.http().get(f"/datasets/{_dataset_id(srv, name)}/records").json()["items"]
    assert len(records) == 6
    for record in records:  # blind: nothing on the server says which model wrote which answer
        assert set(record["fields"]) == {"prompt", "answer_a", "answer_b"} and not record.get("metadata")
        assert "tuned" not in json.dumps(record).lower() and "base" not in json.dumps(record).lower()

    judges = add_participants(srv, {"ann": "Ann Judge", "bea": "Bea Judge", "cal": "Cal Judge"}, tmp)
    choice = {"ann": "tuned", "bea": "tuned", "cal": "tie"}
    for who, person in judges.items():
        dataset_id = person.dataset_id(name, "codigit")
        for record in person.queue(dataset_id):
            side = key[record["external_id"]]["a"]
            value = "tie" if choice[who] == "tie" else ("a" if side == choice[who] else "b")
            person.submit(record["id"], {"preference": value}).raise_for_status()
    result = codigit("compare", "results", str(run), home=srv.home)
    assert result.returncode == 0, result.stderr
    summary = json.loads((run / "analysis/compare-1.json").read_text())
    assert summary["judgments"] == 18 and summary["judges"] == 3 and summary["tuned"] == 12 and summary["tie"] == 6
    assert summary["tuned_win_rate"] == pytest.approx((1 + 1 + 0.5) / 3)
    codes = {"tuned": 0, "base": 1, "tie": 2}
    matrix = np.array([[codes[choice[who]]] * 6 for who in ("ann", "bea", "cal")], dtype=float)
    expected = krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal")
    assert summary["alpha"] == pytest.approx(expected, abs=1e-9)


def _client(srv):
    import argilla as rg

    return rg.Argilla(api_url=srv.url, api_key=srv.api_key)


def _dataset_id(srv, name):
    return _client(srv).datasets(name, workspace="codigit").id


def _texts(srv, name):
    records = _client(srv).datasets(name, workspace="codigit").records
    return {r.id: (r.fields["answer_a"], r.fields["answer_b"]) for r in records}


def test_rounds_of_two_runs_and_reopening_never_mix_or_rewrite(server):
    """A second run on the default round gets its own dataset; a round reopens only with its seed and its
    generations, and then its key is kept as it was (the server keeps the records it already shows)."""
    srv, tmp = server
    first, second = fake_run(tmp, "run-a"), fake_run(tmp, "run-b", wording="Another answer to question")
    for run in (first, second):
        opened = codigit("compare", "open", str(run), "--max-pairs", "4", home=srv.home)
        assert opened.returncode == 0, opened.stderr
    key_a, key_b = (json.loads((r / "analysis/compare-1.key.json").read_text()) for r in (first, second))
    assert key_a["dataset"] != key_b["dataset"] and key_a["pairs"].keys() == key_b["pairs"].keys()
    for run, key in ((first, key_a), (second, key_b)):  # each dataset shows its own run's answers, as keyed
        texts = pd.read_parquet(run / "generations.parquet").set_index(["model", "prompt_id"])["text"]
        shown = _texts(srv, key["dataset"])
        assert len(shown) == 4
        for pair, entry in key["pairs"].items():
            other = "base" if entry["a"] == "tuned" else "tuned"
            assert shown[pair] == (texts[entry["a"], entry["prompt_id"]], texts[other, entry["prompt_id"]])

    before = (first / "analysis/compare-1.key.json").read_bytes()
    reseeded = codigit("compare", "open", str(first), "--seed", "1", home=srv.home)
    assert reseeded.returncode == 2 and "--seed 0" in reseeded.stderr and reseeded.stderr.count("\n") == 1
    fake_run(tmp, "run-a", wording="A regenerated answer to question")
    regenerated = codigit("compare", "open", str(first), home=srv.home)
    assert regenerated.returncode == 2 and "other generations" in regenerated.stderr
    assert regenerated.stderr.count("\n") == 1
    assert (first / "analysis/compare-1.key.json").read_bytes() == before

    fake_run(tmp, "run-a")  # the generations the round was opened on: extending it keeps every entry
    extended = codigit("compare", "open", str(first), home=srv.home)
    assert extended.returncode == 0, extended.stderr
    after = json.loads((first / "analysis/compare-1.key.json").read_text())
    assert after["dataset"] == key_a["dataset"] and len(after["pairs"]) == 6
    assert {p: after["pairs"][p] for p in key_a["pairs"]} == key_a["pairs"]
    assert len(_texts(srv, key_a["dataset"])) == 6


def test_results_before_open_is_a_one_line_error(server, tmp_path):
    srv, _ = server
    result = codigit("compare", "results", str(tmp_path), home=srv.home)
    assert result.returncode == 2 and "compare open" in result.stderr and result.stderr.count("\n") == 1


def test_a_round_opened_by_an_earlier_codigit_is_not_extended(server):
    srv, tmp = server
    run = fake_run(tmp, "run-old")
    (run / "analysis").mkdir()
    legacy = {"cmp-0123456789abcdef": {"prompt_id": "q0", "sample": 0, "a": "tuned"}}  # {pair: ...}, no dataset
    (run / "analysis/compare-1.key.json").write_text(json.dumps(legacy))
    reopened = codigit("compare", "open", str(run), home=srv.home)
    assert reopened.returncode == 2 and "earlier codigit" in reopened.stderr and reopened.stderr.count("\n") == 1
    assert json.loads((run / "analysis/compare-1.key.json").read_text()) == legacy
