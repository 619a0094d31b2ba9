"""`codigit train RECIPE [--key value …]`: TRL's SFTTrainer (+ PEFT LoRA) on a named, verified release.

A run folder (the recipe's `output_dir`, e.g. runs/cpu-demo/) ends up with `adapter/` (LoRA weights and the
tokenizer), optionally `merged/`, `provenance.json`, `metrics.jsonl` (one line per logged step) and the
trainer's checkpoints, from which a rerun of the same command resumes. A rerun with a changed recipe is refused:
the checkpoint and provenance belong to the recipe that made them.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import logging
import os
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from codigit.errors import CodigitError
from codigit.home import atomic_write
from codigit.records import utc_now
from codigit.train.formats import collective_token, prepare_tokenizer
from codigit.train.models import resolve_model
from codigit.train.recipe import CodigitArgs, parse_recipe

_LOGGER = logging.getLogger("codigit.train")

# Dense bf16 peak FLOP/s per device, for MFU. CPUs have no useful single figure: MFU is left empty there.
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "GH200": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12,
              "A10G": 125e12, "RTX 4090": 165e12, "RTX 3090": 71e12}  # fmt: skip


def load_release(args: CodigitArgs):
    """The release's split as a `datasets.Dataset` of `messages`, after checking every hash in it."""
    from datasets import load_dataset

    from codigit.release.build import split_file
    from codigit.release.manage import verify

    path = Path(args.release).expanduser()
    manifest = verify(path)
    if args.release_hash and args.release_hash != manifest["dataset_hash"]:
        raise CodigitError(
            f"{path}: dataset hash {manifest['dataset_hash'][:16]}… is not the recipe's release_hash "
            f"{args.release_hash[:16]}…; the recipe was written for another release"
        )
    if not manifest["counts"].get(args.release_split):
        raise CodigitError(f"{path}: release {manifest['version']} has no records in split {args.release_split!r}")
    data = load_dataset("parquet", data_files=str(split_file(path, args.release_split)), split="train")
    data = data.select_columns(["messages"])
    if args.max_records:
        data = data.select(range(min(args.max_records, len(data))))
    if args.collective:  # the collective's token opens every conversation, as it will at generation time
        token = collective_token(args.collective)
        data = data.map(lambda row: {"messages": [{"role": "system", "content": token}, *row["messages"]]})
    return data, manifest, path


def provenance(recipe: Path, args, sft, model_args, manifest: dict, release_path: Path) -> dict:
    import importlib.metadata as md

    import torch

    versions = {}
    for name in ("codigit", "torch", "transformers", "trl", "peft", "datasets", "accelerate"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    return {
        "release": {"path": str(release_path), "version": manifest["version"],
                    "dataset_hash": manifest["dataset_hash"], "split": args.release_split,
                    "records": manifest["counts"][args.release_split]},
        "recipe": {"file": str(recipe), "codigit": vars(args), "sft": json.loads(sft.to_json_string()),
                   "model": {k: v for k, v in vars(model_args).items()}},
        "seeds": {"seed": sft.seed, "data_seed": sft.data_seed},
        "code": {"git_commit": _git("rev-parse", "HEAD"), "git_dirty": bool(_git("status", "--porcelain")),
                 "versions": versions},
        "hardware": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                     "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]},
    }  # fmt: skip


def _git(*args: str) -> str | None:
    """Asked in the codigit package's folder: the code that runs, not whatever repository the shell is in."""
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, check=True,
                             cwd=Path(__file__).resolve().parents[1])  # fmt: skip
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def recipe_changes(before: dict, after: dict) -> list[str]:
    """How two provenance `recipe` entries differ, as `key: old -> new`. Locations (the recipe file, the release
    folder, output_dir) may be spelt differently between runs; the release itself is compared by its hash."""
    moved = {("codigit", "release"), ("sft", "output_dir")}
    changes = []
    for section in ("codigit", "sft", "model"):
        old, new = before.get(section) or {}, after.get(section) or {}
        for key in sorted(set(old) | set(new)):
            if (section, key) not in moved and old.get(key) != new.get(key):
                changes.append(f"{key}: {old.get(key)!r} -> {new.get(key)!r}")
    return changes


