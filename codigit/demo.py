"""`codigit demo`: the whole loop once, on synthetic data, on CPU, in a folder of its own.

A server of the demo's own starts; twelve invented participants (annotation/demo/) sign in, give or withhold
consent, answer the optional questionnaire, write 40 pairs and review each other's through the endpoints the UI
calls; one withdraws. Then the real commands run in order: collect, agreement, release 0.1.0 (through the
personal-data gate), LoRA on the CPU demo model, base-vs-tuned generation, memorisation, analysis, positionality.
Nothing here is a shortcut around a stage: each step calls the function its `codigit` subcommand calls.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from codigit.errors import CodigitError
from codigit.release.policy import Card
from codigit.server.serve import check_port_free, free_port
from codigit.study import Study, load_yaml

VERSION = "0.1.0"
ROUND = "1"
ORGANISER = "codigit demo"


class DemoPerson(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(pattern=r"^demo-\d\d$")
    consent: dict[str, str] | None = None
    about_you: dict[str, str | list[str]] | None = None
    leniency: float = Field(default=0.0, ge=-2, le=2)
    reviews_own: bool = False
    withdraws: bool = False


class DemoPair(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)  # YAML blocks end in "\n"

    author: str
    invitation: str
    quality: int = Field(ge=1, le=5)
    themes: list[str]
    prompt: str = Field(min_length=1)
    story: str = Field(min_length=1)


class DemoPeople(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    card: Card
    people: list[DemoPerson] = Field(min_length=2)


class DemoPairs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    pairs: list[DemoPair] = Field(min_length=1)


@dataclass
class Demo:
    card: Card
    people: dict[str, DemoPerson]
    pairs: list[DemoPair]


def load_demo(folder: Path, study: Study) -> Demo:
    """The demo's people and pairs, checked against each other and against the study's forms (so that a changed
    study is a one-line error here, not a refusal by the server halfway through the demo)."""
    people = load_yaml(folder / "demo.yaml", DemoPeople, "the demo's participants")
    pairs = load_yaml(folder / "pairs.yaml", DemoPairs, "the demo's pairs").pairs
    by_key = {p.key: p for p in people.people}
    if len(by_key) != len(people.people):
        raise CodigitError(f"{folder / 'demo.yaml'}: two people have the same key")
    for person in people.people:
        where = f"{folder / 'demo.yaml'}: {person.key}"
        _check_answers(f"{where}: consent", person.consent or {}, study.consent.questions)
        _check_answers(f"{where}: about_you", person.about_you or {}, study.positionality.questions)
    review = {q.name: q for q in study.review.questions}
    needed = {"rating": {str(v) for v in range(1, 6)}, "flags": {"off_topic", "personal_data"}}
    for name, options in needed.items():  # what the simulated reviewers answer
        if missing := options - set(review[name].options()):
            raise CodigitError(f"the demo's reviewers need review {name} options {sorted(missing)} in the study")
    invitations = {i.id for i in study.stories.invitations}
    seen = set()
    for n, pair in enumerate(pairs):
        where = f"{folder / 'pairs.yaml'}: pairs.{n}"
        if pair.author not in by_key:
            raise CodigitError(f"{where}: author {pair.author!r} is not in demo.yaml")
        if pair.invitation not in invitations:
            raise CodigitError(f"{where}: invitation {pair.invitation!r} is not in the study")
        if unknown := set(pair.themes) - set(review["themes"].options()):
            raise CodigitError(f"{where}: unknown themes {sorted(unknown)}")
        if (pair.author, pair.invitation) in seen:  # one response per person and record, as in Argilla
            raise CodigitError(f"{where}: {pair.author} answers {pair.invitation} twice")
        seen.add((pair.author, pair.invitation))
    if len({p.prompt for p in pairs}) != len(pairs):  # the simulated reviewers know a story by its prompt
        raise CodigitError(f"{folder / 'pairs.yaml'}: two pairs have the same prompt")
    return Demo(people.card, by_key, pairs)


def _check_answers(where: str, answers: dict, questions: list) -> None:
    by_name = {q.name: q for q in questions}
    for name, value in answers.items():
        q = by_name.get(name)
        if q is None:
            raise CodigitError(f"{where}: {name}: no such question in the study")
        given = value if isinstance(value, list) else [value]
        if q.type in ("label", "multi_label") and (bad := set(given) - set(q.options())):
            raise CodigitError(f"{where}: {name}: {sorted(bad)} not among its options")


class Steps:
    """`[3/11] what …` lines with the time each step took: the demo's progress at a glance."""

    def __init__(self, total: int) -> None:
        self.total, self.n, self.start = total, 0, time.monotonic()

    @contextlib.contextmanager
    def step(self, what: str) -> Iterator[None]:
        self.n += 1
        print(f"[{self.n}/{self.total}] {what} …", flush=True)
        t = time.monotonic()
        yield
        print(f"      done in {_duration(time.monotonic() - t)}", flush=True)

    def elapsed(self) -> str:
        return _duration(time.monotonic() - self.start)


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 60 else f"{int(seconds // 60)} min {int(seconds % 60)} s"


