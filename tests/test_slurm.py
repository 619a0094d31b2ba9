"""`codigit train --slurm` against a real single-node Slurm (Debian's slurmctld, slurmd and munge 22.05, installed
by `make test`), started under a temp folder with its own slurm.conf, munge key and socket, and free ports.
Nothing of the machine's own Slurm or munge (if any) is used or touched."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from conftest import REPO, codigit, free_port

CPU_DEMO = REPO / "experiments" / "cpu-demo.yaml"


def _wait(check, timeout: float, why) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, why()
        time.sleep(0.5)


def _queued(env: dict) -> list[str]:
    """Ids of the jobs pending or running in the cluster that `env`'s SLURM_CONF names."""
    return subprocess.run(["squeue", "-h", "-o", "%i"], env=env, capture_output=True, text=True).stdout.split()


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def slurm() -> dict[str, str]:
    """A running one-node cluster; yields the environment its client commands need (SLURM_CONF)."""
    for tool in ("munged", "slurmctld", "slurmd", "sbatch"):
        assert shutil.which(tool), f"{tool} not found: apt-get install slurmctld slurmd slurm-client munge (make test)"
    # not under pytest's tmp dir: munged refuses a socket whose every parent folder is not executable by all
    root = Path(tempfile.mkdtemp(prefix="codigit-slurm-"))
    root.chmod(0o755)
    (root / "state").mkdir()
    (root / "spool").mkdir()
    key = root / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)  # munged refuses a key others can read
    munge_socket = root / "munge.sock"
    host = socket.gethostname().split(".")[0]  # `hostname -s`: slurmd must find its own NodeName
    cpus = min(os.cpu_count() or 1, len(os.sched_getaffinity(0)))
    ctld_port, slurmd_port = free_port(), free_port()
    while slurmd_port == ctld_port:  # two asks may get the same free port
        slurmd_port = free_port()
    conf = root / "slurm.conf"
    conf.write_text(
        "\n".join([
            "ClusterName=codigit-test",
            f"SlurmctldHost={host}(127.0.0.1)",
            f"SlurmctldPort={ctld_port}",
            f"SlurmdPort={slurmd_port}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={munge_socket}",  # our munged, not /run/munge's
            f"StateSaveLocation={root / 'state'}",
            f"SlurmdSpoolDir={root / 'spool'}",
            f"SlurmctldPidFile={root / 'slurmctld.pid'}",
            f"SlurmdPidFile={root / 'slurmd.pid'}",
            f"SlurmctldLogFile={root / 'slurmctld.log'}",
            f"SlurmdLogFile={root / 'slurmd.log'}",
            "MailProg=/bin/true",
            # no cgroups here (a container): processes tracked through /proc, no CPU binding
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "MpiDefault=none",
            "SwitchType=switch/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "ReturnToService=2",
            f"NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=1000 State=UNKNOWN",
            f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP",
        ])
        + "\n"
    )  # fmt: skip
    env = {**os.environ, "SLURM_CONF": str(conf)}
    procs: list[subprocess.Popen] = []

    def start(*cmd: str, log: str) -> None:
        with (root / log).open("wb") as out:
            procs.append(subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT))

    def logs() -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(root.glob("*.log")))

    try:
        start("munged", "--foreground", f"--key-file={key}", f"--socket={munge_socket}",
              f"--pid-file={root / 'munged.pid'}", f"--seed-file={root / 'munged.seed'}",
              f"--log-file={root / 'munged.log'}", log="munged.out.log")  # fmt: skip
        _wait(munge_socket.exists, 30, logs)
        start("slurmctld", "-D", "-i", log="slurmctld.out.log")  # -i: ignore state from an earlier run
        start("slurmd", "-D", "-N", host, log="slurmd.out.log")

        def idle() -> bool:
            assert all(p.poll() is None for p in procs), logs()
            state = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], env=env, capture_output=True, text=True)
            return state.stdout.strip() == "idle"

        _wait(idle, 90, logs)
        yield {"SLURM_CONF": str(conf)}
    finally:
        # jobs a failed test left in this cluster: their processes belong to slurmstepd, which outlives slurmd
        if queue := _queued(env):
            subprocess.run(["scancel", *queue], env=env, capture_output=True)
            with contextlib.suppress(AssertionError):
                _wait(lambda: not _queued(env), 30, str)
        for proc in reversed(procs):
            _stop(proc)
        shutil.rmtree(root, ignore_errors=True)


def _losses(run: Path) -> list[float]:
    entries = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [e["loss"] for e in entries if "loss" in e]  # the demo recipe also evaluates: eval lines have no loss


def _demo_overrides(world: dict, run: Path) -> list[str]:
    """The CPU demo recipe made quick: the tiny model and release of the `world` fixture, 2 steps, seed 1."""
    return ["--release", str(world["release"]), "--release_hash", world["hash"],
            "--model_name_or_path", str(world["model"]), "--max_steps", "2", "--seed", "1", "--max_length", "256",
            "--bf16", "false", "--output_dir", str(run)]  # fmt: skip


