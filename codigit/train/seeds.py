"""A sweep of seeds: `codigit train RECIPE --seeds K` trains the same recipe on the same release K times, with
`seed` = the recipe's seed, seed+1, …, seed+K-1, in OUTPUT_DIR/seed-<s>/ (each a whole run with its own
provenance), and records them in OUTPUT_DIR/sweep.json (`Sweep`). `codigit generate` over the sweep folder
answers with the base once and with each seed's adapter; `codigit analyze` then sets the tuned-minus-base effect
against the spread between seeds (`codigit.analysis.seeds`).

Only `seed` changes between the runs: LoRA's initialisation, dropout and, unless the recipe sets `data_seed`,
the order of the training data. Everything else, the release included, must be the same: checked before a new
seed trains, after it has, and again when the sweep is read.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from codigit.errors import CodigitError

SWEEP = "sweep.json"
# keys a run may set for itself while it prepares (`codigit.train.run.prepare`): not the user's recipe
RUN_TIME_KEYS = ("seed", "bf16", "mixed_precision", "eos_token")


class SweepRun(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    seed: int
    run: str  # the run's folder, relative to the sweep's


class Sweep(BaseModel):
    """OUTPUT_DIR/sweep.json. Written by `train --seeds` before the first new seed trains (so an interrupted
    sweep is known as one) and again when every seed has; read by `generate`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    recipe: str  # the recipe file
    release_hash: str  # the dataset hash of the release every run trains on
    runs: list[SweepRun]


def seed_folder(seed: int) -> str:
    return f"seed-{seed}"


def read_sweep(folder: Path) -> Sweep:
    from codigit.handoff import read

    path = Path(folder) / SWEEP
    return read(Sweep, path, f"{path}: not a sweep of seeds written by `codigit train --seeds` ({{why}})")


def _differences(before, after) -> list[str]:
    """How two runs' recipes (`handoff.RecipeUsed`) differ, the keys a sweep varies or a run sets itself aside."""
    from codigit.train.run import recipe_changes

    same = {**after.sft, **{k: before.sft.get(k) for k in RUN_TIME_KEYS}}
    return recipe_changes(before, after.model_copy(update={"sft": same}))


def _complaint(folder: Path, what: str, changes: list[str]) -> CodigitError:
    more = f" (+{len(changes) - 3} more)" if len(changes) > 3 else ""
    return CodigitError(f"{folder}: {what} another recipe than the sweep's ({'; '.join(changes[:3])}{more}); a sweep "
                        "varies the seed only: give a new output_dir")  # fmt: skip


def sweep_runs(folder: Path) -> list[tuple[int, Path]]:
    """(seed, run folder) of every run of the sweep in `folder`, each finished (an adapter), all of one recipe
    (but the seed) and one release."""
    from codigit.handoff import read_provenance

    folder = Path(folder)
    sweep = read_sweep(folder)
    runs = [(r.seed, folder / r.run) for r in sweep.runs]
    first = None
    for seed, run in runs:
        provenance = read_provenance(run)
        if not (run / "adapter").is_dir() or provenance.finished_at is None:
            raise CodigitError(f"{run}: seed {seed} of the sweep has not finished; rerun `codigit train --seeds`")
        if provenance.release.dataset_hash != sweep.release_hash:
            raise CodigitError(f"{run}: trained on release {provenance.release.dataset_hash[:16]}…, not the sweep's "
                               f"{sweep.release_hash[:16]}…: a sweep's runs share one release")  # fmt: skip
        if first is not None and (changes := _differences(first.recipe, provenance.recipe)):
            raise _complaint(run, "trained with", changes)
        first = first or provenance
    if len(runs) < 2:
        raise CodigitError(f"{folder}: a sweep needs two or more seeds; {len(runs)} recorded in {SWEEP}")
    return runs


def train_seeds(recipe: Path, overrides: list[str], k: int) -> list[Path]:
    """Train the recipe with K seeds, one run after the other; returns their run folders. Run again after an
    interruption, it resumes the seed it was on; run with a larger K, it adds seeds to the sweep."""
    import json

    from codigit import handoff
    from codigit.train.recipe import parse_recipe
    from codigit.train.run import as_json, train, verified_release

    if k < 2:
        raise CodigitError(f"--seeds {k}: a sweep needs two or more seeds (one seed is a plain run)")
    args, sft, model = parse_recipe(recipe, overrides)
    manifest, _ = verified_release(args)
    folder = Path(sft.output_dir)
    if (folder / "provenance.json").exists():
        raise CodigitError(f"{folder} holds a single run; give the sweep a new output_dir")
    before = read_sweep(folder) if (folder / SWEEP).exists() else None
    if before is not None and before.release_hash != manifest.dataset_hash:
        raise CodigitError(f"{folder}: a sweep on release {before.release_hash[:16]}…, not this recipe's "
                           f"{manifest.dataset_hash[:16]}…; give a new output_dir")  # fmt: skip
    if before is not None and before.runs and (folder / before.runs[0].run / "provenance.json").exists():
        recorded = handoff.read_provenance(folder / before.runs[0].run).recipe
        asked = handoff.RecipeUsed(file=str(recipe), codigit=as_json(args), sft=json.loads(sft.to_json_string()),
                                   model=as_json(model))  # fmt: skip
        if changes := _differences(recorded, asked):  # before any training: a changed recipe wastes no run
            raise _complaint(folder, "this recipe is", changes)
    seeds = [sft.seed + i for i in range(k)]
    known = {r.seed: r for r in (before.runs if before else [])}
    record = Sweep(recipe=str(recipe), release_hash=manifest.dataset_hash,
                   runs=sorted({**known, **{s: SweepRun(seed=s, run=seed_folder(s)) for s in seeds}}.values(),
                               key=lambda r: r.seed))  # fmt: skip
    handoff.write(folder / SWEEP, record)
    done = []
    for s in seeds:
        run = train(recipe, [*overrides, "--seed", str(s), "--output_dir", str(folder / seed_folder(s))])
        done.append(run)
        if changes := _differences(handoff.read_provenance(done[0]).recipe, handoff.read_provenance(run).recipe):
            raise _complaint(run, "trained with", changes)  # what the check before training could not see
    sweep_runs(folder)  # the whole sweep, earlier seeds included
    return done
