"""Blind pairwise evaluation through a real server: `codigit compare open`, judges in Argilla, `results`."""

from __future__ import annotations

import json

import krippendorff
import numpy as np
import pandas as pd
import pytest
from conftest import add_participants, codigit, own_study_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compare")
    with own_study_server(tmp / "home") as srv:
        yield srv, tmp


def fake_run(tmp):
    run = tmp / "run"
    run.mkdir()
    rows = []
    for i in range(6):
        for model in ("base", "tuned"):
            rows.append({"model": model, "suite": "open", "prompt_id": f"q{i}", "sample": 0, "seed": i,
                         "prompt": f"Question {i}?", "text": f"An answer to question {i}, version {len(model)}",
                         "prompt_tokens": 3, "new_tokens": 3, "finished": True, "seconds": 0.1,
                         "meta": "{}"})  # fmt: skip
    pd.DataFrame(rows).to_parquet(run / "generations.parquet")
    return run


def test_blind_comparison_round_trip(server):
    srv, tmp = server
    run = fake_run(tmp)
    opened = codigit("compare", "open", str(run), "--per-pair", "3", home=srv.home)
    assert opened.returncode == 0, opened.stderr
    key = json.loads((run / "analysis/compare-1.key.json").read_text())
    assert len(key) == 6 and {v["a"] for v in key.values()} == {"base", "tuned"}  # both orders occur
    records = srv.http().get(f"/datasets/{_dataset_id(srv)}/records").json()["items"]
    assert len(records) == 6
    for record in records:  # blind: nothing on the server says which model wrote which answer
        assert set(record["fields"]) == {"prompt", "answer_a", "answer_b"} and not record.get("metadata")
        assert "tuned" not in json.dumps(record).lower() and "base" not in json.dumps(record).lower()

    judges = add_participants(srv, {"ann": "Ann Judge", "bea": "Bea Judge", "cal": "Cal Judge"}, tmp)
    choice = {"ann": "tuned", "bea": "tuned", "cal": "tie"}
    for who, person in judges.items():
        dataset_id = person.dataset_id("compare-1", "codigit")
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


def _dataset_id(srv):
    import argilla as rg

    client = rg.Argilla(api_url=srv.url, api_key=srv.api_key)
    return client.datasets("compare-1", workspace="codigit").id


def test_results_before_open_is_a_one_line_error(server, tmp_path):
    srv, _ = server
    result = codigit("compare", "results", str(tmp_path), home=srv.home)
    assert result.returncode == 2 and "compare open" in result.stderr and result.stderr.count("\n") == 1
