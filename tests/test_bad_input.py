"""The bad-input corpus: every command, fed what users really get wrong, answers with one line and a non-zero
exit, never a traceback, and leaves no half-written file behind. (Cases that need a running server live in
test_cli.py, test_workflow.py and test_privacy.py.)"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import REPO, STUDY, codigit, wal_database

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
    # study files with one mistake each (in a copy of the whole study folder, so only that mistake is wrong)
    study = yaml.safe_load(STUDY.read_text(encoding="utf-8"))
    for name, change in STUDY_MISTAKES.items():
        shutil.copytree(REPO / "annotation", root / name)
        changed = copy.deepcopy(study)
        change(changed)
        (root / name / "study.yaml").write_text(yaml.safe_dump(changed, allow_unicode=True), encoding="utf-8")
        f[name] = root / name / "study.yaml"
    for name, content in {
        "roster.xlsx": b"PK\x03\x04" + bytes(200),  # a spreadsheet, not its CSV export
        "roster_pseudonym.csv": b"name,email,pseudonym\nAnn,ann@example.org,Not Valid!\n",
        "roster_blank_name.csv": b"name,email\n,ann@example.org\n",
        "policy_typo.yaml": POLICY.replace(b"[harmful, off_topic]", b"[harmfull, off_topic]"),
        "policy_unclosed.yaml": b"min_reviews: [\n",
        "recipe_bad_value.yaml": b"release: x\nlearning_rate: fast\n",
        "recipe_no_release.yaml": b"learning_rate: 0.1\n",
        "recipe_release_missing.yaml": f"release: {root}/nowhere\nuse_cpu: true\n".encode(),
        "a-file": b"not a folder",
        "empty.db": b"",
    }.items():  # fmt: skip
        (root / name).write_bytes(content)
        f[name] = root / name
    (root / "roster_dir").mkdir()
    f["roster_dir"] = root / "roster_dir"
    wal_database(root / "h5" / "argilla.db")  # a database to back up, so the backup's own failure is tested
    return f


def _set(*path_and_value):
    *path, value = path_and_value

    def change(study: dict) -> None:
        for key in path[:-1]:
            study = study[key]
        study[path[-1]] = value

    return change


def _edit_question(section: str, name: str, **values):
    def change(study: dict) -> None:
        next(q for q in study[section]["questions"] if q["name"] == name).update(values)

    return change


STUDY_MISTAKES = {
    "same_workspaces": lambda s: s.update(organiser_workspace=s["workspace"]),  # the ledger where all can read
    "same_datasets": lambda s: s["consent"].update(dataset=s["stories"]["dataset"]),
    "workspace_spaces": _set("workspace", "Our Study"),
    "zero_story_chars": _set("stories", "max_story_chars", 0),
    "zero_reviews": _set("review", "reviews_per_story", 0),
    "guidelines_missing": _set("stories", "guidelines", "nowhere.md"),
    "language_code": _set("translations", {"Spanish": "translations/es.yaml"}),
    "translation_missing": _set("translations", {"fr": "translations/fr.yaml"}),
    "title_empty": _set("title", ""),
    "language_name": _set("language", "English"),
    "texts_file_missing": _set("participant_texts", "nowhere.yaml"),
    "invitation_twice": lambda s: s["stories"]["invitations"].append(dict(s["stories"]["invitations"][0])),
    "review_question_unknown": lambda s: s["review"]["questions"].append({"name": "mood", "type": "text"}),
    "positionality_required": _edit_question("positionality", "gender_identity", required=True),
    "consent_scope_missing": lambda s: s["consent"].update(
        questions=[q for q in s["consent"]["questions"] if q["name"] != "public"]
    ),
    "decision_options": _edit_question("review", "decision", labels={"yes": "Yes", "no": "No"}),
    "stories_not_mapping": _set("stories", ["a"]),
}


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
    (["--frobnicate"], "required"),
    # study files: every key that names or limits something is checked before anything happens
    (["init", "--study", "{same_workspaces}"], "the withdrawal ledger would be readable by every participant"),
    (["init", "--study", "{same_datasets}"], "each participant's datasets need different names"),
    (["init", "--study", "{workspace_spaces}"], "workspace: String should match pattern"),
    (["init", "--study", "{zero_story_chars}"], "stories.max_story_chars"),
    (["init", "--study", "{zero_reviews}"], "review.reviews_per_story"),
    (["init", "--study", "{guidelines_missing}"], "the guidelines (stories.guidelines) not found"),
    (["init", "--study", "{language_code}"], "'Spanish' is not a language code"),
    (["init", "--study", "{translation_missing}"], "the fr translation (translations.fr) not found"),
    (["init", "--study", "{title_empty}"], "title: String should have at least 1 character"),
    (["init", "--study", "{language_name}"], "language: String should match pattern"),
    (["init", "--study", "{texts_file_missing}"], "the participants' texts (participant_texts) not found"),
    (["init", "--study", "{invitation_twice}"], "invitations must have unique names"),
    (["init", "--study", "{review_question_unknown}"], "unknown review question(s) ['mood']"),
    (["init", "--study", "{positionality_required}"], "positionality questions are all optional"),
    (["init", "--study", "{consent_scope_missing}"], "needs a label question named 'public'"),
    (["init", "--study", "{decision_options}"], "question 'decision' must have exactly the options"),
    (["init", "--study", "{stories_not_mapping}"], "stories: Input should be a valid dictionary"),
    (["init", "--study", "{root}"], "cannot read the study configuration"),
    # rosters
    (["participants", "add", "{roster_dir}", "--home", "{root}/h1"], "cannot read the roster"),
    (["participants", "add", "{roster.xlsx}", "--home", "{root}/h1"], "the header must have a `name` column"),
    (["participants", "add", "{roster_pseudonym.csv}", "--home", "{root}/h1"], "pseudonym 'Not Valid!' must be"),
    (["participants", "add", "{roster_blank_name.csv}", "--home", "{root}/h1"], "row 2: `name` is empty"),
    (["participants", "withdraw", "--home", "{root}/h1"], "required: pseudonym"),
    # server options
    (["serve", "--port", "-1"], "not a TCP port"),
    (["serve", "--log-level", "loud"], "invalid choice"),
    (["serve", "--redis-url", "localhost:6379", "--home", "{root}/h2"], "redis://"),
    (["review", "open", "r1", "--per-story", "many"], "'many' is not a whole number"),
    # agreement
    (["agreement", "--snapshot", "{snaps}", "--n-boot", "0"], "must be at least 1"),
    (["agreement", "--snapshot", "{snaps}", "--n-boot", "-5"], "must be at least 1"),
    (["agreement", "--snapshot", "{snaps}", "--top", "-1"], "must be at least 0"),
    (["agreement", "--snapshot", "{snaps}", "--top", "x"], "not a whole number"),
    (["agreement", "--snapshot", "{snaps}", "--seed", "x"], "not a whole number"),
    (["agreement", "--snapshot", "{snaps}", "--round", "nosuch"], "no reviews in round 'nosuch'"),
    # releases
    ([*RELEASE, "--policy", "{root}/none.yaml"], "the release policy (pass --policy) not found"),
    ([*RELEASE, "--policy", "{policy_typo.yaml}"], "'harmfull' is not a flag of the study's review form"),
    ([*RELEASE, "--policy", "{policy_unclosed.yaml}"], "not valid YAML (line 2)"),
    (["release", "01.0.0", "--snapshot", "{snaps}", "--out", "{root}/rel", "--no-roster"], "not a semantic version"),
    (["release", "decide", "x", "keep", "--by", "", "--snapshot", "{snaps}", "--out", "{root}/rel"], "--by must"),
    (["release", "verify", "{a-file}"], "manifest.json"),
    # training
    (["train"], "required"),
    (["train", "{recipe_bad_value.yaml}"], "invalid float value: 'fast'"),
    (["train", "{recipe_no_release.yaml}"], "`release` is required"),
    (["train", "{recipe_release_missing.yaml}"], "not a release (no manifest.json)"),
    (["train", "{roster.xlsx}"], "not a readable YAML recipe"),
    (["train", "{recipe_bad_value.yaml}", "--learning_rate"], "expected one argument"),
    # generation and analysis
    (["generate", "{run}", "--samples", "0"], "--samples 0: use 1 or more"),
    (["generate", "{run}", "--temperature", "0"], "use a value above 0"),
    (["generate", "{run}", "--top-p", "1.5"], "at most 1"),
    (["generate", "{run}", "--batch-size", "0"], "--batch-size 0: use 1 or more"),
    (["generate", "{run}", "--max-new-tokens", "0"], "--max-new-tokens 0: use 1 or more"),
    (["generate", "{run}", "--backend", "tpu"], "invalid choice"),
    (["analyze", "{a-file}"], "no readable generations.parquet"),
    (["memorisation", "{run}", "--prefix-words", "0"], "--prefix-words 0: use 1 or more"),
    (["compare", "results"], "required: run"),
    (["compare", "results", "{run}", "--n-boot", "0"], "--n-boot: must be at least 1, not 0"),
    (["compare", "open", "{run}", "--per-pair", "0"], "--per-pair: must be at least 1, not 0"),
    (["analyze", "{run}", "--n-boot", "-1"], "--n-boot: must be at least 1, not -1"),
    (["memorisation", "{run}", "--max-records", "-3"], "--max-records: must be at least 0, not -3"),
    (["review", "open", "r1", "--per-story", "0"], "--per-story: must be at least 1, not 0"),
    (["positionality", "--snapshot", "{snaps}", "--policy", "{policy_typo.yaml}"], "'harmfull' is not a flag"),
    (["positionality", "--snapshot", "{snaps}", "--policy", "{root}/none.yaml"], "release policy (pass --policy)"),
    (["demo", "--suite", "{root}/none.jsonl", "--dir", "{root}/d3"], "none.jsonl: not found"),
    (["demo", "--policy", "{root}/none.yaml", "--dir", "{root}/d4"], "release policy (pass --policy) not found"),
    # backups: a place nobody can write (root ignores permission bits, not a read-only file system)
    (["backup", "--home", "{root}/h5", "--out", "/sys/codigit-backup/b.db"], "nothing was kept"),
    (["backup", "--home", "{root}/h5", "--out", "{a-file}/b.db"], "nothing was kept"),
    (["restore", "{roster_dir}", "--home", "{root}/h4"], "backup file not found"),
    (["restore", "{empty.db}", "--home", "{root}/h4"], "not an Argilla database"),
]


def test_corpus_has_at_least_120_cases():
    assert len(CASES) >= 120


@pytest.mark.parametrize(("args", "message"), CASES, ids=[" ".join(c[0][:2]) or "(none)" for c in CASES])
@pytest.mark.slow
def test_bad_input_gets_one_line_and_writes_nothing(files, args, message):
    places = {k: str(v) for k, v in files.items()} | {"snaps": str(files["snapshot"].parent)}
    for key, value in places.items():  # plain replacement: the keys have dots ("{junk.db}")
        args = [a.replace("{" + key + "}", value) for a in args]
    before = sorted(p.relative_to(files["root"]) for p in files["root"].rglob("*"))
    result = codigit(*args, env={"ARGILLA_API_URL": "", "ARGILLA_API_KEY": ""}, timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, (args, result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1 and lines[0].startswith("codigit: error: "), result.stderr
    assert message in lines[0], (args, lines[0])
    after = sorted(p.relative_to(files["root"]) for p in files["root"].rglob("*"))
    new = [p for p in after if p not in before and p.parts[0] not in ("h1", "h2", "h3", "h4", "h5", "no-server")]
    assert not new, f"{args} left {new}"  # a fresh, empty home dir may appear; never a partial output


def test_a_full_disk_is_one_line_and_leaves_nothing(files, tmp_path):
    """A file-size limit stands in for a full disk (both refuse a write; Python ignores SIGXFSZ): the release that
    cannot be written is one line, exit 2, and leaves no folder behind, not even the releases folder it made."""
    import resource
    import subprocess
    import sys

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    out = tmp_path / "new" / "releases"
    args = ["release", "1.0.0", "--snapshot", str(files["snapshot"].parent), "--out", str(out), "--no-roster"]
    result = subprocess.run([sys.executable, "-m", "codigit.cli", *args], cwd=REPO, capture_output=True, text=True,
                            preexec_fn=small_files, timeout=300)  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("codigit: error: ") and "File too large" in lines[0], lines
    assert "nothing was kept" in lines[0]
    assert list(tmp_path.iterdir()) == []  # no release, no hidden temporary folder, no empty folders


@pytest.mark.slow
def test_ctrl_c_is_one_line_saying_what_was_kept(files):
    """SIGINT in the middle of a long command (a bootstrap of ten million resamples): exit 130, one line, and no
    traceback; the report it was computing is not written at all."""
    import os
    import signal
    import subprocess
    import sys
    import time

    report = files["root"] / "interrupted-report.json"
    args = ["agreement", "--snapshot", str(files["snapshot"].parent), "--n-boot", "10000000", "--out", str(report)]
    proc = subprocess.Popen([sys.executable, "-m", "codigit.cli", *args], cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        # inside the bootstrap, not in start-up: agreement imports numpy only once it computes (`codigit --help`
        # must not pay for it), so numpy mapped into the process says the command has begun its work; two more
        # seconds of its CPU time put it past the imports that follow, however busy the machine is
        maps, stat = Path(f"/proc/{proc.pid}/maps"), Path(f"/proc/{proc.pid}/stat")
        deadline, began = time.monotonic() + 120, None
        while proc.poll() is None and time.monotonic() < deadline:
            used = sum(int(v) for v in stat.read_text().rsplit(")", 1)[1].split()[11:13]) / os.sysconf("SC_CLK_TCK")
            if began is None and "numpy" in maps.read_text():
                began = used
            if began is not None and used - began >= 2:
                break
            time.sleep(0.1)
        assert proc.poll() is None, "the command ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:  # a failed test leaves no ten-million-resample bootstrap running
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == [
        "codigit: interrupted: files already written are whole and kept; nothing half-written was left; run the "
        "same command again"
    ]
    assert not report.exists()
