"""codigit's CPU recipe vs TRL's default SFT settings, same model, same data, same objective, in one run.

Data: a synthetic release of conversations shaped like the stories (prompts of 8-30 words, responses of 200-800
tokens). Both settings train with assistant-only loss and the same LoRA through `codigit.train.run.train`; each
runs in its own process so its peak memory (max RSS) is its own. Throughput is real (non-padding) input tokens
per second over the steps after the first, and MFU over those same steps (GPU). "Equal loss" is checked on one
fixed set of examples in fp32: the model's own loss on a padded batch (TRL's path) against codigit's label-only
loss on the packed batch; with --llama8b on a 2-layer model of Llama-3.1-8B's widths (the identity does not
depend on depth, and fp32 at full depth would only cost time).

    .venv/bin/python benchmarks/sft_throughput.py            # SmolLM2-135M-Instruct (codigit:smollm2)
    .venv/bin/python benchmarks/sft_throughput.py --quick    # a tiny Llama with Llama-3's 128k vocabulary
    python benchmarks/sft_throughput.py --llama8b            # GPU: random weights in Llama-3.1-8B's shapes, bf16
Last line: `sft_tokens_per_s_ratio: X` (goal >= 2).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORDS = ("care work family career nurse engineer river coat bridge choir lab coin sister route kind brave quiet "
         "morning letter garden train city story mother father child friend teacher doctor").split()  # fmt: skip
COMMON = {"dtype": "float32", "use_peft": True, "lora_r": 16, "lora_alpha": 32,
          "lora_target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"], "seed": 7, "learning_rate": 1e-4,
          "assistant_only_loss": True, "logging_steps": 1, "save_strategy": "no", "report_to": "none",
          "use_cpu": True, "disable_tqdm": True, "max_length": 1024,
          "trackio": False}  # fmt: skip  # a second log of the same figures, not compared (and not on the GPU image)
CPU_KEYS = ("per_device_train_batch_size", "gradient_accumulation_steps", "max_length", "packing", "padding_free",
            "activation_checkpointing", "bf16", "attn_implementation", "fast_lora_dropout")  # fmt: skip


def cpu_settings() -> dict[str, dict]:
    """TRL's defaults vs the performance keys of experiments/cpu-demo.yaml (codigit's CPU recipe)."""
    import yaml

    recipe = yaml.safe_load((REPO / "experiments" / "cpu-demo.yaml").read_text())
    # the defaults: SFTConfig's own batch 8, no packing, activation checkpointing on, fp32, TRL's loss over the
    # model's full logits (its fused chunked LM head); both train with assistant-only loss and the same LoRA
    return {"trl-defaults": {"label_only_loss": False},
            "codigit": {"label_only_loss": True, **{k: recipe[k] for k in CPU_KEYS}}}  # fmt: skip


def make_release(work: Path, n: int) -> Path:
    import uuid

    from codigit.records import write_snapshot
    from codigit.release.manage import make_release as release
    from codigit.release.policy import load_policy
    from codigit.snapshot import build_snapshot
    from codigit.study import load_study

    rng = random.Random(0)
    people = [f"p-{k:04d}" for k in range(max(4, n // 5))]

    def vals(d: dict) -> str:
        return json.dumps({k: {"value": v} for k, v in d.items()})

    rows = [
        (
            p,
            "consent",
            uuid.uuid4().hex,
            "consent-1.0",
            "{}",
            p,
            "annotator",
            vals({"training": "yes", "public": "no", "attribution": "none"}),
            "2026-01-01 00:00:00",
        )
        for p in people
    ]
    for i in range(n):
        author, record = people[i % len(people)], uuid.uuid4()
        prompt = " ".join(rng.choices(WORDS, k=rng.randint(8, 30))) + "?"
        story = " ".join(rng.choices(WORDS, k=rng.randint(200, 800))) + "."
        rows.append(
            (
                author,
                "stories",
                record.hex,
                f"i{i}",
                "{}",
                author,
                "annotator",
                vals({"prompt": prompt, "story": story}),
                "2026-01-01 00:00:00",
            )
        )
        fields = json.dumps({"prompt": prompt, "story": story})
        for reviewer in rng.sample([p for p in people if p != author], 3):
            rows.append(
                (
                    "codigit",
                    "review-1",
                    uuid.uuid4().hex,
                    str(record),
                    fields,
                    reviewer,
                    "annotator",
                    vals({"rating": 5, "decision": "include"}),
                    "2026-01-01 00:00:00",
                )
            )
    study = load_study(REPO / "annotation/study.yaml")
    snap = write_snapshot(build_snapshot(rows, study, "benchmark"), work / "snapshots")
    path, _, _ = release("1.0.0", snap, load_policy(REPO / "annotation/policy.yaml"), study, work / "releases", None)
    return path  # fmt: skip


def tiny_model(work: Path) -> Path:
    from codigit.train.llama3 import save_random_llama

    return save_random_llama(work / "tiny", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096)  # fmt: skip


def llama8b_shapes(work: Path, layers: int | None = None) -> Path:
    """A config (no weights: the recipe's random_init builds them) with Llama-3.1-8B's shapes (`layers` layers
    instead of its 32 when given)."""
    from codigit.train.llama3 import LLAMA_31_8B, save_llama_shapes

    shape = {**LLAMA_31_8B, "num_hidden_layers": layers or LLAMA_31_8B["num_hidden_layers"]}
    return save_llama_shapes(work / f"llama8b-{shape['num_hidden_layers']}", **shape)


def gpu_settings() -> dict[str, dict]:
    """TRL's defaults vs experiments/llama31-8b-lora.yaml's performance keys, both bf16 with random weights and the
    recipe's LoRA (the same trainable weights: equal work, so tokens/s compare)."""
    import yaml

    recipe = yaml.safe_load((REPO / "experiments" / "llama31-8b-lora.yaml").read_text())
    keep = ("per_device_train_batch_size", "gradient_accumulation_steps", "max_length", "packing", "padding_free",
            "activation_checkpointing", "bf16", "attn_implementation")  # fmt: skip
    gpu = {"dtype": "bfloat16", "use_cpu": False, "random_init": True,
           "lora_target_modules": recipe["lora_target_modules"]}  # fmt: skip
    return {"trl-defaults": {**gpu, "label_only_loss": False},
            "codigit": {**gpu, "label_only_loss": True, **{k: recipe[k] for k in keep}}}  # fmt: skip


def child(setting: str, work: Path, model: str, steps: int, quick: bool, gpu: bool = False) -> None:
    """One setting, in this process: train `steps` steps and print what the parent needs as JSON."""
    import yaml

    from codigit.train.run import train
    from codigit.train.runlog import mfu, peak_flops

    settings = gpu_settings() if gpu else cpu_settings()
    recipe = {**COMMON, **settings[setting], "release": str(work / "releases" / "1.0.0"), "model_name_or_path": model,
              "output_dir": str(work / "runs" / setting), "max_steps": steps}  # fmt: skip
    if quick and setting == "trl-defaults":
        # a step of 8 rows takes ~30 s here; tokens/s of the defaults barely depends on the batch size (the
        # full-vocabulary logits per token dominate), and 2 rows pad less, so this flatters the defaults if anything
        recipe["per_device_train_batch_size"] = 2
    path = work / f"{setting}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    run = train(path)
    logs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    from datetime import datetime

    def t(entry: dict) -> float:
        return datetime.fromisoformat(entry["time"].replace("Z", "+00:00")).timestamp()

    tokens = logs[-1]["tokens"] - logs[0]["tokens"]  # the first step (warm-up) is left out
    rate = tokens / (t(logs[-1]) - t(logs[0]))
    n_params = json.loads((run / "provenance.json").read_text())["parameters"]
    print(json.dumps({"tokens_per_s": rate, "tokens": tokens, "loss": [e["loss"] for e in logs],
                      "mfu": mfu(n_params, rate, peak_flops()),  # over the same steps as rate
                      "peak_gpu_gib": logs[-1]["peak_memory_gib"] if gpu else None,
                      "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))  # fmt: skip


def loss_equality(work: Path, model: str, gpu: bool) -> tuple[float, float]:
    """fp32: the model's own loss on a padded batch vs codigit's label-only loss (and attention) on the same examples
    packed."""
    import torch
    import yaml
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from codigit.train.loss import label_only_loss
    from codigit.train.run import prepare

    # codigit's attention: the padded batch goes through sdpa either way, the packed one per conversation with it
    attention = (gpu_settings() if gpu else cpu_settings())["codigit"].get("attn_implementation")
    recipe = {**COMMON, "release": str(work / "releases" / "1.0.0"), "model_name_or_path": model,
              "output_dir": str(work / "runs" / "equality"), "max_steps": 1,
              **({"attn_implementation": attention} if attention else {}),
              **({"use_cpu": False, "random_init": True} if gpu else {})}  # fmt: skip
    path = work / "equality.yaml"
    path.write_text(yaml.safe_dump(recipe))
    p = prepare(path)
    rows = [p.trainer.train_dataset[i] for i in range(4)]
    pad = p.tokenizer.pad_token_id
    model_ = p.trainer.model.eval()

    def batch(padding_free: bool) -> dict:
        collated = DataCollatorForLanguageModeling(pad_token_id=pad, padding_free=padding_free)(rows)
        return {k: v.to(model_.device) if torch.is_tensor(v) else v for k, v in collated.items()}

    with torch.no_grad():
        padded = model_(**batch(False), use_cache=False).loss.item()
        packed = label_only_loss(model_, batch(True), 1024).item()
    return padded, packed


def gpu_name() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "(none found)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny Llama, 24 conversations, 2 steps (< 1 min)")
    parser.add_argument("--steps", type=int, help="optimizer steps per setting")
    parser.add_argument("--llama8b", action="store_true", help="GPU: random weights in Llama-3.1-8B's shapes, bf16")
    parser.add_argument("--child", choices=["trl-defaults", "codigit"], help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.work, args.model, args.steps, args.quick, args.llama8b)
        return
    steps = args.steps or (2 if args.quick else 8)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        make_release(work, 24 if args.quick else 120)
        if args.llama8b:
            model = str(llama8b_shapes(work))
        else:
            model = str(tiny_model(work)) if args.quick else "codigit:smollm2"
        results = {}
        for setting in gpu_settings() if args.llama8b else cpu_settings():
            command = [sys.executable, __file__, "--child", setting, "--work", str(work), "--model", model,
                       "--steps", str(steps), *(["--quick"] if args.quick else []),
                       *(["--llama8b"] if args.llama8b else [])]  # fmt: skip
            out = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
            if out.returncode != 0:
                sys.exit(f"{setting} failed:\n{out.stderr[-3000:]}")
            results[setting] = json.loads(out.stdout.strip().splitlines()[-1])
        padded, packed = loss_equality(work, str(llama8b_shapes(work, 2)) if args.llama8b else model, args.llama8b)
    if args.llama8b:
        label = "random Llama-3.1-8B shapes, bf16; GPU " + gpu_name()
        lora = "LoRA r16 on attention and MLP (both settings)"
    else:
        label = "tiny Llama (128k vocab)" if args.quick else "SmolLM2-135M-Instruct"
        label, lora = f"{label}; CPU", "LoRA r16 on attention"
    print(f"model: {label}; {steps} steps per setting, {lora}, assistant-only loss")
    for setting, r in results.items():
        gpu = f", MFU {r['mfu']}, peak GPU memory {r['peak_gpu_gib']} GiB" if args.llama8b else ""
        print(f"{setting:>13}: {r['tokens_per_s']:8.1f} tokens/s over {r['tokens']:.0f} tokens{gpu}, "
              f"peak RSS {r['peak_rss_gib']:.2f} GiB, "
              f"loss {r['loss'][0]:.4f} -> {r['loss'][-1]:.4f}")  # fmt: skip
    on = " on 2 layers of Llama-3.1-8B's shapes" if args.llama8b else ""
    print(f"equal loss (fp32, same 4 examples{on}): padded model loss {padded:.6f}, packed label-only loss "
          f"{packed:.6f}, difference {abs(padded - packed):.2e}")  # fmt: skip
    print(f"sft_tokens_per_s_ratio: {results['codigit']['tokens_per_s'] / results['trl-defaults']['tokens_per_s']:.2f}")
    from record import machine, record

    figures = {"model": label}
    for setting, r in results.items():
        figures[f"{setting} tokens/s"] = round(r["tokens_per_s"], 1)
        figures[f"{setting} peak RSS GiB"] = round(r["peak_rss_gib"], 2)
        if args.llama8b:
            figures[f"{setting} MFU"], figures[f"{setting} peak GPU GiB"] = r["mfu"], r["peak_gpu_gib"]
        figures[f"{setting} loss"] = f"{r['loss'][0]:.4f} -> {r['loss'][-1]:.4f}"
    figures["equal loss difference (fp32)"] = f"{abs(padded - packed):.2e}"
    ratio = results["codigit"]["tokens_per_s"] / results["trl-defaults"]["tokens_per_s"]
    record("sft_throughput", {**figures, "sft_tokens_per_s_ratio": round(ratio, 2)}, machine())


if __name__ == "__main__":
    main()