def parameter_count(config) -> int:
    """Parameters of the model `config` describes, built on the meta device (no memory, no weights). A 4-bit
    model's own tensors pack two weights per byte, so counting them would halve N and with it the MFU."""
    import torch
    from transformers import AutoModelForCausalLM

    config = copy.deepcopy(config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with torch.device("meta"):
        return sum(p.numel() for p in AutoModelForCausalLM.from_config(config).parameters())


def peak_flops() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(0)
    return next((f for key, f in sorted(PEAK_FLOPS.items(), key=lambda kv: -len(kv[0])) if key in name), None)


def mfu(n_params: int, tokens_per_s: float, peak: float | None, devices: int = 1) -> float | None:
    """Model FLOPs utilisation: 6·N FLOPs per trained token (forward + backward) over the devices' dense peak."""
    return round(6 * n_params * tokens_per_s / (peak * devices), 4) if peak else None


def run_log_callback(path: Path, n_params: int):
    """metrics.jsonl: loss, tokens/s since the last log (all processes together, as TRL counts them), MFU
    (6·N·tokens/s over the peak of all the devices), peak memory (of this process's device)."""
    import resource

    import torch
    from transformers import TrainerCallback

    class RunLog(TrainerCallback):
        def __init__(self):
            self.last = (time.perf_counter(), 0)
            self.peak = peak_flops()

        def on_train_begin(self, args, state, control, **kwargs):  # a resumed run counts from where it is
            self.last = (time.perf_counter(), state.num_input_tokens_seen or 0)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs or "loss" not in logs:
                return
            now, tokens = time.perf_counter(), logs.get("num_tokens", state.num_input_tokens_seen or 0)
            rate = (tokens - self.last[1]) / max(now - self.last[0], 1e-9)
            self.last = (now, tokens)
            if torch.cuda.is_available():
                memory = torch.cuda.max_memory_allocated() / 2**30
            else:
                memory = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
            entry = {
                "step": state.global_step,
                "epoch": round(state.epoch or 0, 4),
                "loss": logs["loss"],
                "learning_rate": logs.get("learning_rate"),
                "tokens": tokens,
                "tokens_per_s": round(rate, 1),
                "mfu": mfu(n_params, rate, self.peak, args.world_size),
                "peak_memory_gib": round(memory, 3),
                "time": utc_now(),
            }
            with open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")

    return RunLog()


@dataclass
class Prepared:
    trainer: object  # trl.SFTTrainer
    tokenizer: object
    args: CodigitArgs
    run: Path
    record: dict  # provenance so far
    resume: str | None


def prepare(recipe: Path, overrides: list[str] | None = None, callbacks: list | None = None) -> Prepared:
    """Everything up to `trainer.train()`: recipe, verified release, tokenizer format, model, LoRA, trainer."""
    args, sft, model_args = parse_recipe(recipe, overrides)
    _require_bitsandbytes(recipe, model_args, sft)
    data, manifest, release_path = load_release(args)

    import torch
    from accelerate import PartialState
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.trainer_utils import get_last_checkpoint
    from trl import SFTTrainer, get_peft_config, get_quantization_config

    capability = torch.backends.cpu.get_cpu_capability()
    if sft.bf16 and not torch.cuda.is_available() and "BF16" not in capability and "AMX" not in capability:
        # bf16 autocast on a CPU without bf16 instructions is emulated: measured here (AVX2), a CPU-demo step took
        # minutes instead of seconds. fp32 gives the same training, a little more memory; provenance records it.
        _LOGGER.warning("this CPU (%s) has no bf16 instructions: training in fp32, not the recipe's bf16", capability)
        sft.bf16, sft.mixed_precision = False, "no"  # both: TrainingArguments derived the second from the first

    run = Path(sft.output_dir)
    record = provenance(Path(recipe), args, sft, model_args, manifest, release_path)
    prov_path = run / "provenance.json"
    if prov_path.exists():
        before = json.loads(prov_path.read_text(encoding="utf-8"))
        if before["release"]["dataset_hash"] != manifest["dataset_hash"]:
            raise CodigitError(f"{run} holds a run on another release; give a new output_dir")
        # compared as stored: through JSON, as provenance.json holds it
        if changes := recipe_changes(before["recipe"], json.loads(json.dumps(record["recipe"], default=str))):
            more = f" (+{len(changes) - 3} more)" if len(changes) > 3 else ""
            raise CodigitError(
                f"{run} holds a run of another recipe ({'; '.join(changes[:3])}{more}): it resumes only the same "
                "recipe; give a new output_dir"
            )
    if not model_args.model_name_or_path:
        raise CodigitError(f"{recipe}: model_name_or_path is required")
    model_path = resolve_model(model_args.model_name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path, revision=model_args.model_revision)
    except OSError as e:
        raise CodigitError(f"cannot load the tokenizer of {model_path!r} ({str(e).splitlines()[0]})") from None
    tokens = [collective_token(c) for c in args.collectives]
    prepare_tokenizer(tokenizer, tokens)
    sft.eos_token = tokenizer.eos_token  # TRL mirrors it onto model.config, so a merged model stops there too

    quantization = get_quantization_config(model_args)
    dtype = model_args.dtype if model_args.dtype in ("auto", None) else getattr(torch, model_args.dtype)
    if args.random_init:  # same shapes and code path, no weights to download: throughput is weight-independent
        config = AutoConfig.from_pretrained(model_path, revision=model_args.model_revision)
        # built where it trains: initialising 8B random weights on the CPU takes minutes of a rented GPU's time
        with torch.device(PartialState().device if torch.cuda.is_available() and not sft.use_cpu else "cpu"):
            model = AutoModelForCausalLM.from_config(
                config, dtype=dtype, attn_implementation=model_args.attn_implementation
            )
    else:
        model = AutoModelForCausalLM.from_pretrained(
            model_path,
            revision=model_args.model_revision,
            dtype=dtype,
            attn_implementation=model_args.attn_implementation,
            quantization_config=quantization,
            device_map={"": PartialState().local_process_index} if quantization is not None else None,  # k-bit
        )
    model.config.use_cache = False  # training; and padding-free packing is exact only without the cache
    model.generation_config.eos_token_id = tokenizer.eos_token_id  # the tuned model stops at the end of its turn
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    peft_config = get_peft_config(model_args)
    if tokens:
        model.resize_token_embeddings(len(tokenizer))
        if peft_config is not None:  # LoRA leaves embeddings frozen: train just the new tokens' rows
            peft_config.trainable_token_indices = {"embed_tokens": tokenizer.convert_tokens_to_ids(tokens)}
    n_params = parameter_count(model.config)
    trainer_class = SFTTrainer
    if args.label_only_loss:
        from codigit.train.loss import LabelOnlyLossSFTTrainer as trainer_class
    trainer = trainer_class(
        model=model,
        args=sft,
        train_dataset=data,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[run_log_callback(run / "metrics.jsonl", n_params), *(callbacks or [])],
    )
    trainer.loss_chunk_tokens = args.loss_chunk_tokens
    _require_learning(recipe, trainer)
    record["parameters"] = n_params
    resume = get_last_checkpoint(str(run)) if run.is_dir() and any(run.glob("checkpoint-*")) else None
    return Prepared(trainer, tokenizer, args, run, record, resume)


def _require_learning(recipe: Path, trainer) -> None:
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


def _require_bitsandbytes(recipe: Path, model_args, sft) -> None:
    """4-bit/8-bit loading and bitsandbytes' optimisers import it only when the model loads or the first step
    runs; say so before anything is loaded."""
    from transformers import trainer_optimizer

    needs = [k for k in ("load_in_4bit", "load_in_8bit") if getattr(model_args, k)]
    # a private list: read without a default, so a rename in transformers fails every training test, not silently
    if sft.optim in trainer_optimizer._BITSANDBYTES_OPTIMIZERS:
        needs.append(f"optim {getattr(sft.optim, 'value', sft.optim)}")
    if needs and importlib.util.find_spec("bitsandbytes") is None:
        raise CodigitError(f"{recipe}: {', '.join(needs)} needs bitsandbytes: pip install bitsandbytes")


def train(recipe: Path, overrides: list[str] | None = None, callbacks: list | None = None) -> Path:
    """Run (or resume) the recipe; returns the run folder. Under `accelerate launch` every process trains and
    only the first writes the run's files."""
    p = prepare(recipe, overrides, callbacks)
    main = p.trainer.is_world_process_zero()
    if p.args.merge and (p.trainer.is_fsdp_enabled or p.trainer.is_deepspeed_enabled):
        raise CodigitError("merge: the weights are sharded under FSDP/DeepSpeed; train without merge")
    prov_path = p.run / "provenance.json"
    p.record.update(started_at=utc_now(), resumed_from=p.resume)
    if main:
        atomic_write(prov_path, json.dumps(p.record, indent=2, default=str) + "\n")
    result = p.trainer.train(resume_from_checkpoint=p.resume)
    p.trainer.save_model(str(p.run / "adapter"))  # every process takes part (sharded weights), the first writes
    if main:
        p.tokenizer.save_pretrained(p.run / "adapter")
        if p.args.merge and hasattr(p.trainer.model, "merge_and_unload"):
            merged = p.trainer.model.merge_and_unload()
            merged.save_pretrained(p.run / "merged")
            p.tokenizer.save_pretrained(p.run / "merged")
        p.record.update(finished_at=utc_now(), train_loss=result.training_loss, global_step=result.global_step)
        atomic_write(prov_path, json.dumps(p.record, indent=2, default=str) + "\n")
    return p.run
