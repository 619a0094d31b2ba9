"""Evaluation during training: eval loss at an interval, early stopping, the memorisation probe and its warning,
trackio files read back offline, the progress bar, and the report's Training section. Real TRL training of the tiny
Llama of the `world` fixture (conftest) on a real release."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import recipe

from codigit.errors import CodigitError
from codigit.train.evaluation import ngram_precision, warning


def entries(run: Path) -> tuple[list[dict], list[dict]]:
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [e for e in lines if "loss" in e], [e for e in lines if "eval_loss" in e]


def test_ngram_precision_by_hand():
    truth = [1, 2, 3, 4, 5, 6]
    assert ngram_precision([1, 2, 3, 4, 5, 6], truth) == 1.0
    # 4-grams of the continuation: (1,2,3,4) found, (2,3,4,9) not, (3,4,9,9) not
    assert ngram_precision([1, 2, 3, 4, 9, 9], truth) == pytest.approx(1 / 3)
    assert ngram_precision([9, 9, 9, 9, 9], truth) == 0.0
    assert ngram_precision([1, 2, 3], truth) == 0.0  # no 4-gram to score


def test_warning_only_when_memorisation_rises_while_eval_loss_falls():
    before = {"step": 10, "eval_loss": 3.0, "memorisation": 0.10}
    assert warning(before, {"step": 20, "eval_loss": 2.9, "memorisation": 0.30})  # rose, loss fell
    assert warning(before, {"step": 20, "eval_loss": 3.1, "memorisation": 0.30}) is None  # loss rose: overfitting
    assert warning(before, {"step": 20, "eval_loss": 2.9, "memorisation": 0.12}) is None  # a rise under 0.05
    assert warning(None, {"step": 10, "eval_loss": 3.0, "memorisation": 0.9}) is None  # nothing to compare with
    assert warning({"step": 10, "eval_loss": 3.0}, {"step": 20, "eval_loss": 2.0}) is None  # not probed


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"early_stopping_patience": 2}, "early_stopping_patience acts at each evaluation: add eval_split"),
        ({"memorisation_probe": 4}, "memorisation_probe acts at each evaluation: add eval_split"),
        ({"memorisation_tokens": 2}, "memorisation_tokens must be at least 4"),
        ({"eval_split": "test", "eval_strategy": "steps", "eval_steps": 1, "early_stopping_patience": -1},
         "early_stopping_patience must be 0 or more"),
    ],
)  # fmt: skip
def test_recipe_mistakes_are_one_line(world, extra, message):
    from codigit.train.recipe import parse_recipe

    with pytest.raises(CodigitError, match=message):
        parse_recipe(recipe(world, "bad", **extra))


@pytest.mark.slow
def test_early_stopping_stops_and_trackio_holds_the_figures_offline(world, capfd):
    from codigit.train.run import train
    from codigit.train.tracking import read_trackio

    # Every evaluation must improve the eval loss by 1e9 to count: none does, so with patience 2 the run stops at the
    # third evaluation (the first sets the best) instead of running its 20 steps.
    run = train(recipe(world, "early", eval_split="test", eval_strategy="steps", eval_steps=1, max_steps=20,
                       early_stopping_patience=2, early_stopping_threshold=1e9, memorisation_probe=2,
                       memorisation_tokens=8, disable_tqdm=False))  # fmt: skip
    provenance = json.loads((run / "provenance.json").read_text())
    assert provenance["global_step"] == 3
    steps, evaluations = entries(run)
    assert [e["step"] for e in evaluations] == [1, 2, 3]
    assert all(0 <= e["memorisation"] <= 1 and 0 <= e["verbatim"] <= 1 for e in evaluations)
    assert "tok/s=" in capfd.readouterr().err  # the bar shows the figures, not one dict per log

    logged = read_trackio(run)  # trackio's own storage, from RUN/trackio/, nothing served
    assert (run / "trackio").is_dir()
    assert [(e["step"], e["loss"]) for e in logged if "loss" in e] == [(s["step"], s["loss"]) for s in steps]
    assert [(e["step"], e["eval_loss"]) for e in logged if "eval_loss" in e] == [
        (e["step"], e["eval_loss"]) for e in evaluations
    ]


@pytest.mark.slow
def test_memorisation_rises_on_a_planted_repeated_story_and_the_report_says_so(world):
    from codigit.analysis.training import section
    from codigit.train.run import train

    # One story, trained on at every step (max_records 1, full fine-tuning): the probe, which draws from the training
    # records, must see the model learn it word for word while the held-out loss still falls. (At 3e-2 the run was
    # chaotic: one torch thread, as under xdist, reached 0.4 by step 30 where two threads reached 1.0.)
    run = train(recipe(world, "planted", use_peft=False, max_records=1, per_device_train_batch_size=1,
                       learning_rate=1e-2, lr_scheduler_type="constant", max_steps=30, save_steps=100,
                       eval_split="test", eval_strategy="steps", eval_steps=15, memorisation_probe=1,
                       memorisation_tokens=8, trackio=False))  # fmt: skip
    _, evaluations = entries(run)
    assert [e["step"] for e in evaluations] == [15, 30]
    first, last = evaluations
    assert last["memorisation"] >= first["memorisation"] + 0.5 and last["eval_loss"] < first["eval_loss"]
    assert last.get("memorisation_warning") is True
    assert not (run / "trackio").exists()  # trackio: false

    page = section(run)
    assert "Memorisation rose while the eval loss still fell" in page and "step 30: memorisation" in page


def test_training_section_from_a_log_and_none_without_one(tmp_path):
    from codigit.analysis.training import section

    assert section(tmp_path) == ""
    log = [{"step": s, "loss": 3.0 - s / 10} for s in range(1, 5)] + [
        {"step": 2, "eval_loss": 2.9, "memorisation": 0.1},
        {"step": 4, "eval_loss": 2.7, "memorisation": 0.4, "memorisation_warning": True},
    ]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(e) for e in log) + "\n{truncated")
    page = section(tmp_path)
    assert "4 logged steps up to step 4; 2 evaluations" in page and "data:image/png;base64," in page
    assert "step 4: memorisation 0.40, eval loss 2.700" in page


def test_two_runs_in_one_process_each_keep_their_own_trackio_files(tmp_path):
    from transformers import TrainerControl, TrainerState

    from codigit.train.tracking import read_trackio, trackio_callback

    # as `train --each-collective` or `--seeds` do: runs one after another in one process, trackio imported once
    for name, losses in (("a", [3.0, 2.5]), ("b", [9.0])):
        tracker = trackio_callback(tmp_path / name, {"learning_rate": 1e-3})
        tracker.on_train_begin(None, TrainerState(), TrainerControl())
        for step, loss in enumerate(losses, 1):
            tracker.log({"step": step, "loss": loss, "time": "2026-11-30T00:00:00Z", "mfu": None})
        tracker.on_train_end(None, TrainerState(), TrainerControl())
    assert [(e["step"], e["loss"]) for e in read_trackio(tmp_path / "a")] == [(1, 3.0), (2, 2.5)]
    assert [(e["step"], e["loss"]) for e in read_trackio(tmp_path / "b")] == [(1, 9.0)]
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.glob("*/trackio/*.db")) == [
        "a/trackio/codigit.db", "b/trackio/codigit.db"]  # fmt: skip


def test_too_few_long_stories_to_probe_is_a_warning_and_the_run_prepares(world, caplog):
    from codigit.train.run import prepare

    # the world's stories are under 100 tokens: a 500-token probe finds none; the run still prepares (and trains)
    with caplog.at_level("WARNING", logger="codigit.train"):
        prepare(recipe(world, "probe-none", eval_split="test", eval_strategy="steps", eval_steps=2,
                       memorisation_probe=3, memorisation_tokens=500))  # fmt: skip
    assert "memorisation_probe 3: only 0 training stories are 1000 tokens long or more" in caplog.text
    assert "memorisation is not measured" in caplog.text


def test_the_probes_continue_in_one_batch_as_they_would_one_at_a_time(world):
    import torch

    from codigit.train.evaluation import Probe, continuations, probes
    from codigit.train.run import load_release, prepare

    p = prepare(recipe(world, "probe-batch", eval_split="test", eval_strategy="epoch", memorisation_probe=4,
                       memorisation_tokens=8))  # fmt: skip
    data, _, _ = load_release(p.args)
    # the world's prompts are all as long: cut each differently, so that the batch is padded
    chosen = [Probe(c.prompt[k:], c.truth) for k, c in enumerate(probes(data, p.tokenizer, 6, 8, 0))]
    assert len({len(c.prompt) for c in chosen}) == 6
    model, pad = p.trainer.model, p.tokenizer.pad_token_id
    torch.manual_seed(0)  # the tiny random model says one token over and over: random LoRA weights give it a voice
    for name, weight in model.named_parameters():
        if "lora_B" in name:
            weight.data.normal_(0, 2.0)
    batched = continuations(model, chosen, pad)
    assert batched == [continuations(model, [c], pad)[0] for c in chosen]
    assert all(len(row) == 8 for row in batched) and len({tuple(r) for r in batched}) > 1


def test_tokens_per_s_leaves_out_the_time_evaluations_take(world):
    import time

    from transformers import TrainerCallback

    from codigit.train.run import prepare

    class SlowEvaluation(TrainerCallback):  # after codigit's own callbacks: as a long memorisation probe would
        def on_evaluate(self, args, state, control, **kwargs):
            time.sleep(2.0)

    p = prepare(recipe(world, "paused", eval_split="test", eval_strategy="steps", eval_steps=1, max_steps=4,
                       save_strategy="no", memorisation_probe=0, trackio=False))  # fmt: skip
    p.trainer.add_callback(SlowEvaluation())
    p.trainer.train()
    logs, evals = entries(p.run)
    assert [e["step"] for e in logs] == [1, 2, 3, 4] and len(evals) == 4
    # each interval after the first holds an evaluation's 2 s; a tiny model's step takes a fraction of that
    seconds = [(b["tokens"] - a["tokens"]) / b["tokens_per_s"] for a, b in zip(logs, logs[1:], strict=False)]
    assert all(0 < s < 1.5 for s in seconds), seconds
