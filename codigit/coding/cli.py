"""`codigit coding open|agreement|reconcile|export|codebook`: parsers and handlers (Argilla, pandas and the
analysis code load only when one runs)."""

from __future__ import annotations

import argparse
from pathlib import Path

from codigit.agreement import N_BOOT
from codigit.cli_types import Parents, at_least
from codigit.errors import CodigitError
from codigit.places import Recorded


def _round_context(args: argparse.Namespace):
    """(study, client, consented stories of a fresh snapshot, round info, its codebook, its codings there)."""
    from codigit.client import connect
    from codigit.coding.reconcile import kept_codebook
    from codigit.coding.rounds import consented_stories, read_codings, read_round
    from codigit.collect import take_snapshot
    from codigit.home import resolve_home
    from codigit.study import load_study

    study = load_study(args.study)
    info = read_round(args.coding, args.round)
    codebook = kept_codebook(args.coding, info)
    stories = consented_stories(take_snapshot(study, resolve_home(args.home), args.database_url))
    client = connect(args.home)
    codings = [c for c in read_codings(client, study, info) if c.story_id in stories and c.coder in info.coders]
    return study, client, stories, info, codebook, codings


def run_open(args: argparse.Namespace) -> None:
    from codigit.client import argilla_errors, connect
    from codigit.coding.codebook import load_codebook
    from codigit.coding.rounds import check_round, coder_accounts, open_round
    from codigit.collect import take_snapshot
    from codigit.home import ensure_writable_home, resolve_home
    from codigit.study import load_study

    study, codebook = load_study(args.study), load_codebook(args.codebook)
    coders = [c.strip() for c in args.coders.split(",") if c.strip()]
    home = resolve_home(args.home)
    check_round(args.coding, args.round, codebook, coders)  # before any account is made
    snapshot = take_snapshot(study, home, args.database_url)
    client = connect(args.home)
    with argilla_errors():
        made = coder_accounts(client, study, ensure_writable_home(home), coders)
        result = open_round(client, study, snapshot, args.round, codebook, coders, args.coding, home)
    print(f"coding round {args.round} (codebook {codebook.name} v{codebook.version}, {len(set(coders))} coders): "
          f"{result['line']}; {result['stories']} consented stories" +
          (f", {result['removed']} no longer consented removed" if result["removed"] else ""))  # fmt: skip
    _announce(made, home)


def _announce(made: list[str], home: Path) -> None:
    if made:
        print(f"new researcher accounts {', '.join(made)}: passwords in {home}/researcher-logins.csv (mode 0600)")


def run_agreement(args: argparse.Namespace) -> None:
    from codigit.agreement import format_table
    from codigit.client import argilla_errors
    from codigit.coding.reconcile import record_agreement

    with argilla_errors():
        _, _, stories, info, codebook, codings = _round_context(args)
    if not codings:
        raise CodigitError(f"no submitted codings yet in round {args.round}")
    report = record_agreement(args.coding, info, codebook, codings, len(stories), args.n_boot, args.seed)
    print(format_table(report["codes"]))
    print(f"{len(report['disputed'])} of {report['stories_coded']} coded stories disputed; all in "
          f"{Path(args.coding) / args.round / 'agreement.json'}")  # fmt: skip


def run_reconcile(args: argparse.Namespace) -> None:
    from codigit.client import argilla_errors
    from codigit.coding.reconcile import ask_adjudicator, record_reconciliation
    from codigit.coding.rounds import coder_accounts
    from codigit.home import ensure_writable_home, resolve_home

    with argilla_errors():
        study, client, stories, info, codebook, codings = _round_context(args)
        if not codings:
            raise CodigitError(f"no submitted codings yet in round {args.round}")
        adjudicated, made, home = None, [], resolve_home(args.home)
        if args.adjudicator:
            made = coder_accounts(client, study, ensure_writable_home(home), [args.adjudicator])
            adjudicated = ask_adjudicator(client, study, info, codebook, codings, stories, args.adjudicator, home)
    summary = record_reconciliation(args.coding, info, codings, adjudicated, args.adjudicator)
    _announce(made, home)
    how = ", ".join(f"{k} {v}" for k, v in summary["how"].items())
    print(f"round {args.round}: {summary['stories']} stories reconciled ({how}); in "
          f"{Path(args.coding) / args.round / 'reconciled.jsonl'}")  # fmt: skip
    if args.adjudicator and (waiting := summary["how"].get("majority", 0) + summary["how"].get("unresolved", 0)):
        print(f"{waiting} disputed stories wait for {args.adjudicator} in {info.dataset}-adjudication; rerun this "
              "command after they answer")  # fmt: skip


