"""`codigit demo --corpus`: the contributed-texts flow once, on synthetic texts, on CPU, in a folder of its own.

A server of the demo's own starts with `annotation/texts-study.yaml`; invented contributors (`annotation/demo/`)
consent and give texts through their own form, the study team imports one from a file, one contributor leaves,
and the others review the texts given through the form.
Then the real commands run in order: collect, corpus release 0.1.0 (near duplicates, language, length and the
personal-data gate, with the organiser's decision), continued pretraining of the CPU demo model, memorisation per
text, model copies for contributors (merged model, GGUF, contribution log, notices) and retention. Each step
calls the function its `codigit` subcommand calls.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from codigit.demo_parts import ORGANISER, VERSION, Steps, demo_server, library_output_to
from codigit.errors import CodigitError
from codigit.specs import load_yaml


class DemoText(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True, populate_by_name=True)

    author: str
    title: str = Field(min_length=1)
    licence: str
    credit: str = ""
    keep: str = Field(pattern="^(yes|no)$")
    imported: bool = Field(default=False, alias="import")
    text: str = Field(min_length=1)


class DemoTexts(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    texts: list[DemoText] = Field(min_length=1)


QUICK_TRAIN = ["--max_steps", "2", "--save_steps", "1"]  # same code path, two optimizer steps
LEAVES = "demo-11"  # gives a text, then leaves the study: their text is in no release


def run_corpus_demo(folder: Path, study_path: Path, recipe: Path, port: int = 0, quick: bool = False,
                    keep_serving: bool = False, seed: int = 0) -> dict[str, Path]:  # fmt: skip
    """The whole flow in `folder` (new or empty); returns where everything is."""
    from codigit.client import argilla_errors
    from codigit.home import atomic_write, ensure_writable_home
    from codigit.server.deployed import record_study
    from codigit.server.serve import check_port_free, free_port
    from codigit.study import load_study
    from codigit.workshop import load_demo

    study = load_study(study_path)
    if study.contributions is None:
        raise CodigitError(f"{study_path}: asks for no contributed texts (no `contributions:`)")
    people = load_demo(study_path.parent / "demo", study).people
    texts = load_yaml(study_path.parent / "demo" / "texts.yaml", DemoTexts, "the demo's texts").texts
    licences = next(q for q in study.contributions.questions if q.name == "licence").options()
    for t in texts:
        if t.author not in people or t.licence not in licences:
            raise CodigitError(f"annotation/demo/texts.yaml: {t.title!r}: unknown author or licence")
    folder = folder.expanduser().resolve()
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise CodigitError(f"{folder} already exists and is not empty: remove it, or pass --dir NEW_FOLDER")
    if port:
        check_port_free("127.0.0.1", port)
    for name in ("ARGILLA_API_URL", "ARGILLA_API_KEY"):  # the demo only ever uses its own server
        os.environ.pop(name, None)
    home = ensure_writable_home(folder / "home")
    os.environ.update(CODIGIT_HOME=str(home), HF_DATASETS_CACHE=str(folder / "cache" / "datasets"),
                      MPLCONFIGDIR=str(folder / "cache" / "matplotlib"))  # fmt: skip
    where = {"folder": folder, "home": home, "server log": folder / "server.log", "demo log": folder / "demo.log"}
    steps = Steps(11 if study.contributions.review else 10)
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(library_output_to(where["demo log"]))
            with steps.step("starting the demo's own server (127.0.0.1 only)"):
                url = stack.enter_context(demo_server(home, port or free_port(), where["server log"], keep_serving))
            record_study(home, study_path)
            with argilla_errors():
                usernames = _contributors(url, home, study, people, texts, folder, steps)
            _corpus_steps(home, folder, study, recipe, quick, seed, steps, where, usernames)
            atomic_write(folder / "demo.json", json.dumps({k: str(v) for k, v in where.items()}, indent=2) + "\n")
            print(f"\ncodigit demo --corpus finished in {steps.elapsed()}. Everything is in {folder}/:")
            for name, path in where.items():
                if name != "folder":
                    print(f"  {name:<18} {path}")
    except CodigitError as e:
        raise CodigitError(f"{e} (the unfinished demo is in {folder}: remove it before running it again)") from None
    return where


def _contributors(url, home, study, people, texts, folder, steps) -> dict[str, str]:
    """Accounts, consent, texts through the form, one imported file, one person leaving; returns key -> username."""
    import csv

    from codigit.client import connect
    from codigit.contributions import import_text
    from codigit.forms import init_study
    from codigit.participants import add_participants, withdraw
    from codigit.roster import read_roster
    from codigit.simulate import Participant, api_client, sign_in

    keys = sorted({t.author for t in texts})
    client = connect(home)
    with steps.step(f"the study's forms, and accounts for {len(keys)} invented contributors"):
        for _ in init_study(client, study):
            pass
        roster = folder / "roster.csv"
        roster.write_text("name,email\n" + "".join(f"Demo Contributor {k[5:]},{k}@example.invalid\n" for k in keys),
                          encoding="utf-8")  # fmt: skip
        logins = add_participants(client, study, read_roster(roster), home).logins
        with logins.open(newline="", encoding="utf-8") as f:
            rows = {r["email"].split("@")[0]: r for r in csv.DictReader(f)}
        person = {k: Participant(rows[k]["username"], api_client(url, sign_in(url, rows[k]["username"],
                                 rows[k]["password"]))) for k in keys}  # fmt: skip
    given = [t for t in texts if not t.imported]
    with steps.step(f"consent, then {len(given)} texts through each contributor's own form (the UI's endpoints)"):
        slots: dict[str, int] = {}
        for k in keys:
            if people[k].consent:
                person[k].answer("consent", people[k].consent)
        for t in given:
            slots[t.author] = slots.get(t.author, 0) + 1
            values = {"title": t.title, "text": t.text, "licence": t.licence, "keep": t.keep,
                      **({"attribution_name": t.credit} if t.credit else {})}  # fmt: skip
            person[t.author].answer(study.contributions.dataset, values, external_id=f"text-{slots[t.author]}")
    with steps.step("the study team imports a text a contributor sent as a file; one contributor leaves"):
        for t in texts:
            if t.imported:
                path = folder / "received" / f"{t.title.lower().replace(' ', '-')}.md"
                path.parent.mkdir(exist_ok=True)
                path.write_text(t.text, encoding="utf-8")
                import_text(client, study, t.text, person[t.author].username, t.title, t.licence, "", t.credit,
                            t.keep == "yes")  # fmt: skip
                print(f"      imported {path.name} for {t.author}")
        withdraw(client, study, person[LEAVES].username, "the demo's leaver")
        print(f"      {LEAVES} left the study")
    if study.contributions.review is not None:
        _review_round(home, study, person, [k for k in keys if people[k].consent and k != LEAVES], texts, steps)
    return {k: p.username for k, p in person.items()}


def _review_round(home, study, person, reviewers, texts, steps) -> None:
    """`codigit review open 1`'s texts round, then each reviewer works through their queue until every text has
    its reviews: all say include, and one reviewer flags the text with an email address in it."""
    from codigit.client import connect
    from codigit.collect import take_snapshot
    from codigit.review import open_texts_round

    per_text = study.contributions.review.reviews_per_text
    with steps.step(f"a review round of the texts: each given through the form is reviewed by {per_text} others"):
        counts = open_texts_round(connect(home), study, take_snapshot(study, home), "1")
        name = f"{study.contributions.review.dataset_prefix}-1"
        flagged = next((t.text for t in texts if "@" in t.text and not t.imported), None)
        done, by = 0, set()
        for k in reviewers:
            p = person[k]
            for record in p.queue(p.dataset_id(name, study.workspace)):
                values = {"decision": "include"}
                if record["fields"]["text"] == flagged:
                    values["flags"] = ["personal_data"]
                p.submit(record["id"], values).raise_for_status()
                done, by = done + 1, by | {k}
        print(f"      {counts['added']} texts in {counts['dataset']}; {done} reviews by {len(by)} reviewers")


def _corpus_steps(home, folder, study, recipe, quick, seed, steps, where, usernames) -> None:
    from codigit.client import argilla_errors, connect
    from codigit.collect import collect
    from codigit.corpus.prepare import CorpusSettings
    from codigit.corpus.release import plan_corpus, read_corpus_manifest, write_corpus_release
    from codigit.forms import withdrawn_people
    from codigit.memorisation_texts import memorisation_texts
    from codigit.model_export import export
    from codigit.records import counts_line
    from codigit.retention import delete, plan
    from codigit.train.run import train

    with steps.step("collect a snapshot (texts from the forms and the import, none of the leaver's)"):
        snapshot_path, snapshot = collect(study, home, folder / "data" / "snapshots")
        print(f"      {len(snapshot.contributions)} texts; left out: {counts_line(snapshot.meta.excluded) or 'none'}")
    corpus = folder / "data" / "corpus"
    review = study.contributions.review
    settings = CorpusSettings(min_words=20, min_reviews=review.reviews_per_text if review else 0)
    with steps.step(f"corpus release {VERSION}: duplicates, language, length, the personal-data gate, the log"):
        held = plan_corpus(snapshot_path, settings).preparation.awaiting_decision()
        decisions = {}
        for item in held:  # what an organiser reads, then decides on (`codigit corpus decide`)
            print(f"      personal data? {item.contribution.title!r}: {item.detail}; recorded: exclude "
                  f"(by {ORGANISER!r})")  # fmt: skip
            decisions[item.key] = "exclude"
        release = write_corpus_release(VERSION, plan_corpus(snapshot_path, settings, decisions), settings, corpus)
        m = read_corpus_manifest(release)
        print(f"      {m.counts['included']} texts, {m.counts['tokens']:,} tokens; left out: "
              f"{counts_line({k: v for k, v in m.excluded.items() if v})}")  # fmt: skip
        where["corpus release"] = release
    run = folder / "runs" / f"corpus-{VERSION}"
    to_log = contextlib.redirect_stdout(sys.stderr)  # the trainer's loss dicts go to the demo's log
    with steps.step(f"continued pretraining of the CPU demo model on the corpus ({recipe})"):
        overrides = ["--release", str(release), "--release_hash", m.dataset_hash, "--output_dir", str(run),
                     "--seed", str(seed), *(QUICK_TRAIN if quick else [])]  # fmt: skip
        with to_log:
            train(recipe, overrides)
        losses = [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()
                  if '"loss"' in line]  # fmt: skip
        print(f"      loss {losses[0]:.3f} → {losses[-1]:.3f} over {len(losses)} logged steps" if losses else "")
        where["run"] = run
    with steps.step("memorisation: how much of each contributed text does the model repeat?"):
        with to_log:
            probe = memorisation_texts(run, windows=2 if quick else 8, new_tokens=12 if quick else 48, seed=seed)
        print(f"      {len(probe.texts)} texts probed; see {run / 'analysis' / 'memorisation_texts.json'}")
    with steps.step("model copies for contributors: merged model, GGUF file, contribution log, notices"):
        with to_log:
            where["export"] = export(run)
        notices = sorted(p.name for p in (where["export"] / "notices").iterdir())
        print(f"      {', '.join(p.name for p in sorted(where['export'].iterdir()))}; notices: {', '.join(notices)}")
    with steps.step("retention: texts not confirmed to be kept, and the leaver's, are deleted"):
        client = connect(home)
        with argilla_errors():
            doomed = plan(client, study, withdrawn_people(client, study))
            counts = delete(client, study, doomed, folder / "data" / "snapshots", corpus, folder / "data")
        print(f"      deleted {counts['texts']} texts; {counts['snapshots_changed']} snapshots scrubbed, "
              f"{counts['corpus_releases_removed']} corpus releases removed (the run keeps its weights)")  # fmt: skip
        if not where["corpus release"].exists():  # it held texts not to be kept: gone, as retention promises
            del where["corpus release"]
        where["deletion log"] = folder / "data" / "retention" / "deletions.jsonl"
