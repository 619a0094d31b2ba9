"""What a run logs as it trains: loss, tokens/s, MFU, peak memory per logged step, and the figures behind them
(parameters, the device's peak FLOP/s). Where the entries go: `codigit.train.tracking`."""

from __future__ import annotations

import copy
import time

from codigit.records import utc_now

# Dense bf16 peak FLOP/s per device, for MFU. CPUs have no useful single figure: MFU is left empty there.
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "GH200": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12,
              "A10G": 125e12, "RTX 4090": 165e12, "RTX 3090": 71e12}  # fmt: skip


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


def run_log_callback(sinks: list, n_params: int):
    """An entry per logged step to every sink (metrics.jsonl, trackio, the progress bar): loss, tokens/s since the
    last log (all processes together, as TRL counts them), MFU (6·N·tokens/s over the peak of all the devices),
    peak memory (of this process's device). Evaluations have their own callback (`codigit.train.evaluation`).

    tokens/s and MFU are of training: time between optimizer steps that an evaluation or a checkpoint took (the
    memorisation probe generates; a small release evaluates every few steps) is left out."""
    import resource

    import torch
    from transformers import TrainerCallback

    class RunLog(TrainerCallback):
        def __init__(self):
            self.peak = peak_flops()

        def on_train_begin(self, args, state, control, **kwargs):  # a resumed run counts from where it is
            self.last = (time.perf_counter(), state.num_input_tokens_seen or 0)
            # an evaluation before the first step (eval_on_start) pauses from here, not from the callback's making
            self.step_end, self.paused, self.pausing = self.last[0], 0.0, False

        def on_step_end(self, args, state, control, **kwargs):
            self.step_end = time.perf_counter()

        def on_evaluate(self, args, state, control, **kwargs):
            self.pausing = True

        on_save = on_evaluate

        def on_step_begin(self, args, state, control, **kwargs):
            if self.pausing:  # the gap since the last step held an evaluation or a save
                self.paused += time.perf_counter() - self.step_end
                self.pausing = False

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs or "loss" not in logs:
                return
            now, tokens = time.perf_counter(), logs.get("num_tokens", state.num_input_tokens_seen or 0)
            rate = (tokens - self.last[1]) / max(now - self.last[0] - self.paused, 1e-9)
            self.last, self.paused = (now, tokens), 0.0
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
            for sink in sinks:
                sink(entry)

    return RunLog()
