"""benchmarks/gpu_check.sh --dry-run: every step of the GPU check (throughput comparison, the 8B recipe's own
LoRA run, batched generation) runs on CPU with tiny models, through the script researchers run on a GPU."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # the dry run trains and generates (minutes); even the refusal imports torch


def test_gpu_check_dry_run_runs_every_step(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable}
    env.pop("OUT", None)
    out = subprocess.run([str(REPO / "benchmarks" / "gpu_check.sh"), "--dry-run", "--out", str(tmp_path)],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=900)  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    summary = (tmp_path / "summary.txt").read_text()
    assert "(dry run, CPU)" in summary
    for step in ("throughput", "lora", "generation"):
        assert f"{step}: ok" in summary, summary
    # each step's figures reached the summary, read from what the step itself wrote
    assert "sft_tokens_per_s_ratio:" in summary and "generation_batched_speedup:" in summary
    assert "recipe run: 2 steps, median" in summary
    for log in ("sft_throughput.log", "lora_run.log", "generation.log"):
        assert (tmp_path / log).stat().st_size > 0


def test_gpu_check_refuses_without_a_gpu_in_one_line(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run([str(REPO / "benchmarks" / "gpu_check.sh"), "--out", str(tmp_path)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode != 0
    assert out.stderr.strip().splitlines() == [
        "gpu_check: no CUDA GPU here; `--dry-run` runs the same steps on CPU with tiny models"
    ]
