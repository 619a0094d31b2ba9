"""`codigit demo`: the whole loop once, on synthetic data, on CPU, in a folder of its own.

A server of the demo's own starts; twelve invented participants (annotation/demo/) sign in, give or withhold
consent, answer the optional questionnaire, write 40 pairs and review each other's through the endpoints the UI
calls; one withdraws. Then the real commands run in order: collect, agreement, release 0.1.0 (through the
personal-data gate), LoRA on the CPU demo model, base-vs-tuned generation, memorisation, analysis, positionality.
Nothing here is a shortcut around a stage: each step calls the function its `codigit` subcommand calls.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from codigit.cli_types import Parents, port
from codigit.demo_parts import ORGANISER, VERSION, Steps, demo_server, library_output_to
from codigit.errors import CodigitError
from codigit.suites import OPEN_SUITE

if TYPE_CHECKING:
    from codigit.study import Study
    from codigit.workshop import Workshop


@dataclass
class Settings:
    """How much model work the demo does: the full demo, or `--quick` (same code path, a fraction of the work)."""

    train: list[str]  # recipe overrides
    samples: int
    max_new_tokens: int
    memorisation_records: int
    memorisation_tokens: int  # 0: as long as the stories
    n_boot: int


# 40 pairs make ~7 packed rows: more passes, one update per row, so that tuning shows (~35 steps, ~2 min here)
FULL = Settings(train=["--num_train_epochs", "5", "--gradient_accumulation_steps", "1"], samples=2,
                max_new_tokens=160, memorisation_records=0, memorisation_tokens=0, n_boot=2000)  # fmt: skip
# quick: two optimizer steps of one packed row each (on a CPU without bf16 instructions a 4-row step takes minutes)
QUICK = Settings(train=["--max_steps", "2", "--save_steps", "1", "--gradient_accumulation_steps", "1"], samples=1,
                 max_new_tokens=12, memorisation_records=4, memorisation_tokens=48, n_boot=200)  # fmt: skip


def run_demo(folder: Path, study_path: Path, policy_path: Path, recipe: Path, suite: Path, port: int = 0,
             quick: bool = False, keep_serving: bool = False, seed: int = 0) -> dict[str, Path]:  # fmt: skip
    """The whole loop in `folder` (which must not exist yet, or be empty); returns where everything is."""
    from codigit.client import argilla_errors
    from codigit.home import atomic_write, ensure_writable_home
    from codigit.release.policy import load_policy
    from codigit.server.deployed import record_study
    from codigit.server.serve import check_port_free, free_port
    from codigit.study import load_study
    from codigit.workshop import load_demo, play_workshop

    study = load_study(study_path)
    demo = load_demo(study_path.parent / "demo", study)
    # the card says: synthetic; and k is the demo's (12 invented people are too few for the study's 5)
    policy = load_policy(policy_path).model_copy(update={"card": demo.card, "min_group_size": demo.min_group_size})
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
    where = {"folder": folder, "home": home, "server log": folder / "server.log", "demo log": folder / "demo.log"}
    steps = Steps(11 + sum(p.withdraws for p in demo.people.values()))
    try:
        with contextlib.ExitStack() as stack:  # the server stops however the demo ends
            stack.enter_context(library_output_to(where["demo log"]))
            with steps.step("starting the demo's own server (127.0.0.1 only)"):
                url = stack.enter_context(demo_server(home, port or free_port(), where["server log"], keep_serving))
            record_study(home, study_path)  # as `codigit init` does: the server applies the study's rules
            with argilla_errors():  # the server failing under the demo is one line, as in every command
                workshop = play_workshop(url, home, study, demo, folder, steps, seed)
            snapshot_path, release = _data_steps(home, folder, study, policy, steps, settings, seed, where)
            with steps.step("coding round 1: two researchers code the stories with the codebook; an adjudicator"):
                _coding_step(url, home, folder, study, snapshot_path, seed, where)
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
    from codigit.agreement import agreement_report, format_table
    from codigit.collect import collect
    from codigit.home import atomic_write
    from codigit.records import counts_line
    from codigit.release.manage import decide, make_release, verify

    with steps.step("collect a snapshot and measure the reviewers' agreement"):
        snapshot_path, snapshot = collect(study, home, folder / "data" / "snapshots")
        for problem in snapshot.meta.problems:
            print(f"      warning: {problem.participant}: {problem.what}: {problem.message}; left out")
        print("      " + counts_line(snapshot.meta.counts))
        if snapshot.meta.excluded:
            print("      left out: " + counts_line(snapshot.meta.excluded))
        report = agreement_report(snapshot, study.review.questions, None, settings.n_boot, seed)  # as `agreement`
        where["agreement"] = folder / "data" / "agreement.json"
        atomic_write(where["agreement"], json.dumps(report, indent=2) + "\n")
        rows = [r for r in report["questions"] if r["label"] is None]
        print("      " + format_table(rows).replace("\n", "\n      "))
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
        counts = manifest.counts
        left = counts_line({k: n for k, n in manifest.excluded.items() if n})
        print(f"      {counts['train']} train, {counts['test']} test ({counts['public']} public); left out: {left}")
        where["release"] = path
    return snapshot_path, path


def _coding_step(url: str, home: Path, folder: Path, study: Study, snapshot_path: Path, seed: int,
                 where: dict[str, Path]) -> None:  # fmt: skip
    """The STS researchers' side: a coding round played by simulated researchers (`codigit coding`)."""
    from codigit.agreement import format_table
    from codigit.client import argilla_errors
    from codigit.coding.play import play_coding_round
    from codigit.records import read_snapshot

    where["coding"] = folder / "data" / "coding"
    with argilla_errors():
        result = play_coding_round(url, home, study, read_snapshot(snapshot_path), where["coding"],
                                   study.root / "demo" / "coding.yaml", seed)  # fmt: skip
    print("      " + format_table(result["rows"]).replace("\n", "\n      "))
    how = ", ".join(f"{k} {v}" for k, v in result["how"].items())
    print(
        f"      {result['disputed']} disputed stories went to the adjudicator; {result['stories']} reconciled ({how})"
    )


