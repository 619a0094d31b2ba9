"""`codigit demo --corpus --quick` through the real CLI: invented contributors give texts on a server of the
demo's own and review each other's, then corpus release, continued pretraining, memorisation per text, model
copies for contributors and retention, each the function its own command calls."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from conftest import REPO, codigit

from codigit.corpus_demo import DemoTexts
from codigit.specs import load_yaml

pytestmark = pytest.mark.slow  # the whole flow with model work: minutes

TEXTS = load_yaml(REPO / "annotation" / "demo" / "texts.yaml", DemoTexts, "the demo's texts").texts


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus-demo") / "codigit-corpus-demo"
    result = codigit("demo", "--corpus", "--quick", "--dir", str(folder), timeout=1800)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    where = {k: Path(v) for k, v in json.loads((folder / "demo.json").read_text(encoding="utf-8")).items()}
    return folder, result, where


def test_every_step_reports_and_nothing_is_outside_the_folder(demo):
    folder, result, where = demo
    steps = [line for line in result.stdout.splitlines() if line.startswith("[")]
    assert [s.split("]")[0] for s in steps] == [f"[{n}/11" for n in range(1, 12)], steps
    assert "a review round of the texts" in steps[4]
    assert re.search(r"8 texts in codigit/texts-review-1; 16 reviews by \d reviewers", result.stdout)  # 2 per text
    assert "Traceback" not in result.stderr
    for path in where.values():
        assert path.is_relative_to(folder)


def test_the_contribution_log_shows_each_check_and_the_release_left_the_right_texts_out(demo):
    _, result, where = demo
    with (where["export"] / "contribution_log.csv").open(newline="", encoding="utf-8") as f:
        log = {row["title"]: row for row in csv.DictReader(f)}
    reasons = {title: row["reason"] for title, row in log.items() if row["included"] == "no"}
    assert reasons == {"Night ferry (again)": "near_duplicate", "Le marché": "language", "Note": "too_short",
                       "Letters": "personal_data"}, reasons  # fmt: skip
    assert "Bus stop" not in log  # the leaver's text is in no log
    assert log["The long walk home"]["included"] == "yes"  # imported from a file
    assert {r["contributor"] for r in log.values()} <= {"anonymous"} | {t.credit for t in TEXTS if t.credit}
    assert "personal data? 'Letters': email, reviewer flag" in result.stdout  # the scan, and a reviewer saw it


def test_the_model_copy_has_a_gguf_a_card_and_a_notice_per_credited_contributor(demo):
    _, _, where = demo
    export = where["export"]
    assert (export / "model.q8_0.gguf").stat().st_size > 10_000_000 and (export / "model" / "config.json").exists()
    card = (export / "README.md").read_text(encoding="utf-8")
    assert "repeat" in card.lower()
    notices = sorted(p.name for p in (export / "notices").iterdir())
    assert notices and all(n.endswith(".md") for n in notices)
    probe = json.loads((where["run"] / "analysis" / "memorisation_texts.json").read_text())
    rates = [t["rates"] for t in probe["texts"] if t["rates"]]
    assert rates and all(0 <= v <= 1 for r in rates for v in r.values())


def test_retention_deleted_the_unkept_and_the_leavers_texts_everywhere(demo):
    folder, _, where = demo
    log = [json.loads(line) for line in where["deletion log"].read_text().splitlines()]
    gone = {t.title for t in TEXTS if t.keep == "no" or t.author == "demo-11"}
    assert len(log) == len(gone) == 3
    everything = b"".join(p.read_bytes() for p in (folder / "data").rglob("*") if p.is_file())
    for t in TEXTS:
        if t.title in gone:
            assert t.text.split("\n")[0].encode() not in everything, t.title
    assert "corpus release" not in where  # it held a text not to be kept: removed
