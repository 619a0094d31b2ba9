#!/usr/bin/env bash
# The GPU path in one go: SFT throughput on Llama-3.1-8B's shapes (codigit's recipe vs TRL's defaults: tokens/s,
# MFU, peak memory), a 30-step LoRA run of experiments/llama31-8b-lora.yaml on random weights, batched HF
# generation, one summary (also in $OUT or ./gpu-check-DATE/summary.txt). See benchmarks/README.md.
#
#   benchmarks/gpu_check.sh --fetch-wheels   # here, with network: the wheels an offline GPU machine lacks, in .whl/
#   benchmarks/gpu_check.sh                  # there: installs .whl/ (if trl or datasets is missing), runs the check
#   benchmarks/gpu_check.sh --dry-run        # anywhere: every step on CPU with tiny models
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# What a machine with PyTorch, transformers, peft and accelerate still needs, at the versions codigit is tested
# with (transformers and peft too: the recipes use keys older transformers lacks, e.g. activation_checkpointing).
# pydantic: codigit's records; ahocorasick-rs: the personal-data scan of the synthetic releases. pyarrow (>= 24, for datasets) is not among them: its wheel alone is 55 MB; the machine's own must do.
WHEELS="trl==1.16.0 datasets==5.2.0 transformers==5.24.0 peft==0.21.2 quicktok-v1==0.4.0 dill==0.4.1
multiprocess==0.70.19 fsspec==2026.9.0 regex==2026.11.19 pydantic==2.9.2 pydantic-core==2.23.4 annotated-types==0.8.0
ahocorasick-rs==1.0.3"

if [ "${1:-}" = --fetch-wheels ]; then
  # for the GPU machine's Python (3.12, x86-64 Linux), whatever this machine is
  mkdir -p .whl
  # shellcheck disable=SC2086
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl $WHEELS
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
  echo "wheels in .whl/ ($(du -sh .whl | cut -f1)); carry .whl to the GPU machine beside the checkout"
  exit 0
fi

if ! "$PY" -c "import trl, datasets, quicktok" 2>/dev/null; then
  if ! compgen -G ".whl/*.whl" >/dev/null; then
    echo "gpu_check: $PY lacks trl/datasets/quicktok and .whl/ holds no wheels (run --fetch-wheels where pip works)" >&2
    exit 2
  fi
  site=${TMPDIR:-/tmp}/codigit-gpu-site
  "$PY" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec "$PY" benchmarks/gpu_check.py "$@"