@contextlib.contextmanager
def demo_server(home: Path, port: int, log: Path, keep_serving: bool = False) -> Iterator[str]:
    """`codigit serve` on the demo's home in a child process (loopback only); yields its URL, stops it after
    (or, with `keep_serving`, waits until Ctrl-C has stopped it)."""
    from codigit.server.serve import spawn

    proc = spawn(home, port, log)
    try:
        yield f"http://127.0.0.1:{port}"
        if keep_serving:
            print(f"\nThe demo's server keeps running at http://127.0.0.1:{port} — Ctrl-C stops it.", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                proc.wait()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=60)  # Ctrl-C reached the server too: let it shut down cleanly
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


@dataclass
class Workshop:
    """What the simulated workshop did, for the summary and the checks."""

    usernames: dict[str, str] = field(default_factory=dict)  # demo key -> pseudonym on the server
    reviews: int = 0
    self_reviews: int = 0


def _digest(*parts: object) -> str:
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()


def review_values(pair: DemoPair, person: DemoPerson, rng: random.Random, theme_options: list[str]) -> dict:
    """One reviewer's answers: the pair's quality, their leniency and noise, so reviewers agree only roughly."""
    rating = min(5, max(1, round(pair.quality + person.leniency + rng.gauss(0, 0.7))))
    if rating >= 4:
        decision = "include" if rng.random() < 0.9 else "revise"
    elif rating == 3:
        decision = rng.choices(["include", "revise", "exclude"], [0.3, 0.5, 0.2])[0]
    else:
        decision = "exclude" if rng.random() < 0.85 else "revise"
    themes = [t for t in pair.themes if rng.random() < 0.8]
    if rng.random() < 0.15:
        themes.append(rng.choice(theme_options))
    values: dict = {"rating": rating, "decision": decision}
    if themes := sorted(set(themes)):
        values["themes"] = themes
    flags = []
    if pair.quality == 1 and rng.random() < 0.7:
        flags.append("off_topic")
    if "@" in pair.story and rng.random() < 0.5:  # some reviewers notice the contact detail, some do not
        flags.append("personal_data")
    if flags:
        values["flags"] = flags
    if rating <= 2 and rng.random() < 0.5:
        values["comment"] = "Does not answer the prompt the way the guidelines ask."
    return values