def run_export(args: argparse.Namespace) -> None:
    from codigit.coding.export import export
    from codigit.collect import take_snapshot
    from codigit.home import resolve_home
    from codigit.release.policy import load_policy
    from codigit.study import load_study

    study = load_study(args.study)
    policy = load_policy(args.policy, study)
    snapshot = take_snapshot(study, resolve_home(args.home), args.database_url)
    out = args.out or Path(args.coding) / args.round / "export"
    written = export(snapshot, study, policy.min_group_size, args.coding, args.round, out, args.format)
    print(f"export of round {args.round}: {', '.join(str(p) for p in written)} (mode 0600: researchers only)")


def run_codebook(args: argparse.Namespace) -> None:
    from codigit.coding.codebook import kept_versions, load_codebook

    codebook = load_codebook(args.codebook)
    print(f"codebook {codebook.name} version {codebook.version}: {len(codebook.codes)} codes")
    for code in codebook.codes:
        history = "; ".join(f"v{c.version} {c.how} from {', '.join(c.was)}" for c in code.history)
        print(f"  {code.name:<24} {code.title}" + (f"  ({history})" if history else ""))
    for name, why in codebook.retired.items():
        print(f"  retired: {name} ({why})")
    kept = kept_versions(Path(args.coding) / "codebooks", codebook.name)
    print("versions used by rounds: " + (", ".join(c.version for c in kept) or "none yet"))


def add_parser(sub, parents: Parents) -> None:
    coding = sub.add_parser("coding", help="researchers code the stories with a codebook (qualitative analysis)",
                            description="Coding rounds for researchers: consented stories, without authors or "
                            "positionality, coded independently with a codebook; agreement, reconciliation, and an "
                            "export for qualitative tools. Order: open, (researchers code), agreement, reconcile, "
                            "export.")  # fmt: skip
    csub = coding.add_subparsers(dest="action", required=True, metavar="ACTION")
    folder = argparse.ArgumentParser(add_help=False)
    folder.add_argument("--coding", type=Path, default=Recorded("coding"),
                        help="coding rounds folder (default: %(default)s)")  # fmt: skip
    server = [parents.home, parents.study, parents.database, folder]

    p = csub.add_parser("open", parents=server, help="put the consented stories before the coders; safe to rerun")
    p.add_argument("round", help="round name, e.g. 1 or pilot")
    p.add_argument("--codebook", type=Path, default=Recorded("codebook"), help="default: %(default)s")
    p.add_argument("--coders", required=True, help="researchers' usernames, comma-separated (accounts are made)")
    p.set_defaults(func=run_open)

    p = csub.add_parser("agreement", parents=server, help="Krippendorff's alpha per code and the disputed stories")
    p.add_argument("round", help="the round's name, as given to `open`")
    p.add_argument("--n-boot", type=at_least(1), default=N_BOOT,
                   help="bootstrap resamples for the 95%% CI (default: %(default)s)")  # fmt: skip
    p.add_argument("--seed", type=at_least(0), default=0, help="for the bootstrap (default: %(default)s)")
    p.set_defaults(func=run_agreement)

    p = csub.add_parser("reconcile", parents=server, help="one code set per story: majority, or an adjudicator's")
    p.add_argument("round", help="the round's name, as given to `open`")
    p.add_argument("--adjudicator", help="a researcher who decides the disputed stories (in Argilla)")
    p.set_defaults(func=run_reconcile)

    p = csub.add_parser("export", parents=server, help="stories with codes, memos and groups, for QDA tools")
    p.add_argument("round", help="a reconciled round's name")
    p.add_argument("--policy", type=Path, default=Recorded("policy"), help="its min_group_size is k")
    p.add_argument("--out", type=Path, help="folder (default: CODING/ROUND/export)")
    p.add_argument("--format", choices=["csv", "parquet", "both"], default="both", help="default: %(default)s")
    p.set_defaults(func=run_export)

    p = csub.add_parser("codebook", parents=[folder], help="a codebook's codes, their history and the versions used")
    p.add_argument("--codebook", type=Path, default=Recorded("codebook"), help="default: %(default)s")
    p.set_defaults(func=run_codebook)
