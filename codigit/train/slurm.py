"""`codigit train --slurm`: the same recipe, with the same overrides, as a Slurm batch job.

The sbatch script goes into the run folder (the recipe's `output_dir`), beside the job's log (`slurm-<id>.out`)
and `slurm-job.json` (job id, script, submission time); inside the job, `train()` records `SLURM_JOB_ID` in
provenance.json. On CPU the job is one process; with GPUs each node runs one `accelerate launch` (one Slurm task
per node) that starts a process per GPU and meets the other nodes at the first node of the allocation.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from codigit.errors import CodigitError
from codigit.home import atomic_write
from codigit.records import utc_now

# accelerate's main process listens here on the first node; fixed, so every node's launcher knows it in advance
MAIN_PROCESS_PORT = 29500
SCRIPT = "slurm-job.sbatch"
RECORD = "slurm-job.json"


@dataclass(frozen=True)
class SlurmOptions:
    nodes: int = 1
    gpus_per_node: int = 0  # 0: one CPU process
    partition: str | None = None
    time: str | None = None  # Slurm's format, e.g. 02:00:00 or 1-00:00:00
    accelerate_config: Path | None = None  # e.g. experiments/accelerate/fsdp.yaml (GPUs only)


@dataclass(frozen=True)
class Submitted:
    job_id: str
    script: Path
    log: Path


def check_options(options: SlurmOptions) -> None:
    """What Slurm would accept but the job could not do."""
    if options.nodes < 1:
        raise CodigitError(f"--nodes must be at least 1, not {options.nodes}")
    if options.gpus_per_node < 0:
        raise CodigitError(f"--gpus-per-node must be at least 0, not {options.gpus_per_node}")
    if options.nodes > 1 and options.gpus_per_node == 0:
        # several nodes meet through `accelerate launch`, which is only used with GPUs; CPU nodes would each
        # train the whole run on their own and write the same folder
        raise CodigitError(f"--nodes {options.nodes} needs --gpus-per-node: a multi-node run is an accelerate "
                           "launch across GPUs; a CPU run is one process on one node")  # fmt: skip
    if options.accelerate_config is not None and options.gpus_per_node == 0:
        raise CodigitError("--accelerate-config needs --gpus-per-node: a CPU run is one process, not accelerate's")


def run_folder(recipe: Path, overrides: list[str]) -> Path:
    """The run folder the job will write: the recipe's `output_dir` after overrides, as `codigit train` resolves it."""
    from codigit.train.recipe import parse_recipe

    # the submitting machine (a login node) often has no GPU, where a bf16 recipe fails TrainingArguments' device
    # check; use_cpu changes no path, and the job parses the recipe again, unchanged, on its own node
    return Path(parse_recipe(recipe, [*overrides, "--use_cpu", "true"]).sft.output_dir).absolute()


def render_script(recipe: Path, overrides: list[str], run: Path, options: SlurmOptions) -> str:
    """The sbatch script: #SBATCH lines, then this Python in this folder running `codigit train` on the recipe."""
    check_options(options)
    run = run.absolute()
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={_directive(f'codigit-{run.name}')}",
        f"#SBATCH --nodes={options.nodes}",
        "#SBATCH --ntasks-per-node=1",  # one launcher per node; accelerate starts the per-GPU processes
    ]
    if options.gpus_per_node:
        lines.append(f"#SBATCH --gpus-per-node={options.gpus_per_node}")
    if options.partition:
        lines.append(f"#SBATCH --partition={_directive(options.partition)}")
    if options.time:
        lines.append(f"#SBATCH --time={_directive(options.time)}")
    lines += [
        f"#SBATCH --output={_directive(str(run / 'slurm-%j.out'))}",
        "# written by `codigit train --slurm`; resubmitting it resumes the run from its last checkpoint",
        "set -euo pipefail",
        f"cd {shlex.quote(str(Path.cwd()))}",  # the recipe and its relative paths as they were at submission
    ]
    # sys.executable: the job runs the codigit that submitted it, whatever PATH the compute node has
    train = ["-m", "codigit.cli", "train", str(recipe), *overrides]
    if not options.gpus_per_node:
        lines.append("exec " + shlex.join([sys.executable, *train]))
        return "\n".join(lines) + "\n"
    config = ["--config_file", str(options.accelerate_config.absolute())] if options.accelerate_config else []
    launch = [sys.executable, "-m", "accelerate.commands.launch", *config]
    # expanded inside each task (single quotes below): SLURM_NODEID is the node's rank, different per node
    rendezvous = (
        '--num_machines "$SLURM_NNODES" '
        f'--num_processes "$((SLURM_NNODES * {options.gpus_per_node}))" '
        '--machine_rank "$SLURM_NODEID" '
        '--main_process_ip "$MAIN_PROCESS_IP" '
        f"--main_process_port {MAIN_PROCESS_PORT}"
    )
    task = f"{shlex.join(launch)} {rendezvous} {shlex.join(train)}"
    lines += [
        "# the first node of the allocation hosts accelerate's main process; every node's launcher meets it there",
        'MAIN_PROCESS_IP=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
        "export MAIN_PROCESS_IP",
        f"srun --ntasks-per-node=1 bash -c {shlex.quote(task)}",
    ]
    return "\n".join(lines) + "\n"


def _directive(value: str) -> str:
    """An #SBATCH value: sbatch reads these lines itself, not through a shell, and honours only double quotes."""
    if value and not any(c.isspace() or c in "\"'\\" for c in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def require_sbatch() -> None:
    if shutil.which("sbatch") is None:
        raise CodigitError("sbatch not found: --slurm needs Slurm's client commands on PATH (e.g. a login node)")


def submit(script: Path) -> str:
    """`sbatch --parsable SCRIPT`; returns the job id."""
    require_sbatch()
    done = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True)
    if done.returncode != 0:
        first = next((line for line in done.stderr.splitlines() if line.strip()), f"exit code {done.returncode}")
        raise CodigitError(f"sbatch refused {script}: {first.strip()}")
    return done.stdout.strip().split(";")[0]  # --parsable: "id" or "id;cluster"


def submit_run(recipe: Path, overrides: list[str], options: SlurmOptions) -> Submitted:
    """Write the run's sbatch script, submit it and record the job id in `<run>/slurm-job.json`."""
    check_options(options)
    require_sbatch()  # before the recipe is parsed (seconds of imports) or anything is written
    run = run_folder(recipe, overrides)
    script = run / SCRIPT
    atomic_write(script, render_script(recipe, overrides, run, options), mode=0o755)
    job_id = submit(script)
    record = {"job_id": job_id, "script": str(script), "submitted_at": utc_now()}
    atomic_write(run / RECORD, json.dumps(record, indent=2) + "\n")
    return Submitted(job_id, script, run / f"slurm-{job_id}.out")
