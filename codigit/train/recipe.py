"""Recipes: TRL's own `SFTConfig` and `ModelConfig` plus a few codigit keys (`CodigitArgs`): a `Recipe`.

A recipe file (YAML, with `--key value` overrides) is one way to make one: parsing goes through TRL's `TrlParser`
(the parser behind `trl sft --config`), so every SFTConfig / ModelConfig field keeps its name, type and default.
Code can also build a `Recipe` from the three config objects and hand it to `codigit.train.run.train`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from codigit.errors import CodigitError

if TYPE_CHECKING:
    from trl import ModelConfig, SFTConfig


@dataclass
class CodigitArgs:
    release: str = field(default="", metadata={"help": "release folder, e.g. data/releases/0.1.0"})
    release_hash: str = field(default="", metadata={"help": "the release's dataset hash; a mismatch is an error"})
    release_split: str = field(default="train", metadata={"help": "split to train on"})
    eval_split: str = field(
        default="",
        metadata={"help": "release split to compute the eval loss on (e.g. test), at SFTConfig's eval_strategy"},
    )
    early_stopping_patience: int = field(
        default=0,
        metadata={"help": "stop after this many evaluations without a better eval loss (0: never; needs eval_split)"},
    )
    early_stopping_threshold: float = field(
        default=0.0, metadata={"help": "how much lower the eval loss must be to count as better"}
    )
    memorisation_probe: int = field(
        default=0,
        metadata={"help": "at each evaluation, how much of this many training stories the model continues word for "
                  "word (metrics.jsonl `memorisation`; 0: not measured; needs eval_split)"},
    )  # fmt: skip
    memorisation_tokens: int = field(
        default=32, metadata={"help": "the probe's prefix and continuation, in tokens each"}
    )
    trackio: bool = field(
        default=True, metadata={"help": "also log the run's figures to trackio, offline, in OUTPUT_DIR/trackio/"}
    )
    max_records: int = field(default=0, metadata={"help": "train on the first N records only (0: all)"})
    collectives: list[str] = field(
        default_factory=list,
        metadata={"help": "collective-identity tokens to add, e.g. codigit; each becomes <|collective:NAME|>"},
    )
    collective: str = field(default="", metadata={"help": "the collective whose token conditions this release"})
    voices: bool = field(
        default=False,
        metadata={"help": "each conversation opens with its own record's collective token (the release's "
                  "`collective` column); collectives lists them all"},
    )  # fmt: skip
    only_collective: str = field(
        default="",
        metadata={"help": "train on this collective's records only (the release's `collective` column): one "
                  "adapter of a community garden; `codigit train --each-collective` makes one per collective"},
    )  # fmt: skip
    merge: bool = field(default=False, metadata={"help": "also save the LoRA-merged full model"})
    label_only_loss: bool = field(
        default=True,
        metadata={"help": "score only label positions, in chunks (same loss, less compute); one process only"},
    )
    loss_chunk_tokens: int = field(default=1024, metadata={"help": "label positions per LM-head chunk"})
    fast_lora_dropout: bool = field(
        default=False,
        metadata={"help": "LoRA dropout masks drawn from the gaps between dropped elements: PEFT's distribution, "
                  "~lora_dropout as many random numbers (another random stream than PEFT's)"},
    )  # fmt: skip
    random_init: bool = field(
        default=False, metadata={"help": "build the model from its config with random weights (throughput benchmarks)"}
    )


N_MIN = 4  # memorisation_tokens: a continuation shorter than the probe's 4-grams cannot be scored


class Recipe(NamedTuple):
    """A training run's whole configuration; unpacks as (codigit, sft, model)."""

    codigit: CodigitArgs
    sft: SFTConfig
    model: ModelConfig


def check_recipe(recipe: Recipe, where: str = "recipe") -> None:
    """What TRL's own checks cannot know: codigit's keys and how they go with TRL's."""
    args, sft, _ = recipe
    if not args.release:
        raise CodigitError(f"{where}: `release` is required (a release folder, e.g. data/releases/0.1.0)")
    if args.collective and args.collective not in args.collectives:
        raise CodigitError(f"{where}: collective {args.collective!r} is not among collectives")
    if args.only_collective and args.voices:
        raise CodigitError(f"{where}: only_collective trains one collective's adapter; voices trains them all in one")
    if args.voices and (args.collective or len(args.collectives) < 2):
        raise CodigitError(f"{where}: voices takes each record's collective: list at least two in collectives, "
                           "and no single collective")  # fmt: skip
    evaluating = str(getattr(sft.eval_strategy, "value", sft.eval_strategy)) != "no"
    if args.eval_split and not evaluating:
        raise CodigitError(f"{where}: eval_split {args.eval_split!r} needs eval_strategy steps (with eval_steps) or "
                           "epoch")  # fmt: skip
    if evaluating and not args.eval_split:
        raise CodigitError(f"{where}: eval_strategy {sft.eval_strategy.value} needs eval_split (e.g. test): the "
                           "release split to evaluate on")  # fmt: skip
    for key in ("early_stopping_patience", "memorisation_probe"):
        if getattr(args, key) < 0:
            raise CodigitError(f"{where}: {key} must be 0 or more")
        if getattr(args, key) and not evaluating:
            raise CodigitError(f"{where}: {key} acts at each evaluation: add eval_split (e.g. test) and "
                               "eval_strategy steps with eval_steps")  # fmt: skip
    if args.memorisation_tokens < N_MIN:
        raise CodigitError(f"{where}: memorisation_tokens must be at least {N_MIN} (the probe scores 4-grams)")
    if args.early_stopping_patience and (sft.metric_for_best_model or "loss") not in ("loss", "eval_loss"):
        raise CodigitError(f"{where}: early stopping watches the eval loss; metric_for_best_model is "
                           f"{sft.metric_for_best_model!r}")  # fmt: skip
    if args.eval_split and args.eval_split == args.release_split:
        raise CodigitError(f"{where}: eval_split and release_split are both {args.eval_split!r}: evaluate on "
                           "records the run does not train on")  # fmt: skip


