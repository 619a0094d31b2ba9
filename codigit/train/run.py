"""`codigit train RECIPE [--key value …]`: TRL's SFTTrainer (+ PEFT LoRA) on a named, verified release: a
stories release (chat SFT) or a corpus release (continued pretraining on its texts, `codigit.train.texts`).

A run folder (the recipe's `output_dir`, e.g. runs/cpu-demo/) ends up with `adapter/` (LoRA weights and the
tokenizer), optionally `merged/`, `provenance.json` (`handoff.Provenance`), `metrics.jsonl` (one line per logged
step, and one per evaluation on the release's `eval_split` when the recipe asks) and the trainer's checkpoints,
from which a rerun of the same command resumes. A rerun with a changed recipe is refused: the checkpoint and
provenance belong to the recipe that made them.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path

from codigit import handoff
from codigit.errors import CodigitError
from codigit.handoff import Manifest, Provenance
from codigit.records import utc_now
from codigit.train.formats import collective_token, prepare_text_tokenizer, prepare_tokenizer
from codigit.train.models import resolve_model
from codigit.train.recipe import CodigitArgs, Recipe, check_recipe, parse_recipe, require_pinned
from codigit.train.runlog import parameter_count, run_log_callback
from codigit.train.speed import register_packed_attention, use_gap_dropout
from codigit.train.texts import check_corpus_recipe, corpus_texts, release_kind, verified_corpus

_LOGGER = logging.getLogger("codigit.train")


def verified_release(args: CodigitArgs) -> tuple[Manifest, Path]:
    """The recipe's release, after checking every hash in it (and the recipe's pinned dataset hash)."""
    from codigit.release.manage import verify

    path = Path(args.release).expanduser()
    manifest = verify(path)
    require_pinned(args, path, manifest.dataset_hash)
    return manifest, path


def release_split(args: CodigitArgs, manifest: Manifest, path: Path, split: str):
    """One split of a verified release as a `datasets.Dataset` of `messages`, as the run sees them."""
    from datasets import load_dataset

    from codigit.release.build import split_file

    if not manifest.counts.get(split):
        raise CodigitError(f"{path}: release {manifest.version} has no records in split {split!r}")
    data = load_dataset("parquet", data_files=str(split_file(path, split)), split="train")
    if (args.voices or args.only_collective) and "collective" not in data.column_names:
        raise CodigitError(f"{path}: release {manifest.version} has no `collective` column: voices and "
                           "only_collective need a study of several collectives")  # fmt: skip
    if args.only_collective:  # one member collective's adapter on the shared base (a community garden)
        data = data.filter(lambda row: row["collective"] == args.only_collective)
        if not len(data):
            raise CodigitError(f"{path}: no record of collective {args.only_collective!r} in split {split!r}")
    if args.voices:  # each conversation in its own collective's voice
        if unknown := sorted({c for c in data["collective"] if c} - set(args.collectives)):
            raise CodigitError(f"{path}: collective(s) {', '.join(unknown)} of the release are not in the recipe's "
                               "collectives")  # fmt: skip
    data = data.select_columns(["messages", *(["collective"] if args.voices else [])])
    if args.max_records:
        data = data.select(range(min(args.max_records, len(data))))
    if args.voices:
        data = data.map(lambda row: {"messages": [{"role": "system", "content": collective_token(row["collective"])},
                                                  *row["messages"]] if row["collective"] else row["messages"]},
                        remove_columns=["collective"])  # fmt: skip
    if args.collective:  # the collective's token opens every conversation, as it will at generation time
        token = collective_token(args.collective)
        data = data.map(lambda row: {"messages": [{"role": "system", "content": token}, *row["messages"]]})
    return data


def load_release(args: CodigitArgs):
    """The training split of the recipe's verified release, its manifest and its folder."""
    manifest, path = verified_release(args)
    return release_split(args, manifest, path, args.release_split), manifest, path


def as_json(obj) -> dict:
    """A config object's fields as provenance.json holds them (enums and paths as text)."""
    return json.loads(json.dumps(vars(obj), default=str))