def play_workshop(url: str, home: Path, study: Study, demo: Demo, folder: Path, steps: Steps, seed: int) -> Workshop:
    """Accounts, consent, questionnaire and stories; a review round with simulated reviewers; one withdrawal."""
    import csv

    from tqdm import tqdm

    from codigit.client import connect
    from codigit.collect import take_snapshot
    from codigit.forms import init_study
    from codigit.participants import add_participants, read_roster, withdraw
    from codigit.records import counts_line
    from codigit.review import open_round
    from codigit.simulate import Participant, api_client, sign_in

    done = Workshop()
    client = connect(home)
    with steps.step(f"the study's forms, and accounts for {len(demo.people)} invented participants"):
        for _ in init_study(client, study):
            pass
        roster = folder / "roster.csv"  # invented names; they stay in the demo folder, as a real roster would
        roster.write_text(
            "name,email\n" + "".join(f"Demo Participant {k[5:]},{k}@example.invalid\n" for k in demo.people),
            encoding="utf-8",
        )
        logins = add_participants(client, study, read_roster(roster), home)
        with logins.open(newline="", encoding="utf-8") as f:
            rows = {r["email"].split("@")[0]: r for r in csv.DictReader(f)}
        people = {k: Participant(rows[k]["username"], api_client(url, sign_in(url, rows[k]["username"],
                                 rows[k]["password"]))) for k in demo.people}  # fmt: skip
        done.usernames = {k: p.username for k, p in people.items()}

    with steps.step(f"consent, the optional questionnaire and {len(demo.pairs)} stories, through the UI's endpoints"):
        for key, person in demo.people.items():
            if person.consent:
                people[key].answer(study.consent.dataset, person.consent)
            if person.about_you:
                people[key].answer(study.positionality.dataset, person.about_you)
        for pair in tqdm(demo.pairs, desc="stories", unit="story", disable=not sys.stderr.isatty()):
            people[pair.author].answer(
                study.stories.dataset, {"prompt": pair.prompt, "story": pair.story}, external_id=pair.invitation
            )

    with steps.step(f"review round {ROUND}: {study.review.reviews_per_story} anonymous reviews per consented story"):
        counts = open_round(client, study, take_snapshot(study, home), ROUND, study.review.reviews_per_story)
        counts.pop("dataset")
        print("      " + counts_line(counts))
        author = {(p.prompt, p.story): p for p in demo.pairs}  # the demo knows who wrote what; the round does not
        theme_options = next(q for q in study.review.questions if q.name == "themes").options()  # exists: study.py
        dataset = f"{study.review.dataset_prefix}-{ROUND}"
        ids = {k: p.dataset_id(dataset, study.workspace) for k, p in people.items()}
        progress = tqdm(desc="reviews", unit="review", disable=not sys.stderr.isatty())
        active = list(demo.people)
        while active:  # everyone reviews one story from their queue, in turn, until no queue has one for them
            for key in list(active):
                person = demo.people[key]
                queue = [
                    (author[(r["fields"]["prompt"], r["fields"]["story"])], r) for r in people[key].queue(ids[key])
                ]
                own = [x for x in queue if x[0].author == key]
                pool = own if own and person.reviews_own and not done.self_reviews else [
                    x for x in queue if x[0].author != key]  # fmt: skip
                if not pool:
                    active.remove(key)
                    continue
                # a fixed choice per (reviewer, story), so that reruns of the demo review alike
                pair, record = min(pool, key=lambda x: _digest(seed, key, x[0].prompt))  # noqa: B023
                rng = random.Random(_digest(seed, key, pair.prompt))
                people[key].submit(record["id"], review_values(pair, person, rng, theme_options)).raise_for_status()
                done.reviews += 1
                done.self_reviews += pair.author == key
                progress.update()
        progress.close()
        print(f"      {done.reviews} reviews ({done.self_reviews} of the reviewer's own story, recorded as such)")

    for key, person in demo.people.items():
        if person.withdraws:
            with steps.step(f"{done.usernames[key]} withdraws from the study"):
                withdraw(client, study, done.usernames[key], "demo: changed their mind after the review round")
    for p in people.values():
        p.http.close()
    return done


@dataclass
class Settings:
    """How much model work the demo does: the full demo, or `--quick` (same code path, a fraction of the work)."""

    train: list[str]  # recipe overrides
    samples: int
    max_new_tokens: int
    memorisation_records: int
    n_boot: int


# 40 pairs make ~7 packed rows: more passes, one update per row, so that tuning shows (~35 steps, ~2 min here)
FULL = Settings(train=["--num_train_epochs", "5", "--gradient_accumulation_steps", "1"], samples=2,
                max_new_tokens=160, memorisation_records=0, n_boot=2000)  # fmt: skip
QUICK = Settings(train=["--max_steps", "2", "--save_steps", "1"], samples=1, max_new_tokens=12,
                 memorisation_records=4, n_boot=200)  # fmt: skip