def require_pinned(args: CodigitArgs, path: Path, dataset_hash: str) -> None:
    """The release at `path` is the one the recipe pins with `release_hash` (when it pins one)."""
    if args.release_hash and args.release_hash != dataset_hash:
        raise CodigitError(
            f"{path}: dataset hash {dataset_hash[:16]}… is not the recipe's release_hash {args.release_hash[:16]}…; "
            "the recipe was written for another release"
        )


# The keys of TRL's SFTConfig and ModelConfig, for the TRL and transformers that codigit pins: importing TRL to ask
# its parser takes ~10 s, too long to wait for a misspelt key. `python -m codigit.train.recipe` rewrites the file
# (tests/test_train.py checks it against the parser).
TRL_KEYS = Path(__file__).with_name("trl_keys.json")


def recipe_keys() -> set[str]:
    """Every key a recipe file may hold: codigit's, SFTConfig's and ModelConfig's (and argparse's `help`)."""
    import dataclasses
    import importlib.metadata
    import json

    stored = json.loads(TRL_KEYS.read_text(encoding="utf-8"))
    if any(importlib.metadata.version(name) != version for name, version in stored["versions"].items()):
        return {a.dest for a in _parser()._actions}  # other versions than the file's: ask TRL itself
    return set(stored["keys"]) | {f.name for f in dataclasses.fields(CodigitArgs)}


def write_trl_keys() -> None:
    import dataclasses
    import importlib.metadata
    import json

    from codigit.home import atomic_write

    keys = {a.dest for a in _parser()._actions} - {f.name for f in dataclasses.fields(CodigitArgs)}
    versions = {name: importlib.metadata.version(name) for name in ("trl", "transformers")}
    atomic_write(TRL_KEYS, json.dumps({"versions": versions, "keys": sorted(keys)}, indent=1) + "\n")


def _parser():
    from trl import ModelConfig, SFTConfig, TrlParser

    class Parser(TrlParser):
        def error(self, message: str):  # argparse would print usage and exit; say it in one line instead
            raise CodigitError(f"recipe: {message}")

    return Parser((CodigitArgs, SFTConfig, ModelConfig))


def parse_recipe(recipe: Path, overrides: list[str] | None = None) -> Recipe:
    """The `Recipe` in a recipe file, with `--key value` overrides."""
    import yaml

    recipe = Path(recipe)
    if not recipe.is_file():
        raise CodigitError(f"{recipe}: recipe not found")
    try:
        raw = yaml.safe_load(recipe.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        problem = str(getattr(e, "problem", None) or e).splitlines()[0]  # YAML adds a second line with the place
        raise CodigitError(f"{recipe}: not a readable YAML recipe ({problem})") from None
    if not isinstance(raw, dict):
        raise CodigitError(f"{recipe}: expected a mapping of keys")
    if unknown := sorted(set(raw) - recipe_keys() - {"env"}):
        raise CodigitError(f"{recipe}: unknown key(s) {', '.join(unknown)} (not SFTConfig, ModelConfig or codigit's)")
    missing = f"{recipe}: `release` is required (a release folder, e.g. data/releases/0.1.0)"
    given = any(o == "--release" or o.startswith("--release=") for o in overrides or [])
    if not raw.get("release") and not given:  # asked before parsing, whose first complaint would be another
        raise CodigitError(missing)
    parser = _parser()
    try:
        with warnings.catch_warnings():  # TRL's own default (gradient_checkpointing) trips a transformers rename
            warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*", category=FutureWarning)
            codigit_args, sft, model = parser.parse_args_and_config(["--config", str(recipe), *(overrides or [])])
    except (ValueError, TypeError) as e:
        hint = " (no GPU here: add `use_cpu: true` to the recipe)" if "use_cpu" in str(e) else ""
        raise CodigitError(f"{recipe}: {str(e).splitlines()[0]}{hint}") from None
    parsed = Recipe(codigit_args, sft, model)
    check_recipe(parsed, str(recipe))
    return parsed


if __name__ == "__main__":
    write_trl_keys()