def provenance(source: str, recipe: Recipe, manifest, release_path: Path) -> Provenance:
    """`manifest`: a stories release's `Manifest` or a corpus release's `CorpusManifest`."""
    import importlib.metadata as md

    import torch

    args, sft, model_args = recipe
    kind = getattr(manifest, "kind", "stories")
    records = manifest.counts["included"] if kind == "corpus" else manifest.counts[args.release_split]
    versions = {}
    for name in ("codigit", "torch", "transformers", "trl", "peft", "datasets", "accelerate"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    return Provenance.model_validate({
        "release": {"path": str(release_path), "version": manifest.version, "dataset_hash": manifest.dataset_hash,
                    "split": args.release_split, "records": records, "kind": kind},
        "recipe": {"file": source, "codigit": as_json(args), "sft": json.loads(sft.to_json_string()),
                   "model": as_json(model_args)},
        "seeds": {"seed": sft.seed, "data_seed": sft.data_seed},
        "code": {"git_commit": _git("rev-parse", "HEAD"), "git_dirty": bool(_git("status", "--porcelain")),
                 "versions": versions},
        "hardware": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                     "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]},
        "eval_split": args.eval_split or None,
    })  # fmt: skip


def _git(*args: str) -> str | None:
    """Asked in the codigit package's folder: the code that runs, not whatever repository the shell is in."""
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, check=True,
                             cwd=Path(__file__).resolve().parents[1])  # fmt: skip
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def recipe_changes(before: handoff.RecipeUsed, after: handoff.RecipeUsed) -> list[str]:
    """How two runs' recipes differ, as `key: old -> new`. Locations (the recipe file, the release folder,
    output_dir) may be spelt differently between runs; the release itself is compared by its hash."""
    moved = {("codigit", "release"), ("sft", "output_dir")}
    changes = []
    for section in ("codigit", "sft", "model"):
        old, new = getattr(before, section), getattr(after, section)
        for key in sorted(set(old) | set(new)):
            if (section, key) not in moved and old.get(key) != new.get(key):
                changes.append(f"{key}: {old.get(key)!r} -> {new.get(key)!r}")
    return changes


@dataclass
class Prepared:
    trainer: object  # trl.SFTTrainer
    tokenizer: object
    args: CodigitArgs
    run: Path
    record: Provenance  # so far
    resume: str | None