@pytest.mark.slow
def test_cpu_demo_runs_as_a_slurm_job_like_a_direct_run(slurm, world):
    run = world["root"] / "slurm run"  # a space: the #SBATCH lines and the command line are quoted
    submitted = codigit("train", "--slurm", str(CPU_DEMO), *_demo_overrides(world, run), env=slurm)
    assert submitted.returncode == 0, submitted.stderr
    assert len(submitted.stdout.splitlines()) == 1, submitted.stdout
    job_id = submitted.stdout.split("job ")[1].split(":")[0]
    log = run / f"slurm-{job_id}.out"
    assert str(run / "slurm-job.sbatch") in submitted.stdout and str(log) in submitted.stdout
    record = json.loads((run / "slurm-job.json").read_text())
    assert record["job_id"] == job_id and record["script"] == str(run / "slurm-job.sbatch") and record["submitted_at"]

    _wait(
        lambda: job_id not in _queued({**os.environ, **slurm}),
        600,
        lambda: f"job {job_id} still queued or running; its log:\n{log.read_text()[-3000:]}",
    )
    provenance = json.loads((run / "provenance.json").read_text())
    assert provenance["finished_at"], log.read_text()[-3000:]
    assert provenance["slurm_job_id"] == job_id
    assert f"run {run}: adapter in" in log.read_text()  # the job's output went where the #SBATCH line said

    direct_run = world["root"] / "direct"
    direct = codigit("train", str(CPU_DEMO), *_demo_overrides(world, direct_run))
    assert direct.returncode == 0, direct.stderr[-3000:]
    assert _losses(run) == _losses(direct_run) and len(_losses(run)) == 2  # the same recipe, the same numbers
    assert json.loads((direct_run / "provenance.json").read_text())["slurm_job_id"] is None


def test_dry_run_prints_a_multi_node_accelerate_script_and_writes_nothing(tmp_path):
    run = tmp_path / "my run"
    options = ["--nodes", "2", "--gpus-per-node", "8", "--partition", "gpu", "--time", "02:00:00"]
    result = codigit("train", "--slurm", *options, "--dry-run", str(REPO / "experiments" / "llama31-8b-lora.yaml"),
                     "--output_dir", str(run), "--release", "data/my release", "--max_steps", "30")  # fmt: skip
    assert result.returncode == 0, result.stderr
    script = result.stdout
    assert script.startswith("#!/bin/bash\n")
    for line in ['#SBATCH --job-name="codigit-my run"', "#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=1",
                 "#SBATCH --gpus-per-node=8", "#SBATCH --partition=gpu", "#SBATCH --time=02:00:00",
                 f'#SBATCH --output="{run}/slurm-%j.out"', f"cd {REPO}",
                 'MAIN_PROCESS_IP=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)']:  # fmt: skip
        assert line in script.splitlines(), line
    srun, tasks, bash, dash_c, task = shlex.split(
        next(line for line in script.splitlines() if line.startswith("srun "))
    )
    assert (srun, tasks, bash, dash_c) == ("srun", "--ntasks-per-node=1", "bash", "-c")
    for part in ["accelerate.commands.launch", '--num_machines "$SLURM_NNODES"',
                 '--num_processes "$((SLURM_NNODES * 8))"', '--machine_rank "$SLURM_NODEID"',
                 '--main_process_ip "$MAIN_PROCESS_IP"', "--main_process_port 29500"]:  # fmt: skip
        assert part in task, part  # left for each node's task to expand: SLURM_NODEID differs per node
    train = ["-m", "codigit.cli", "train", str(REPO / "experiments/llama31-8b-lora.yaml"), "--output_dir", str(run),
             "--release", "data/my release", "--max_steps", "30"]  # fmt: skip
    assert shlex.split(task)[-len(train) :] == train  # quoted twice (script, then bash -c), read back whole
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
    assert not run.exists() and not list(tmp_path.iterdir())


@pytest.mark.slow
def test_a_refused_submission_is_one_line_with_sbatchs_reason(slurm, tmp_path):
    run = tmp_path / "run"
    result = codigit("train", "--slurm", "--partition", "nosuch", str(CPU_DEMO), "--output_dir", str(run), env=slurm)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "sbatch refused" in result.stderr and "nosuch" in result.stderr, result.stderr
    assert not (run / "slurm-job.json").exists()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--slurm", "--nodes", "0"], "--nodes: must be at least 1"),
        (["--slurm", "--gpus-per-node", "-1"], "--gpus-per-node: must be at least 0"),
        (["--slurm", "--nodes", "2"], "--nodes 2 needs --gpus-per-node"),
        (["--slurm", "--accelerate-config", "experiments/accelerate/fsdp.yaml"], "--accelerate-config needs"),
        (["--nodes", "2", "--gpus-per-node", "4"], "--nodes is a Slurm option: add --slurm"),
        (["--dry-run"], "--dry-run is a Slurm option: add --slurm"),
    ],
)
def test_bad_slurm_options_are_one_line(args, says):
    result = codigit("train", *args, str(CPU_DEMO))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert says in result.stderr, result.stderr


def test_slurm_options_after_the_recipe_are_one_line():
    result = codigit("train", str(CPU_DEMO), "--slurm", "--max_steps", "2")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "--slurm goes before the recipe" in result.stderr


def test_no_sbatch_is_one_line(tmp_path):
    run = tmp_path / "run"
    result = codigit("train", "--slurm", str(CPU_DEMO), "--output_dir", str(run), env={"PATH": str(tmp_path)})
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "sbatch not found" in result.stderr
    assert not run.exists()
