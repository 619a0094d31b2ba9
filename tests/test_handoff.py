"""The files stages hand to each other, as the stages themselves write and read them: a real training run's
provenance traced by `release affected`, a `Recipe` built in code, evaluation on the release's test split."""

from __future__ import annotations

import json

import pytest
from conftest import codigit, recipe


@pytest.mark.slow
def test_release_affected_finds_a_real_training_run(world):
    from codigit.handoff import read_manifest, read_provenance
    from codigit.train.run import train

    run = train(recipe(world, "traced", max_steps=2, save_steps=2))
    provenance = read_provenance(run)  # what `train` wrote is what every reader gets
    assert provenance.release.dataset_hash == world["hash"] and provenance.global_step == 2
    author = read_manifest(world["release"]).pseudonyms[0]
    where = ["--out", str(world["release"].parent), "--runs", str(run.parent)]
    found = codigit("release", "affected", author, *where)
    assert found.returncode == 0 and not found.stderr, found.stderr
    assert f"run traced trained on release 0.1.0: {run}" in found.stdout.splitlines()
    nobody = codigit("release", "affected", "p-999", *where)
    assert nobody.returncode == 0 and "run " not in nobody.stdout


@pytest.mark.slow
def test_a_recipe_built_in_code_trains_and_evaluates_on_the_test_split(world):
    from trl import ModelConfig, SFTConfig

    from codigit.handoff import read_manifest, read_provenance
    from codigit.train.recipe import CodigitArgs, Recipe
    from codigit.train.run import train

    assert read_manifest(world["release"]).counts["test"] > 0
    out = world["root"] / "runs" / "in-code"
    made = Recipe(
        CodigitArgs(release=str(world["release"]), release_hash=world["hash"], eval_split="test"),
        SFTConfig(output_dir=str(out), use_cpu=True, bf16=False, max_steps=4, eval_strategy="steps", eval_steps=2,
                  per_device_train_batch_size=4, per_device_eval_batch_size=4, learning_rate=1e-2, max_length=256,
                  assistant_only_loss=True, packing=False, logging_steps=1, save_strategy="no", report_to="none",
                  seed=1, disable_tqdm=True),
        ModelConfig(model_name_or_path=str(world["model"]), dtype="float32", use_peft=True, lora_r=8,
                    lora_alpha=16, lora_target_modules=["q_proj", "v_proj"]),
    )  # fmt: skip
    run = train(made)
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [m for m in lines if "eval_loss" in m]
    assert [m["step"] for m in evals] == [2, 4] and all(m["eval_loss"] > 0 for m in evals)
    assert [m["step"] for m in lines if "loss" in m] == [1, 2, 3, 4]
    provenance = read_provenance(run)
    assert provenance.eval_split == "test" and provenance.recipe.file == "(in-process)"
    assert provenance.recipe.codigit["eval_split"] == "test" and provenance.recipe.sft["eval_steps"] == 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"eval_split": "test"}, "eval_split 'test' needs eval_strategy"),
        ({"eval_strategy": "steps", "eval_steps": 2}, "eval_strategy steps needs eval_split"),
        ({"eval_split": "train", "eval_strategy": "epoch"}, "eval_split and release_split are both 'train'"),
    ],
)
@pytest.mark.slow
def test_evaluation_settings_that_cannot_work_are_one_line_errors(world, extra, message):
    result = codigit("train", str(recipe(world, "eval-mistake", **extra)))
    assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1, result.stderr


def test_a_renamed_or_missing_key_is_caught_where_the_file_is_read(tmp_path):
    from codigit.errors import CodigitError
    from codigit.handoff import read_provenance

    (tmp_path / "provenance.json").write_text(json.dumps({"release": {"version": "0.1.0", "hash": "0" * 64}}))
    with pytest.raises(CodigitError, match=r"provenance.json: not a finished codigit run \(release.path: Field req"):
        read_provenance(tmp_path)