def run_demo(folder: Path, study_path: Path, policy_path: Path, recipe: Path, suite: Path, port: int = 0,
             quick: bool = False, keep_serving: bool = False, seed: int = 0) -> dict[str, Path]:  # fmt: skip
    """The whole loop in `folder` (which must not exist yet, or be empty); returns where everything is."""
    from codigit.client import argilla_errors
    from codigit.home import atomic_write, ensure_writable_home
    from codigit.release.policy import load_policy
    from codigit.study import load_study

    study = load_study(study_path)
    demo = load_demo(study_path.parent / "demo", study)
    policy = load_policy(policy_path).model_copy(update={"card": demo.card})  # the card says: synthetic
    if not recipe.is_file() or not suite.is_file():
        raise CodigitError(f"{recipe if not recipe.is_file() else suite}: not found (run the demo from the repo)")
    folder = folder.expanduser().resolve()
    try:
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise CodigitError(f"{folder} already exists and is not empty: remove it, or pass --dir NEW_FOLDER")
    except OSError as e:
        raise CodigitError(f"{folder}: cannot use it for the demo ({e.strerror or e})") from None
    if port:
        check_port_free("127.0.0.1", port)
    # Everything stays in the folder: the demo's server and model, and the caches datasets and matplotlib keep.
    # ARGILLA_API_URL/KEY would point every command at another server: the demo must only ever use its own.
    for name in ("ARGILLA_API_URL", "ARGILLA_API_KEY"):
        os.environ.pop(name, None)
    home = ensure_writable_home(folder / "home")
    os.environ.update(CODIGIT_HOME=str(home), HF_DATASETS_CACHE=str(folder / "cache" / "datasets"),
                      MPLCONFIGDIR=str(folder / "cache" / "matplotlib"))  # fmt: skip
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the server is stopped on SIGTERM too
    settings = QUICK if quick else FULL
    where = {"folder": folder, "home": home, "server log": folder / "server.log"}
    steps = Steps(10 + sum(p.withdraws for p in demo.people.values()))
    try:
        with contextlib.ExitStack() as stack:  # the server stops however the demo ends
            with steps.step("starting the demo's own server (127.0.0.1 only)"):
                url = stack.enter_context(demo_server(home, port or free_port(), where["server log"], keep_serving))
            with argilla_errors():  # the server failing under the demo is one line, as in every command
                workshop = play_workshop(url, home, study, demo, folder, steps, seed)
            snapshot_path, release = _data_steps(home, folder, study, policy, steps, settings, seed, where)
            _model_steps(folder, recipe, suite, snapshot_path, study, policy, release, steps, settings, seed, where)
            atomic_write(folder / "demo.json", json.dumps({k: str(v) for k, v in where.items()}, indent=2) + "\n")
            _summary(url, where, workshop, steps, keep_serving)
    except CodigitError as e:
        raise CodigitError(
            f"{e} (the unfinished demo is in {folder}: remove it before running the demo again)"
        ) from None
    return where


def _data_steps(home: Path, folder: Path, study: Study, policy, steps: Steps, settings: Settings, seed: int,
                where: dict[str, Path]) -> tuple[Path, Path]:  # fmt: skip
    """collect, agreement, release (through the personal-data gate); returns (snapshot, release)."""
    from codigit.agreement import format_table, review_agreement
    from codigit.collect import collect
    from codigit.home import atomic_write
    from codigit.records import counted_reviews, counts_line
    from codigit.release.manage import decide, make_release, verify

    with steps.step("collect a snapshot and measure the reviewers' agreement"):
        snapshot_path, snapshot = collect(study, home, folder / "data" / "snapshots")
        for problem in snapshot.meta.problems:
            print(f"      warning: {problem.participant}: {problem.what}: {problem.message}; left out")
        print("      " + ", ".join(f"{n} {k}" for k, n in snapshot.meta.counts.items()))
        if snapshot.meta.excluded:
            print("      left out: " + counts_line(snapshot.meta.excluded))
        rows = review_agreement(counted_reviews(snapshot.reviews), study.review.questions, settings.n_boot, seed)
        where["agreement"] = folder / "data" / "agreement.json"
        atomic_write(where["agreement"], json.dumps(rows, indent=2) + "\n")
        print("      " + format_table([r for r in rows if r["label"] is None]).replace("\n", "\n      "))
        where["snapshot"] = snapshot_path

    with steps.step(f"release {VERSION}: policy, consent and the personal-data gate"):
        out = folder / "data" / "releases"
        logins = home / "participant-logins.csv"
        path, manifest, plan = make_release(VERSION, snapshot_path, policy, study, out, logins)
        for story_id, findings in plan.blocked:  # what an organiser would read, then decide on
            print(f"      personal data? story {story_id}: {'; '.join(findings)}")
            decide(
                out, snapshot_path, story_id, "exclude", ORGANISER, "synthetic contact details; the demo excludes it"
            )
            print(f"      recorded: exclude (by {ORGANISER!r}; `codigit release decide` in a real study)")
        if plan.blocked:
            path, manifest, plan = make_release(VERSION, snapshot_path, policy, study, out, logins)
            if plan.blocked:
                raise CodigitError(f"release {VERSION} is still blocked after the demo's decisions")
        verify(path)
        counts = manifest["counts"]
        left = counts_line({k: n for k, n in manifest["excluded"].items() if n})
        print(f"      {counts['train']} train, {counts['test']} test ({counts['public']} public); left out: {left}")
        where["release"] = path
    return snapshot_path, path


