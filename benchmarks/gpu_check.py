"""The GPU path in one go (run by `benchmarks/gpu_check.sh`): SFT throughput on Llama-3.1-8B's shapes (codigit's
recipe vs TRL's defaults), a 20-step LoRA run of experiments/llama31-8b-lora.yaml on random weights with the real
Llama-3.1 chat template, and batched HF generation; then one summary.

Each step runs in its own process under its own time limit, so one failure or overrun still leaves the others'
figures and the summary. `--dry-run` runs the same steps on CPU with tiny models (about 3 minutes here)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
STEPS = ("throughput", "lora", "generation")


def versions() -> str:
    import importlib.metadata as md

    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU (CPU)"
    names = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "pyarrow")
    return f"{gpu}; Python {platform.python_version()}; " + ", ".join(f"{n} {md.version(n)}" for n in names)


def step(name: str, command: list[str], limit: int, log: Path) -> tuple[bool, list[str], float]:
    """Run one step, echoing its output and keeping it in `log`; (ok, output lines, seconds)."""
    print(f"\n=== {name} ({limit} s at most): {' '.join(command)}", flush=True)
    began, lines = time.perf_counter(), []
    # coreutils' timeout ends a step that runs over (its children too), which also ends the output read here
    with subprocess.Popen(["timeout", "-k", "10", str(limit), *command], cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as p:  # fmt: skip
        for line in p.stdout:
            print(line, end="", flush=True)
            lines.append(line.rstrip("\n"))
    if p.returncode in (124, 137):
        lines.append(f"(stopped after {limit} s)")
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p.returncode == 0, lines, time.perf_counter() - began


def run_figures(run: Path) -> str:
    """tokens/s, MFU and peak memory over the logged steps after the first (the first includes warm-up)."""
    entries = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    logs = [e for e in entries if "loss" in e]  # training steps; evaluations have lines of their own
    later = logs[1:] or logs
    rate = sorted(e["tokens_per_s"] for e in later)[len(later) // 2]
    mfus = sorted(e["mfu"] for e in later if e["mfu"] is not None)
    mfu = f", MFU {mfus[len(mfus) // 2]:.3f}" if mfus else ""
    peak = max(e["peak_memory_gib"] for e in logs)
    return (f"recipe run: {logs[-1]['step']} steps, median {rate:.0f} tokens/s{mfu}, peak memory {peak:.1f} GiB, "
            f"loss {logs[0]['loss']:.3f} -> {logs[-1]['loss']:.3f}")  # fmt: skip


def lora_run(py: str, dry: bool, steps: int, out: Path) -> tuple[bool, list[str], float]:
    """The recipe itself, `steps` steps, on random weights in its model's shapes and a synthetic release."""
    sys.path.insert(0, str(BENCH))
    from sft_throughput import llama8b_shapes, make_release, tiny_model

    try:  # the release and model folders are built here: a failure is this step's, not the whole check's
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            release = make_release(work, 24 if dry else 120)
            model = tiny_model(work) if dry else llama8b_shapes(work)
            run = work / "runs" / "llama31-8b-lora"
            overrides = ["--model_name_or_path", str(model), "--random_init", "true", "--release", str(release),
                         "--output_dir", str(run), "--max_steps", str(2 if dry else steps),
                         "--save_strategy", "no", "--logging_steps", "1" if dry else "5",
                         "--trackio", "false"]  # fmt: skip  # the figures are in metrics.jsonl; trackio: not there
            if dry:  # CPU: fp32 weights, shorter rows, a smaller memorisation probe at each evaluation
                overrides += ["--use_cpu", "true", "--dtype", "float32", "--max_length", "512",
                              "--memorisation_probe", "2", "--memorisation_tokens", "8"]  # fmt: skip
            command = [py, "-m", "codigit.cli", "train", str(REPO / "experiments" / "llama31-8b-lora.yaml"), *overrides]
            ok, lines, seconds = step("LoRA run of experiments/llama31-8b-lora.yaml", command, 300 if dry else 270,
                                      out / "lora_run.log")  # fmt: skip
            if ok:
                lines.append(run_figures(run))
            return ok, lines, seconds
    except Exception as e:  # noqa: BLE001
        return False, [f"{type(e).__name__}: {e}"], 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="every step on CPU with tiny models")
    parser.add_argument("--out", type=Path, help="where the logs and summary.txt go (default $OUT, else a new "
                        "gpu-check-DATE folder)")  # fmt: skip
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps of the LoRA run (default 20)")
    parser.add_argument("--only", type=lambda v: set(v.split(",")), default=set(STEPS),
                        help=f"some of {','.join(STEPS)}, comma-separated (to rerun one in a lease)")  # fmt: skip
    args = parser.parse_args()
    if args.only - set(STEPS):
        parser.error(f"--only: unknown step {', '.join(sorted(args.only - set(STEPS)))} (steps: {', '.join(STEPS)})")
    dry = args.dry_run
    out = args.out or Path(os.environ.get("OUT") or f"gpu-check-{datetime.now(UTC):%Y%m%dT%H%M}")
    out.mkdir(parents=True, exist_ok=True)
    if os.environ.get("OUT"):  # a lent machine: its checkout is thrown away, $OUT comes back (see record.py)
        os.environ.setdefault("CODIGIT_BENCHMARK_RESULTS", str(out / "results.jsonl"))
    py = sys.executable
    if not dry:
        import torch

        if not torch.cuda.is_available():
            sys.exit("gpu_check: no CUDA GPU here; `--dry-run` runs the same steps on CPU with tiny models")
    dry_note = " (dry run, CPU)" if dry else ""
    header = f"codigit GPU check, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC{dry_note}: {versions()}"
    print(header, flush=True)
    summary, results = [header], {}

    if "throughput" in args.only:  # its own temporary release and model; the comparison and the loss identity
        command = [py, str(BENCH / "sft_throughput.py"), *(["--quick"] if dry else ["--llama8b"])]
        results["throughput"] = step("SFT throughput", command, 300 if dry else 200, out / "sft_throughput.log")

    if "lora" in args.only:
        results["lora"] = lora_run(py, dry, args.steps, out)

    if "generation" in args.only:  # batch 64 vs one at a time
        tiny = ["--quick", "--one-at-a-time", "8", "--max-new-tokens", "16"]
        command = [py, str(BENCH / "generation.py"), *(tiny if dry else ["--llama8b"])]
        results["generation"] = step("batched HF generation", command, 240 if dry else 100, out / "generation.log")

    summary.append("")
    wanted = {
        "throughput": ("trl-defaults:", "codigit:", "equal loss", "sft_tokens_per_s_ratio"),
        "lora": ("recipe run:",),
        "generation": ("batch ", "identical", "generation_batched_speedup"),
    }
    for name, (ok, lines, seconds) in results.items():
        summary.append(f"{name}: {'ok' if ok else 'FAILED'} in {seconds:.0f} s")
        shown = [ln.strip() for ln in lines if ln.strip().startswith(wanted[name])]
        if not ok:  # the last lines say why
            shown += [ln for ln in lines[-3:] if ln.strip()]
        summary += [f"  {ln}" for ln in shown]
    text = "\n".join(summary) + "\n"
    (out / "summary.txt").write_text(text, encoding="utf-8")
    print("\n=== summary\n" + text, flush=True)
    from record import record

    figures = {name: ("ok" if ok else "FAILED") + f" in {seconds:.0f} s" for name, (ok, _, seconds) in results.items()}
    if "lora" in results:
        figures["lora"] += "".join(f"; {ln}" for ln in results["lora"][1] if ln.startswith("recipe run:"))
    record("gpu_check" + dry_note, figures, versions())  # the steps' own figures: their scripts' lines
    sys.exit(0 if all(ok for ok, _, _ in results.values()) else 1)


if __name__ == "__main__":
    main()