def _model_steps(folder: Path, recipe: Path, suite: Path, snapshot_path: Path, study: Study, policy, release: Path,
                 steps: Steps, settings: Settings, seed: int, where: dict[str, Path]) -> None:  # fmt: skip
    """LoRA on the CPU demo model, base-vs-tuned generation, memorisation, analysis and positionality."""
    from codigit.analysis.positionality import positionality
    from codigit.analysis.report import analyze
    from codigit.generate import generate_run
    from codigit.handoff import read_manifest
    from codigit.memorisation import memorisation
    from codigit.records import read_snapshot
    from codigit.train.run import train

    # the trainer prints its loss dicts, and libraries their notes, on stdout: into the demo's log (stderr here)
    to_log = contextlib.redirect_stdout(sys.stderr)
    run = folder / "runs" / f"demo-{VERSION}"
    with steps.step(f"LoRA fine-tune of the CPU demo model on release {VERSION} ({recipe})"):
        overrides = ["--release", str(release), "--release_hash", read_manifest(release).dataset_hash,
                     "--output_dir", str(run), "--seed", str(seed), *settings.train]  # fmt: skip
        with to_log:
            train(recipe, overrides)
        where["run"] = run
    with steps.step(f"base and tuned model answer {suite.name} ({settings.samples} samples each)"):
        with to_log:
            generate_run(run, [suite], settings.samples, seed, max_new_tokens=settings.max_new_tokens)
    with steps.step("memorisation: does the tuned model repeat the training stories?"):
        with to_log:
            m = memorisation(run, max_records=settings.memorisation_records,
                             max_new_tokens=settings.memorisation_tokens)  # fmt: skip
        print(f"      {m.records} stories probed; extraction rate {m.extraction_rate:.1%}")
    with steps.step("analysis: metrics, paired statistics, plots, report.html; positionality"):
        with to_log:
            warned = []
            where["report"] = analyze(run, settings.n_boot, seed, on_warning=warned.append) / "report.html"
        for line in warned:  # the tuned model repeating itself is a finding the demo's reader should see
            print(f"      warning: {line}")
        out = folder / "data" / "analysis" / "positionality"
        try:
            with to_log:
                result = positionality(read_snapshot(snapshot_path), study, policy, out, coding_folder=where["coding"],
                                       coding_round="1")  # fmt: skip
            print(
                f"      positionality: {result['groups']} reviewer groups of {policy.min_group_size} or more, "
                f"{result['code_rows']} code-by-group rows, {result['term_rows']} distinctive terms, in {out}"
            )
            where["positionality"] = out / "positionality.html"
        except CodigitError as e:  # too few answers for any group is a finding, not a failure
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


def run(args: argparse.Namespace) -> None:
    if args.corpus:  # the contributed-texts flow: its own study, recipe and folder unless told otherwise
        from codigit.corpus_demo import run_corpus_demo

        run_corpus_demo(args.dir or Path("codigit-corpus-demo"), args.study or Path("annotation/texts-study.yaml"),
                        args.recipe or Path("experiments/cpu-continued-pretraining.yaml"), args.port, args.quick,
                        args.serve)  # fmt: skip
        return
    run_demo(
        args.dir or Path("codigit-demo"),
        args.study or Path("annotation/study.yaml"),
        args.policy,
        args.recipe or Path("experiments/cpu-demo.yaml"),
        args.suite,
        args.port,
        args.quick,
        args.serve,
    )


def add_parser(sub, parents: Parents) -> None:
    p = sub.add_parser(
        "demo",
        parents=[],  # its own study and folder, never the one a home recorded
        help="the whole loop on synthetic data in one folder (CPU; ~9 minutes on 2 cores)",
        description="Starts a server of its own, plays a small workshop with 12 invented participants and 40 "
        "synthetic pairs (annotation/demo/), then collect, agreement, release 0.1.0, LoRA on the CPU demo model, "
        "generation, memorisation and the HTML report. Nothing outside --dir is touched.",
    )
    p.add_argument("--study", type=Path, help="study configuration (default: annotation/study.yaml; with --corpus "
                   "annotation/texts-study.yaml)")  # fmt: skip
    p.add_argument("--dir", type=Path, help="new folder for it all (default: codigit-demo; with --corpus "
                   "codigit-corpus-demo)")  # fmt: skip
    p.add_argument("--corpus", action="store_true",
                   help="the contributed-texts flow instead: texts, corpus release, continued pretraining, model "
                        "copies for contributors, retention")  # fmt: skip
    p.add_argument("--port", type=port, help="port for the demo's server (default: any free one)")
    p.add_argument("--quick", action="store_true", help="a fraction of the model work (same steps; ~1.5 minutes)")
    p.add_argument("--serve", action="store_true", help="keep the demo's server running at the end (Ctrl-C stops)")
    p.add_argument("--policy", type=Path, default=Path("annotation/policy.yaml"), help="release policy")
    p.add_argument("--recipe", type=Path, help="training recipe (default: experiments/cpu-demo.yaml; with --corpus "
                   "experiments/cpu-continued-pretraining.yaml)")  # fmt: skip
    p.add_argument("--suite", type=Path, default=OPEN_SUITE, help="prompt suite")
    p.set_defaults(func=run)