def prepare(recipe: Recipe | Path, overrides: list[str] | None = None, callbacks: list | None = None) -> Prepared:
    """Everything up to `trainer.train()`: recipe, verified release, tokenizer format, model, LoRA, trainer.
    `recipe` is a `Recipe` built in code, or a recipe file (with `--key value` overrides)."""
    if isinstance(recipe, Recipe):
        if overrides:
            raise CodigitError("overrides apply to a recipe file; change the Recipe's fields instead")
        check_recipe(recipe, "the recipe given in code")
        source = "(in-process)"
    else:
        source = str(recipe)
        recipe = parse_recipe(Path(recipe), overrides)
    args, sft, model_args = recipe
    _require_bitsandbytes(source, model_args, sft)
    corpus = release_kind(args.release) == "corpus"
    if corpus:  # continued pretraining on the corpus's texts, every token in the loss
        check_corpus_recipe(recipe, source)
        manifest, release_path = verified_corpus(args)
        data, evaluation = corpus_texts(args, release_path), None
    else:
        manifest, release_path = verified_release(args)
        data = release_split(args, manifest, release_path, args.release_split)
        evaluation = release_split(args, manifest, release_path, args.eval_split) if args.eval_split else None

    import torch
    from accelerate import PartialState
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, ProgressCallback
    from transformers.trainer_utils import get_last_checkpoint
    from trl import SFTTrainer, get_peft_config, get_quantization_config

    capability = torch.backends.cpu.get_cpu_capability()
    if sft.bf16 and not torch.cuda.is_available() and "BF16" not in capability and "AMX" not in capability:
        # bf16 autocast on a CPU without bf16 instructions is emulated: measured here (AVX2), a CPU-demo step took
        # minutes instead of seconds. fp32 gives the same training, a little more memory; provenance records it.
        _LOGGER.warning("this CPU (%s) has no bf16 instructions: training in fp32, not the recipe's bf16", capability)
        sft.bf16, sft.mixed_precision = False, "no"  # both: TrainingArguments derived the second from the first

    run = Path(sft.output_dir)
    record = provenance(source, recipe, manifest, release_path)
    if (run / "provenance.json").exists():
        before = handoff.read_provenance(run)
        if before.release.dataset_hash != manifest.dataset_hash:
            raise CodigitError(f"{run} holds a run on another release; give a new output_dir")
        if changes := recipe_changes(before.recipe, record.recipe):
            more = f" (+{len(changes) - 3} more)" if len(changes) > 3 else ""
            raise CodigitError(
                f"{run} holds a run of another recipe ({'; '.join(changes[:3])}{more}): it resumes only the same "
                "recipe; give a new output_dir"
            )
    if not model_args.model_name_or_path:
        raise CodigitError(f"{source}: model_name_or_path is required")
    model_path = resolve_model(model_args.model_name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path, revision=model_args.model_revision)
    except OSError as e:
        raise CodigitError(f"cannot load the tokenizer of {model_path!r} ({str(e).splitlines()[0]})") from None
    tokens = [collective_token(c) for c in args.collectives]
    (prepare_text_tokenizer if corpus else prepare_tokenizer)(tokenizer, tokens)
    sft.eos_token = tokenizer.eos_token  # TRL mirrors it onto model.config, so a merged model stops there too

    register_packed_attention()  # before loading: `attn_implementation: codigit_packed` names it
    quantization = get_quantization_config(model_args)
    dtype = model_args.dtype if model_args.dtype in ("auto", None) else getattr(torch, model_args.dtype)
    load = {"dtype": dtype, "attn_implementation": model_args.attn_implementation}
    if args.random_init:  # same shapes and code path, no weights to download: throughput is weight-independent
        config = AutoConfig.from_pretrained(model_path, revision=model_args.model_revision)
        # built where it trains: initialising 8B random weights on the CPU takes minutes of a rented GPU's time
        with torch.device(PartialState().device if torch.cuda.is_available() and not sft.use_cpu else "cpu"):
            model = AutoModelForCausalLM.from_config(config, **load)
    else:
        model = AutoModelForCausalLM.from_pretrained(
            model_path, revision=model_args.model_revision, quantization_config=quantization, **load,
            device_map={"": PartialState().local_process_index} if quantization is not None else None,  # k-bit
        )  # fmt: skip
    model.config.use_cache = False  # training; and padding-free packing is exact only without the cache
    if not corpus:  # the tuned model stops at the end of its turn (a text run: TRL adds end-of-document to its own)
        model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    peft_config = get_peft_config(model_args)
    if tokens:
        model.resize_token_embeddings(len(tokenizer))
        if peft_config is not None:  # LoRA leaves embeddings frozen: train just the new tokens' rows
            peft_config.trainable_token_indices = {"embed_tokens": tokenizer.convert_tokens_to_ids(tokens)}
    n_params = parameter_count(model.config)
    ours, bar = tracking_callbacks(recipe, run, data, tokenizer, n_params)
    trainer_class = SFTTrainer
    if args.label_only_loss:
        from codigit.train.loss import LabelOnlyLossSFTTrainer as trainer_class
    trainer = trainer_class(
        model=model,
        args=sft,
        train_dataset=data,
        eval_dataset=evaluation,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[*ours, *(callbacks or [])],
    )
    if bar is not None:  # in place of transformers' bar, which would print every log as a dict
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(bar)
    trainer.loss_chunk_tokens = args.loss_chunk_tokens
    if args.fast_lora_dropout:  # after the trainer has wrapped the model in PEFT's LoRA layers
        use_gap_dropout(trainer.model)
    _require_learning(source, trainer)
    record = record.model_copy(update={"parameters": n_params})
    resume = get_last_checkpoint(str(run)) if run.is_dir() and any(run.glob("checkpoint-*")) else None
    return Prepared(trainer, tokenizer, args, run, record, resume)


def tracking_callbacks(recipe: Recipe, run: Path, data, tokenizer, n_params: int) -> tuple[list, object | None]:
    """The callbacks that report a run's figures (metrics.jsonl, trackio), evaluate it (eval loss, memorisation)
    and stop it early, as the recipe asks; and the progress bar (None when the recipe disables tqdm)."""
    from accelerate import PartialState
    from transformers import EarlyStoppingCallback

    from codigit.train import evaluation, tracking

    args, sft, _ = recipe
    callbacks, sinks, bar = [], [tracking.metrics_file(run / "metrics.jsonl")], None
    if args.trackio and PartialState().is_main_process:
        callbacks.append(tracker := tracking.trackio_callback(run, json.loads(sft.to_json_string())))
        sinks.append(tracker.log)
    if not sft.disable_tqdm:
        bar = tracking.training_bar_callback()
        sinks.append(bar.show)
    callbacks.append(run_log_callback(sinks, n_params))
    chosen = evaluation.probes(data, tokenizer, args.memorisation_probe, args.memorisation_tokens, sft.seed)
    if len(chosen) < args.memorisation_probe:  # a diagnostic: the run goes on with what can be probed
        then = "probing those" if chosen else "memorisation is not measured; lower memorisation_tokens"
        _LOGGER.warning(
            f"memorisation_probe {args.memorisation_probe}: only {len(chosen)} training stories are "
            f"{2 * args.memorisation_tokens} tokens long or more (twice memorisation_tokens): {then}"
        )
    callbacks.append(evaluation.evaluation_callback(sinks, chosen, tokenizer.pad_token_id))
    if args.early_stopping_patience:
        sft.metric_for_best_model, sft.greater_is_better = "eval_loss", False
        callbacks.append(EarlyStoppingCallback(args.early_stopping_patience, args.early_stopping_threshold))
    return callbacks, bar