def _model_steps(folder: Path, recipe: Path, suite: Path, snapshot_path: Path, study: Study, policy, release: Path,
                 steps: Steps, settings: Settings, seed: int, where: dict[str, Path]) -> None:  # fmt: skip
    """LoRA on the CPU demo model, base-vs-tuned generation, memorisation, analysis and positionality."""
    from codigit.analysis.memorisation import memorisation
    from codigit.analysis.positionality import positionality
    from codigit.analysis.report import analyze
    from codigit.generate import generate_run
    from codigit.records import read_snapshot
    from codigit.release.manage import read_manifest
    from codigit.train.run import train

    run = folder / "runs" / f"demo-{VERSION}"
    with steps.step(f"LoRA fine-tune of the CPU demo model on release {VERSION} ({recipe})"):
        overrides = ["--release", str(release), "--release_hash", read_manifest(release)["dataset_hash"],
                     "--output_dir", str(run), "--seed", str(seed), *settings.train]  # fmt: skip
        train(recipe, overrides)
        where["run"] = run
    with steps.step(f"base and tuned model answer {suite.name} ({settings.samples} samples each)"):
        generate_run(run, [suite], settings.samples, seed, max_new_tokens=settings.max_new_tokens)
    with steps.step("memorisation: does the tuned model repeat the training stories?"):
        m = memorisation(run, max_records=settings.memorisation_records)
        print(f"      {m['records']} stories probed; extraction rate {m['extraction_rate']:.1%}")
    with steps.step("analysis: metrics, paired statistics, plots, report.html; positionality"):
        where["report"] = analyze(run, settings.n_boot, seed) / "report.html"
        out = folder / "data" / "analysis" / "positionality"
        try:
            result = positionality(read_snapshot(snapshot_path), study, policy, out)
            print(f"      positionality: {result['groups']} groups of 5 or more, in {out}")
            where["positionality"] = out / "positionality.html"
        except CodigitError as e:  # too few answers for any group of 5 is a finding, not a failure
            print(f"      positionality: {e}")


def _summary(url: str, where: dict[str, Path], workshop: Workshop, steps: Steps, keep_serving: bool) -> None:
    home = where["home"]
    someone = next(iter(workshop.usernames.values()))
    print("\n".join([
        "",
        f"codigit demo finished in {steps.elapsed()}. Everything is in {where['folder']}/ (delete it to undo):",
        *(f"  {name:<15} {path}" for name, path in where.items() if name != "folder"),
        "",
        f"Open the report in a browser: {where['report']}",
        "See the workshop in the Argilla UI:",
        f"  open {url}" if keep_serving else f"  codigit serve --home {home}   (then open the URL it prints)",
        f"  sign in as a participant, e.g. {someone} (passwords in {home / 'participant-logins.csv'}),",
        f"  or as the owner (username and password in {home / 'credentials.json'}).",
    ]), flush=True)  # fmt: skip
