"""The bad-input corpus: every command, fed what users really get wrong, answers with one line and a non-zero
exit, never a traceback, and leaves no half-written file behind. (Cases that need a running server live in
test_cli.py, test_workflow.py and test_privacy.py.)"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import REPO, STUDY, codigit

from codigit.records import write_snapshot

BAD_UTF8 = b"name,email\n\xff\xfe Ann,ann@example.org\n"
POLICY = (REPO / "annotation" / "policy.yaml").read_bytes()


def _snapshot(root: Path) -> Path:
    from release_data import base, snapshot

    return write_snapshot(snapshot(*base(10)), root / "snaps")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad")
    f = {"root": root}
    for name, content in {
        "not_yaml.yaml": b"workspace: [unclosed\n",
        "list.yaml": b"- a\n- b\n",
        "empty.yaml": b"",
        "binary.yaml": b"\xff\xfe\x00\x01",
        "unknown_key.yaml": (STUDY.read_text() + "\ncolour: blue\n").encode(),
        "roster_bad_email.csv": b"name,email\nAnn,not-an-email\n",
        "roster_no_name.csv": b"email\nann@example.org\n",
        "roster_dupes.csv": b"name,email\nAnn,a@example.org\nAnn B,a@example.org\n",
        "roster_bad_utf8.csv": BAD_UTF8,
        "roster_empty.csv": b"name\n",
        "policy_unknown.yaml": POLICY.replace(b"min_reviews", b"min_reveiws"),
        "policy_bad_type.yaml": POLICY.replace(b"min_reviews: 2", b"min_reviews: many"),
        "recipe_unknown.yaml": b"release: x\nlerning_rate: 1\n",
        "recipe_list.yaml": b"- 1\n",
        "suite_bad.jsonl": b'{"id": "a"}\n',
        "junk.db": b"not a database" * 50,
        "judgments.csv": b"no,such,columns\n1,2,3\n",
    }.items():  # fmt: skip
        (root / name).write_bytes(content)
        f[name] = root / name
    f["snapshot"] = _snapshot(root)
    (root / "run").mkdir()
    (root / "run" / "provenance.json").write_text("{not json")
    f["run"] = root / "run"

    shutil.copytree(REPO / "annotation", root / "study-copy")  # the demo's people and pairs sit beside the study
    pairs = root / "study-copy" / "demo" / "pairs.yaml"
    pairs.write_text(pairs.read_text(encoding="utf-8").replace("author: demo-12", "author: demo-13"), encoding="utf-8")
    f["demo_study"] = root / "study-copy" / "study.yaml"
    # the participants' texts and their translation: a missing text, a renamed placeholder, a missing label,
    # and the study's own language listed as a translation
    for name, file, old, new in [
        ("texts_missing", "participant-texts.yaml", "cancel: Cancel\n", ""),
        ("placeholder", "translations/es.yaml", "{limit}", "{limite}"),
        ("labels", "translations/es.yaml", "{none:", "{nobody:"),
        ("own_language", "study.yaml", "  es: translations/es.yaml", "  en: translations/es.yaml"),
    ]:
        shutil.copytree(REPO / "annotation", root / name)
        changed = root / name / file
        text = changed.read_text(encoding="utf-8")
        assert old in text, (name, old)
        changed.write_text(text.replace(old, new, 1), encoding="utf-8")
        f[name] = root / name / "study.yaml"
    return f


RELEASE = ["release", "1.0.0", "--snapshot", "{snaps}", "--out", "{root}/rel", "--no-roster"]
CASES: list[tuple[list[str], str]] = [
    # study configuration
    (["init", "--study", "{not_yaml.yaml}"], "not valid YAML"),
    (["init", "--study", "{list.yaml}"], "expected a mapping"),
    (["init", "--study", "{empty.yaml}"], "expected a mapping"),
    (["init", "--study", "{binary.yaml}"], "not UTF-8"),
    (["init", "--study", "{unknown_key.yaml}"], "colour: unknown key"),
    (["init", "--study", "{root}/missing.yaml"], "not found"),
    (["init", "--home", "{root}/no-server"], "codigit serve"),
    (["init", "--study", "{texts_missing}"], "missing text(s) ['cancel']"),
    (["init", "--study", "{placeholder}"], "must keep the placeholders"),
    (["init", "--study", "{labels}"], "consent_questions.attribution.labels must translate exactly"),
    (["init", "--study", "{own_language}"], "is the study's own language"),
    # rosters and participants
    (["participants", "add", "{roster_bad_email.csv}", "--home", "{root}/h1"], "not an email"),
    (["participants", "add", "{roster_no_name.csv}", "--home", "{root}/h1"], "`name` column"),
    (["participants", "add", "{roster_dupes.csv}", "--home", "{root}/h1"], "same person"),
    (["participants", "add", "{roster_bad_utf8.csv}", "--home", "{root}/h1"], "not UTF-8"),
    (["participants", "add", "{roster_empty.csv}", "--home", "{root}/h1"], "no participants"),
    (["participants", "add", "{root}/none.csv", "--home", "{root}/h1"], "roster not found"),
    (["participants", "withdraw", "p-0000000000", "--home", "{root}/h1"], "codigit serve"),
    (["participants"], "required"),
    # server options
    (["serve", "--port", "70000"], "not a TCP port"),
    (["serve", "--port", "http"], "not a TCP port"),
    (["serve", "--database-url", "mysql://x/y", "--home", "{root}/h2"], "not a usable database URL"),
    # collect, review, agreement
    (["collect", "--home", "{root}/h3", "--out", "{root}/snaps-out"], "no embedded database"),
    (["collect", "--database-url", "oracle://x", "--out", "{root}/snaps-out"], "--database-url"),
    (["review", "open", "Round One!", "--home", "{root}/h3"], "no embedded database"),
    (["review", "close", "1", "--home", "{root}/h3"], "codigit serve"),
    (["agreement", "--snapshot", "{root}/nowhere"], "run `codigit collect` first"),
    (["agreement", "--snapshot", "{snaps}", "--out", "{root}"], "cannot write the report"),
    (["agreement", "--snapshot", "{snaps}", "--format", "xml"], "invalid choice"),
    # releases
    (["release", "one", "--snapshot", "{snaps}", "--out", "{root}/rel", "--no-roster"], "not a semantic version"),
    (["release", "1.0", "--snapshot", "{snaps}", "--out", "{root}/rel", "--no-roster"], "not a semantic version"),
    (
        ["release", "1.0.0", "--snapshot", "{root}/nowhere", "--out", "{root}/rel", "--no-roster"],
        "run `codigit collect` first",
    ),  # fmt: skip
    (
        ["release", "1.0.0", "--snapshot", "{snaps}", "--out", "{root}/rel", "--roster", "{root}/none.csv"],
        "roster not found",
    ),  # fmt: skip
    ([*RELEASE, "--policy", "{policy_unknown.yaml}"], "min_reveiws: unknown key"),
    ([*RELEASE, "--policy", "{policy_bad_type.yaml}"], "min_reviews"),
    (["release", "verify", "{root}"], "not a release"),
    (["release", "diff", "0.1.0", "0.2.0", "--out", "{root}/rel"], "not a release"),
    (["release", "decide", "nope", "keep", "--by", "A", "--snapshot", "{snaps}", "--out", "{root}/rel"], "no story"),
    (["release", "decide", "nope", "maybe", "--by", "A"], "invalid choice"),
    (["release", "approve", "9.9.9", "--by", "A", "--out", "{root}/rel"], "not a release"),
    (["release", "publish", "9.9.9", "--push-to-hub", "o/r", "--out", "{root}/rel"], "not a release"),
    # training, generation, analysis
    (["train", "{root}/none.yaml"], "recipe not found"),
    (["train", "{recipe_unknown.yaml}"], "unknown key(s) lerning_rate"),
    (["train", "{recipe_list.yaml}"], "expected a mapping"),
    (["generate", "{run}"], "not a finished codigit run"),
    (["generate", "{root}/norun"], "not a finished codigit run"),
    (["analyze", "{root}"], "codigit generate"),
    (["memorisation", "{run}"], "not a finished codigit run"),
    (["compare", "results", "{root}", "--home", "{root}/h3"], "codigit serve"),
    (["compare", "open", "{root}", "--round", "Bad Round", "--home", "{root}/h3"], "codigit serve"),
    (["positionality", "--snapshot", "{root}/nowhere"], "run `codigit collect` first"),
    (["positionality", "--snapshot", "{snaps}", "--out", "{root}/pos"], "no positionality answers"),
    (["model", "prepare", "gpt5"], "invalid choice"),
    # the demo
    (["demo", "--dir", "{root}"], "already exists and is not empty"),
    (["demo", "--study", "{demo_study}", "--dir", "{root}/d1"], "author 'demo-13' is not in demo.yaml"),
    (["demo", "--recipe", "{root}/none.yaml", "--dir", "{root}/d2"], "none.yaml: not found"),
    (["demo", "--port", "0"], "not a TCP port"),
    # backups
    (["backup", "--home", "{root}/h4"], "no embedded database"),
    (["restore", "{junk.db}", "--home", "{root}/h4"], "not a usable SQLite database"),
    (["restore", "{root}/none.db", "--home", "{root}/h4"], "backup file not found"),
    # the command line itself
    ([], "required"),
    (["frobnicate"], "invalid choice"),
]


def test_corpus_has_at_least_fifty_cases():
    assert len(CASES) >= 50


@pytest.mark.parametrize(("args", "message"), CASES, ids=[" ".join(c[0][:2]) or "(none)" for c in CASES])
def test_bad_input_gets_one_line_and_writes_nothing(files, args, message):
    places = {k: str(v) for k, v in files.items()} | {"snaps": str(files["snapshot"].parent)}
    for key, value in places.items():  # plain replacement: the keys have dots ("{junk.db}")
        args = [a.replace("{" + key + "}", value) for a in args]
    before = sorted(p.relative_to(files["root"]) for p in files["root"].rglob("*"))
    result = codigit(*args, env={"ARGILLA_API_URL": "", "ARGILLA_API_KEY": ""}, timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0, (args, result.stdout)
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1 and lines[0].startswith("codigit: error: "), result.stderr
    assert message in lines[0], (args, lines[0])
    after = sorted(p.relative_to(files["root"]) for p in files["root"].rglob("*"))
    new = [p for p in after if p not in before and p.parts[0] not in ("h1", "h2", "h3", "h4", "no-server")]
    assert not new, f"{args} left {new}"  # a fresh, empty home dir may appear; never a partial output