def _require_learning(recipe: str, trainer) -> None:
    """Warm-up starts the learning rate at 0: a run no longer than its warm-up would train nothing and exit 0."""
    import math

    sft = trainer.args
    if sft.max_steps > 0:
        steps = sft.max_steps
    else:  # as the trainer counts them: batches per epoch, over gradient accumulation, times epochs
        batches = len(trainer.get_train_dataloader())
        steps = math.ceil(max(1, math.ceil(batches / sft.gradient_accumulation_steps)) * sft.num_train_epochs)
    if (warmup := sft.get_warmup_steps(steps)) >= steps:
        raise CodigitError(
            f"{recipe}: warmup_steps {sft.warmup_steps:g} gives {warmup} warm-up step(s) of a {steps}-step run: the "
            "learning rate would stay at 0 and nothing would be learnt; train longer or lower warmup_steps"
        )


def _require_bitsandbytes(recipe: str, model_args, sft) -> None:
    """4-bit/8-bit loading and bitsandbytes' optimisers import it only when the model loads or the first step
    runs; say so before anything is loaded."""
    from transformers import trainer_optimizer

    needs = [k for k in ("load_in_4bit", "load_in_8bit") if getattr(model_args, k)]
    # a private list: read without a default, so a rename in transformers fails every training test, not silently
    if sft.optim in trainer_optimizer._BITSANDBYTES_OPTIMIZERS:
        needs.append(f"optim {getattr(sft.optim, 'value', sft.optim)}")
    if needs and importlib.util.find_spec("bitsandbytes") is None:
        raise CodigitError(f"{recipe}: {', '.join(needs)} needs bitsandbytes: pip install bitsandbytes")


def train(recipe: Recipe | Path, overrides: list[str] | None = None, callbacks: list | None = None) -> Path:
    """Run (or resume) the recipe (a `Recipe`, or a recipe file with overrides); returns the run folder. Under
    `accelerate launch` every process trains and only the first writes the run's files."""
    p = prepare(recipe, overrides, callbacks)
    main = p.trainer.is_world_process_zero()
    if p.args.merge and (p.trainer.is_fsdp_enabled or p.trainer.is_deepspeed_enabled):
        raise CodigitError("merge: the weights are sharded under FSDP/DeepSpeed; train without merge")
    prov_path = p.run / "provenance.json"
    record = p.record.model_copy(update={"started_at": utc_now(), "resumed_from": p.resume,
                                         "slurm_job_id": os.environ.get("SLURM_JOB_ID")})  # fmt: skip
    if main:
        handoff.write(prov_path, record)
    try:
        result = p.trainer.train(resume_from_checkpoint=p.resume)
    finally:  # an interrupted run's trackio logs are flushed too
        for callback in p.trainer.callback_handler.callbacks:
            if callable(close := getattr(callback, "close", None)):
                close()
    p.trainer.save_model(str(p.run / "adapter"))  # every process takes part (sharded weights), the first writes
    if main:
        p.tokenizer.save_pretrained(p.run / "adapter")
        if p.args.merge and hasattr(p.trainer.model, "merge_and_unload"):
            merged = p.trainer.model.merge_and_unload()
            merged.save_pretrained(p.run / "merged")
            p.tokenizer.save_pretrained(p.run / "merged")
        done = {"finished_at": utc_now(), "train_loss": result.training_loss, "global_step": result.global_step}
        handoff.write(prov_path, record.model_copy(update=done))
    p.trainer.accelerator.wait_for_everyone()  # no rank leaves (its launcher may then stop the rest) mid-write
    return p.run
