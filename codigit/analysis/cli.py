"""`codigit analyze` and `codigit positionality`: parsers and thin handlers (pandas and matplotlib load only when
one runs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from codigit.analysis.report import N_BOOT
from codigit.cli_types import Parents, at_least
from codigit.places import Recorded


def run_analyze(args: argparse.Namespace) -> None:
    from codigit.analysis.report import analyze

    def warn(line: str) -> None:  # the report says it at the top; a terminal user hears it here
        print(f"warning: {line}", file=sys.stderr)

    out = analyze(args.run, args.n_boot, args.seed, args.degeneration, on_warning=warn)
    print(f"analysis: {out} (report.html, comparison.csv, metrics.csv, diversity.csv, degeneration.csv, bbq.csv, "
          "differences.png)")  # fmt: skip
    if (out / "seeds.csv").is_file():  # generations of a sweep of seeds
        print(f"effects against seed noise: {out / 'seeds.csv'} and the report's section Effects beyond seed noise")


def run_positionality(args: argparse.Namespace) -> None:
    from codigit.analysis.positionality import latest_reconciled, positionality, without
    from codigit.records import read_snapshot, resolve_snapshot
    from codigit.release.manage import all_withdrawn
    from codigit.release.policy import load_policy
    from codigit.study import load_study

    study = load_study(args.study)
    policy = load_policy(args.policy, study)  # checked against the study, as for a release
    coding_round = args.coding_round or latest_reconciled(args.coding)
    snapshot = without(read_snapshot(args.snapshot), all_withdrawn(resolve_snapshot(args.snapshot).parent))
    result = positionality(snapshot, study, policy, args.out, args.judgments, args.coding, coding_round)
    codes = f"codes of coding round {coding_round}" if coding_round else "no reconciled coding round (`codigit coding`)"
    print(
        f"{result['groups']} reviewer groups of {policy.min_group_size} or more; {result['rating_rows']} rating "
        f"correlations, {result['story_rows']} author-group rows, {result['term_rows']} distinctive terms, {codes}; "
        f"in {args.out} (positionality.html and its tables as CSV)"
    )


def add_parser(sub, parents: Parents) -> None:
    p = sub.add_parser("analyze", help="metrics, paired statistics, plot and report.html for a run's generations")
    p.add_argument("run", type=Path, help="a run folder with generations.parquet")
    p.add_argument("--n-boot", type=at_least(1), default=N_BOOT, help="bootstrap resamples per metric")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--degeneration", type=Path, help="when the tuned model is said to degenerate "
                   "(default: analysis/degeneration.yaml)")  # fmt: skip
    p.set_defaults(func=run_analyze)


def add_positionality_parser(sub, parents: Parents) -> None:
    p = sub.add_parser("positionality", parents=[parents.study],
                       help="reviews and stories by (consented) positionality group")  # fmt: skip
    p.add_argument("--snapshot", type=Path, default=Recorded("snapshots"), help="snapshot (default: the latest)")
    p.add_argument("--policy", type=Path, default=Recorded("policy"), help="release policy (acceptance)")
    p.add_argument("--out", type=Path, default=Recorded("positionality"), help="report folder (default: %(default)s)")
    p.add_argument("--judgments", type=Path, help="RUN/analysis/compare-ROUND-judgments.csv: the tuned model by group")
    p.add_argument("--coding", type=Path, default=Recorded("coding"), help="coding rounds (default: %(default)s)")
    p.add_argument("--coding-round", help="the reconciled coding round to read (default: the latest reconciled)")
    p.set_defaults(func=run_positionality)
