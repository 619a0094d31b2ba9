"""Fine-tuning on CPU with a tiny Llama built from config and the real (offline) Llama-3 tokenizer.

Everything goes through `codigit.train.run.train` (the code behind `codigit train`) on a real release made by
`make_release`; nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from test_release import base, snapshot

from codigit.errors import CodigitError
from codigit.records import write_snapshot
from codigit.release.manage import make_release
from codigit.release.policy import load_policy
from codigit.study import load_study

torch = pytest.importorskip("torch")  # a dependency of codigit: present wherever the suite runs

# The loss of the first 6 steps of RECIPE below on this tiny model (fp32, CPU, seed 1), pinned. A change in
# tokenisation, masking, chat format, packing or optimiser settings moves these.
PINNED = [11.7713, 11.7392, 11.7218, 11.7125, 11.6917, 11.6757]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    from codigit.train.llama3 import save_random_llama

    root = tmp_path_factory.mktemp("train")
    save_random_llama(root / "tiny", hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True)  # fmt: skip
    stories, reviews, consent = base(40)
    stories = [s.model_copy(update={"story": " ".join([s.story] * (1 + i % 5))}) for i, s in enumerate(stories)]
    snap = write_snapshot(snapshot(stories, reviews, consent), root / "snaps")  # stories of different lengths
    policy, study = load_policy(REPO / "annotation/policy.yaml"), load_study(REPO / "annotation/study.yaml")
    release, manifest, _ = make_release("0.1.0", snap, policy, study, root / "releases", None)
    return {"root": root, "model": root / "tiny", "release": release, "hash": manifest["dataset_hash"]}


def recipe(world: dict, name: str, **extra) -> Path:
    values = {
        "release": str(world["release"]), "release_hash": world["hash"], "model_name_or_path": str(world["model"]),
        "dtype": "float32", "use_peft": True, "lora_r": 8, "lora_alpha": 16,
        "lora_target_modules": ["q_proj", "v_proj"],
        "output_dir": str(world["root"] / "runs" / name), "seed": 1, "max_steps": 6, "learning_rate": 1e-2,
        "per_device_train_batch_size": 4, "max_length": 256, "assistant_only_loss": True, "packing": False,
        "logging_steps": 1, "save_steps": 3, "report_to": "none", "use_cpu": True, "disable_tqdm": True,
        **extra,
    }  # fmt: skip
    path = world["root"] / f"{name}.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def losses(run: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_offline_tokenizer_is_byte_exact_and_speaks_llama31():
    import quicktok

    from codigit.train.llama3 import build_tokenizer

    tokenizer, enc = build_tokenizer(), quicktok.get_encoding("llama3")
    for text in ["Hello world", "they/them, xe/xem — Ünïcödé 😀", "  leading\n\n\ttabs 12345678", "it's I'LL 'd"]:
        assert tokenizer.encode(text, add_special_tokens=False) == enc.encode(text)
    names = tokenizer.convert_ids_to_tokens([128000, 128004, 128008, 128009, 128010, 128011, 128255])
    assert names == ["<|begin_of_text|>", "<|finetune_right_pad_id|>", "<|eom_id|>", "<|eot_id|>", "<|python_tag|>",
                     "<|reserved_special_token_3|>", "<|reserved_special_token_247|>"]  # fmt: skip
    assert tokenizer.pad_token_id == 128004 and tokenizer.eos_token_id == 128009


def test_loss_mask_is_exactly_the_story_and_its_end_of_turn(world):
    from codigit.train.run import prepare

    p = prepare(recipe(world, "mask"))
    trainer, tokenizer = p.trainer, p.tokenizer
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    for k in range(4):
        labels = batch["labels"][k]
        text = tokenizer.decode(batch["input_ids"][k])
        story = text.split("<|start_header_id|>assistant<|end_header_id|>\n\n")[1].split("<|eot_id|>")[0]
        assert tokenizer.decode(labels[labels != -100]) == story + "<|eot_id|>"
        kept = (labels != -100).nonzero().flatten()
        assert (kept.diff() == 1).all()  # one contiguous span: nothing of the prompt or headers
        ids = batch["input_ids"][k]
        assert ids[kept[-1]] == tokenizer.eos_token_id != tokenizer.pad_token_id
        assert (ids[kept[-1] + 1 :] == tokenizer.pad_token_id).all()  # after the story only padding


def test_loss_decreases_along_the_pinned_curve_and_runs_repeat(world):
    from codigit.train.run import train

    first = losses(train(recipe(world, "seed-a")))
    second = losses(train(recipe(world, "seed-b")))
    assert first == second  # same seed, same data order, same numbers
    assert first[-1] < first[0]
    assert first == pytest.approx(PINNED, abs=2e-4)


def test_padding_free_loss_equals_padded_loss(world):
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from codigit.train.run import prepare

    p = prepare(recipe(world, "packing"))
    model, rows = p.trainer.model.eval(), [p.trainer.train_dataset[i] for i in range(6)]
    assert len({len(r["input_ids"]) for r in rows}) > 1  # different lengths: the padded batch has real padding
    loss = {}
    for padding_free in (False, True):
        batch = DataCollatorForLanguageModeling(pad_token_id=p.tokenizer.pad_token_id, padding_free=padding_free)(rows)
        assert ("attention_mask" in batch) != padding_free  # packed: one row, no mask, positions restart
        with torch.no_grad():
            loss[padding_free] = model(**batch, use_cache=False).loss.item()
    assert loss[True] == pytest.approx(loss[False], abs=1e-5)


def test_every_recipe_in_experiments_parses():
    from codigit.train.recipe import parse_recipe

    for path in sorted((REPO / "experiments").glob("*.yaml")):
        # GPU recipes ask for bf16 on a GPU; this machine has none, so validate them as if on CPU
        args, sft, model = parse_recipe(path, ["--use_cpu", "true"])
        assert args.release and sft.assistant_only_loss and model.use_peft, path
        assert sft.output_dir.startswith("runs/"), path


def test_adapter_saves_reloads_merges_and_generates(world):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from codigit.train.run import train

    run = train(recipe(world, "adapter", merge=True))
    tokenizer = AutoTokenizer.from_pretrained(run / "adapter")
    base_model = AutoModelForCausalLM.from_pretrained(world["model"], dtype=torch.float32)
    tuned = PeftModel.from_pretrained(base_model, run / "adapter").eval()
    merged = AutoModelForCausalLM.from_pretrained(run / "merged", dtype=torch.float32).eval()
    question = [{"role": "user", "content": "Who can lead a lab?"}]
    prompt = tokenizer.apply_chat_template(question, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        assert torch.allclose(tuned(**prompt).logits, merged(**prompt).logits, atol=1e-5)
        out = tuned.generate(**prompt, max_new_tokens=5, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert out.shape[1] > prompt["input_ids"].shape[1]
    assert tokenizer.eos_token == "<|eot_id|>"  # generation stops at the end of the assistant's turn
    provenance = json.loads((run / "provenance.json").read_text())
    assert provenance["release"]["dataset_hash"] == world["hash"] and provenance["seeds"]["seed"] == 1
    assert provenance["global_step"] == 6 and provenance["code"]["versions"]["trl"]


def test_interrupted_run_resumes_from_its_last_checkpoint(world):
    from transformers import TrainerCallback

    from codigit.train.run import train

    class Crash(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 4:
                raise KeyboardInterrupt  # e.g. Ctrl-C, a lost connection, a pre-empted machine

    path = recipe(world, "resume")
    with pytest.raises(KeyboardInterrupt):
        train(path, callbacks=[Crash()])
    run = train(path)
    assert json.loads((run / "provenance.json").read_text())["resumed_from"].endswith("checkpoint-3")
    whole = losses(train(recipe(world, "whole")))
    assert losses(run)[-2:] == pytest.approx(whole[-2:], abs=1e-5)  # steps 5 and 6 as if never interrupted


def test_release_hash_mismatch_is_a_clear_error(world):
    from codigit.train.run import train

    with pytest.raises(CodigitError, match="not the recipe's release_hash"):
        train(recipe(world, "wrong"), ["--release_hash", "0" * 64])


def test_label_only_loss_equals_the_models_own_loss(world):
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from codigit.train.loss import label_only_loss
    from codigit.train.run import prepare

    p = prepare(recipe(world, "label-only"))
    model, rows = p.trainer.model.eval(), [p.trainer.train_dataset[i] for i in range(6)]
    for padding_free in (False, True):
        batch = DataCollatorForLanguageModeling(pad_token_id=p.tokenizer.pad_token_id, padding_free=padding_free)(rows)
        with torch.no_grad():
            reference = model(**batch, use_cache=False).loss.item()
            for chunk in (7, 1024):  # a chunk boundary inside the batch changes nothing
                assert label_only_loss(model, batch, chunk).item() == pytest.approx(reference, rel=1e-6)


def test_collective_token_is_added_trained_and_opens_each_conversation(world):
    from codigit.train.run import prepare, train

    path = recipe(world, "collective", collectives=["codigit", "other"], collective="codigit")
    p = prepare(path)
    token = p.tokenizer.convert_tokens_to_ids("<|collective:codigit|>")
    assert token >= 128256 and p.trainer.model.get_input_embeddings().weight.shape[0] == len(p.tokenizer)
    row = p.trainer.train_dataset[0]
    assert token in row["input_ids"]  # the system turn of every conversation carries it
    run = train(path)
    config = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert sorted(config["trainable_token_indices"]["embed_tokens"]) == sorted(
        p.tokenizer.convert_tokens_to_ids(["<|collective:codigit|>", "<|collective:other|>"])
    )
    from transformers import AutoTokenizer

    assert "<|collective:other|>" in AutoTokenizer.from_pretrained(run / "adapter").get_vocab()


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        ("release: x\nlearning_rat: 0.1\n", [], "unknown key(s) learning_rat"),
        ("release: x\n", ["--max_steps", "many"], "invalid int value: 'many'"),
        ("release: x\n", [], "no GPU here: add `use_cpu: true`"),
        ("[not, a, mapping]\n", [], "expected a mapping"),
        ("model_name_or_path: x\n", [], "`release` is required"),
    ],
)
def test_bad_recipes_are_one_line_errors(tmp_path, content, extra, message):
    from conftest import codigit

    (tmp_path / "r.yaml").write_text(content)
    result = codigit("train", str(tmp_path / "r.yaml"), *extra)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert result.stderr.strip().count("\n") == 0
