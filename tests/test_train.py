"""Fine-tuning on CPU with a tiny Llama built from config and the real (offline) Llama-3 tokenizer.

Everything goes through `codigit.train.run.train` (the code behind `codigit train`) on a real release made by
`make_release` (the `world` fixture and `recipe` are in conftest); nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, recipe

from codigit.errors import CodigitError

torch = pytest.importorskip("torch")  # a dependency of codigit: present wherever the suite runs

# The loss of the first 6 steps of RECIPE below on this tiny model (fp32, CPU, seed 1), pinned. A change in
# tokenisation, masking, chat format, packing or optimiser settings moves these.
PINNED = [11.7713, 11.7392, 11.7218, 11.7125, 11.6917, 11.6757]


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


@pytest.mark.slow
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
    from codigit.train.texts import check_corpus_recipe

    for path in sorted((REPO / "experiments").glob("*.yaml")):
        # GPU recipes ask for bf16 on a GPU; this machine has none, so validate them as if on CPU
        recipe = parse_recipe(path, ["--use_cpu", "true"])
        args, sft, model = recipe
        assert args.release and model.use_peft, path
        assert sft.output_dir.startswith("runs/"), path
        if args.release.startswith("data/corpus/"):  # continued pretraining: every token of the texts trained
            check_corpus_recipe(recipe, str(path))
        else:
            assert sft.assistant_only_loss, path


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_collective_token_is_added_trained_and_opens_each_conversation(world):
    from codigit.train.run import prepare, train

    path = recipe(world, "collective", collectives=["codigit", "other"], collective="codigit")
    p = prepare(path)
    token = p.tokenizer.convert_tokens_to_ids("<|collective:codigit|>")
    assert token >= 128256 and p.trainer.model.get_input_embeddings().weight.shape[0] == len(p.tokenizer)
    row = p.trainer.train_dataset[0]
    assert token in row["input_ids"]  # the system turn of every conversation carries it
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

    every_id = torch.arange(len(p.tokenizer))
    rows = {}

    class Embeddings(TrainerCallback):  # the whole input embedding matrix, as the model sees it, before and after
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            rows["before"] = model.get_input_embeddings()(every_id).detach().clone()

        def on_train_end(self, args, state, control, model=None, **kwargs):
            rows["after"] = model.get_input_embeddings()(every_id).detach().clone()

    run = train(path, callbacks=[Embeddings()])
    config = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert sorted(config["trainable_token_indices"]["embed_tokens"]) == sorted(
        p.tokenizer.convert_tokens_to_ids(["<|collective:codigit|>", "<|collective:other|>"])
    )
    changed = (rows["after"] != rows["before"]).any(dim=1).nonzero().flatten().tolist()
    assert token in changed  # training moved the conditioning token's embedding ...
    assert all(i >= 128256 for i in changed)  # ... and no row of the original vocabulary
    tokenizer = AutoTokenizer.from_pretrained(run / "adapter")
    assert "<|collective:other|>" in tokenizer.get_vocab()
    base_model = AutoModelForCausalLM.from_pretrained(world["model"], dtype=torch.float32)
    base_model.resize_token_embeddings(len(tokenizer))
    tuned = PeftModel.from_pretrained(base_model, run / "adapter")
    with torch.no_grad():  # the saved adapter carries the trained row
        assert torch.equal(tuned.get_input_embeddings()(torch.tensor([token])), rows["after"][[token]])


def test_parameter_count_is_the_unquantised_models():
    from transformers import BitsAndBytesConfig, LlamaConfig

    from codigit.train.runlog import parameter_count

    # Llama-3.1-8B's shapes, with the 4-bit config a QLoRA model carries: still its published 8.03B parameters,
    # not the ~half a count of its packed 4-bit tensors would give
    config = LlamaConfig(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                         num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=False)  # fmt: skip
    config.quantization_config = BitsAndBytesConfig(load_in_4bit=True).to_dict()
    assert parameter_count(config) == 8_030_261_248


def test_parameter_count_matches_a_loaded_model(world):
    from transformers import AutoModelForCausalLM

    from codigit.train.runlog import parameter_count

    model = AutoModelForCausalLM.from_pretrained(world["model"])
    model.resize_token_embeddings(model.config.vocab_size + 3)  # as collective tokens do; tied embeddings count once
    assert parameter_count(model.config) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        ("release: x\nlearning_rat: 0.1\n", [], "unknown key(s) learning_rat"),
        ("release: x\n", ["--max_steps", "many"], "invalid int value: 'many'"),
        ("release: x\n", [], "no GPU here: add `use_cpu: true`"),
        ("[not, a, mapping]\n", [], "expected a mapping"),
        ("model_name_or_path: x\n", [], "`release` is required"),
        ("model_name_or_path: x\nuse_cpu: true\n", ["--release", ""], "`release` is required"),
        # the `--key=value` form is a release too: the error is the next one, about that folder
        ("model_name_or_path: x\nuse_cpu: true\n", ["--release=/nonexistent/rel"], "/nonexistent/rel: not a release"),
    ],
)
@pytest.mark.slow
def test_bad_recipes_are_one_line_errors(tmp_path, content, extra, message):
    from conftest import codigit

    (tmp_path / "r.yaml").write_text(content)
    result = codigit("train", str(tmp_path / "r.yaml"), *extra)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert result.stderr.strip().count("\n") == 0


def test_the_stored_trl_keys_are_the_parsers_own():
    import importlib.metadata

    from codigit.train.recipe import TRL_KEYS, _parser, recipe_keys

    stored = json.loads(TRL_KEYS.read_text())
    fix = "rewrite it with `.venv/bin/python -m codigit.train.recipe`"
    assert stored["versions"] == {n: importlib.metadata.version(n) for n in stored["versions"]}, fix
    assert recipe_keys() == {a.dest for a in _parser()._actions}, fix


def test_a_misspelt_key_is_refused_without_importing_trl(tmp_path):
    (tmp_path / "r.yaml").write_text("release: x\nlerning_rate: 0.1\n")
    check = ("import sys\nfrom codigit.errors import CodigitError\nfrom codigit.train.recipe import parse_recipe\n"
             f"try:\n    parse_recipe({str(tmp_path / 'r.yaml')!r})\nexcept CodigitError as e:\n    print(e)\n"
             "print(sorted(m for m in ('trl', 'transformers', 'torch') if m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120, check=True)
    said, imported = out.stdout.strip().splitlines()
    assert said.endswith("unknown key(s) lerning_rate (not SFTConfig, ModelConfig or codigit's)")
    assert imported == "[]"


@pytest.mark.slow
def test_rerun_with_a_changed_recipe_is_refused_and_the_same_recipe_resumes(world):
    from codigit.train.run import train

    path = recipe(world, "changed", max_steps=1, save_steps=1)
    run = train(path)
    before = (run / "provenance.json").read_text()
    with pytest.raises(CodigitError, match=r"another recipe \(learning_rate: 0.01 -> 0.5\).*new output_dir"):
        train(path, ["--learning_rate", "0.5"])
    assert (run / "provenance.json").read_text() == before  # untouched
    # the same recipe, its release spelt another way and a longer run: only max_steps differs, which is refused too
    with pytest.raises(CodigitError, match=r"max_steps: 1 -> 2"):
        train(path, [f"--release={world['release']}/", "--max_steps", "2"])
    assert train(path, [f"--release={world['release']}/"]) == run  # same recipe: resumes
    assert json.loads((run / "provenance.json").read_text())["resumed_from"].endswith("checkpoint-1")


@pytest.mark.slow
def test_quantised_recipe_without_bitsandbytes_is_a_one_line_error(world, tmp_path):
    from conftest import codigit

    if importlib.util.find_spec("bitsandbytes") is not None:
        pytest.skip("bitsandbytes is installed here")
    qlora = REPO / "experiments" / "llama31-8b-qlora.yaml"
    result = codigit("train", str(qlora), "--release", str(world["release"]), "--use_cpu", "true",
                     "--output_dir", str(tmp_path / "run"))  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "load_in_4bit, optim paged_adamw_8bit needs bitsandbytes: pip install bitsandbytes" in result.stderr
    assert result.stderr.strip().count("\n") == 0


def test_qlora_recipe_builds_its_4bit_quantization_config():
    from trl import get_quantization_config

    from codigit.train.recipe import parse_recipe

    _, _, model = parse_recipe(REPO / "experiments" / "llama31-8b-qlora.yaml", ["--use_cpu", "true"])
    config = get_quantization_config(model)  # needs no bitsandbytes: loading the model does
    assert config.load_in_4bit and not config.load_in_8bit
    assert config.bnb_4bit_quant_type == "nf4" and config.bnb_4bit_use_double_quant
    assert config.bnb_4bit_compute_dtype == torch.bfloat16  # the recipe's dtype: LoRA computes in bf16


def test_accelerate_configs_are_valid_and_save_the_adapters_weights():
    """Each config goes through `accelerate launch`'s own parsing and validation, and the environment it would
    hand to the processes builds accelerate's FSDP / DeepSpeed plugin. Then: transformers' save_model writes
    weights only for FSDP's FULL_STATE_DICT, and under ZeRO-3 only when the 16-bit weights are gathered on save."""
    import os
    from unittest import mock

    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import DeepSpeedPlugin, FullyShardedDataParallelPlugin
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    paths = sorted((REPO / "experiments" / "accelerate").glob("*.yaml"))
    assert [p.name for p in paths] == ["fsdp.yaml", "zero3.yaml"]
    for path in paths:
        args = launch_command_parser().parse_args(["--config_file", str(path), "train.py"])
        options, raw = set(vars(args)), yaml.safe_load(path.read_text())
        # a nested key that is no `accelerate launch` option would be copied onto its arguments and ignored
        nested = [k if k.startswith("fsdp") else f"fsdp_{k}" for k in raw.get("fsdp_config", {})]
        nested += list(raw.get("deepspeed_config", {}))
        assert nested and set(nested) <= options, (path, set(nested) - options)
        args, defaults, _ = _validate_launch_command(args)  # unknown top-level keys raise here
        if args.use_fsdp:
            env = prepare_multi_gpu_env(args)
            with mock.patch.dict(os.environ, env):
                plugin = FullyShardedDataParallelPlugin()
            assert plugin.fsdp_version == 2 and plugin.state_dict_type.name == "FULL_STATE_DICT", path
        else:
            assert args.use_deepspeed, path
            args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)  # as launch_command
            _, env = prepare_deepspeed_cmd_env(args)
            with mock.patch.dict(os.environ, env):
                plugin = DeepSpeedPlugin()
            zero = plugin.deepspeed_config["zero_optimization"]
            assert zero["stage"] == 3 and zero["stage3_gather_16bit_weights_on_model_save"], path


# Trains in each process and saves the trainable weights each holds at the end (argv: recipe, folder).
TWO_PROCESS_SCRIPT = """
import sys, torch
from transformers import TrainerCallback
from codigit.train.run import train

class Dump(TrainerCallback):
    def on_train_end(self, args, state, control, model=None, **kwargs):
        weights = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
        torch.save(weights, f"{sys.argv[2]}/rank{args.process_index}.pt")

train(sys.argv[1], callbacks=[Dump()])
"""


@pytest.mark.slow
def test_two_processes_average_their_gradients_and_end_with_the_same_weights(world, tmp_path):
    """A real 2-process DDP run (torch.distributed, gloo, CPU). Each process gets other examples, so weights stay
    equal only if the gradients are averaged: calling the decoder past DDP's forward (what the label-only loss
    did) left them 3e-2 apart after two steps."""
    from codigit.server.serve import free_port

    path = recipe(world, "ddp", max_steps=2, per_device_train_batch_size=2, save_strategy="no")
    script = tmp_path / "train_ranks.py"
    script.write_text(TWO_PROCESS_SCRIPT)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
               str(free_port()), str(script), str(path), str(tmp_path)]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "label_only_loss is off: the model runs wrapped (DistributedDataParallel, MULTI_CPU)" in result.stderr
    first, second = (torch.load(tmp_path / f"rank{k}.pt") for k in (0, 1))
    assert first.keys() == second.keys() and any("lora_B" in k for k in first)
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert any(first[k].abs().sum() > 0 for k in first if "lora_B" in k)  # LoRA B starts at zero: it trained
    run = world["root"] / "runs" / "ddp"
    assert json.loads((run / "provenance.json").read_text())["global_step"] == 2  # written once, by rank 0
    assert (run / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_one_process_uses_the_label_only_loss(world, monkeypatch):
    """The step's loss is the label-only chunked one: the LM head sees only the label positions' hidden states, in
    rows of at most the chunk size (TRL's loss would give it whole (batch, sequence, hidden) tensors), and TRL's own
    compute_loss never runs."""
    from trl import SFTTrainer

    from codigit.train import loss
    from codigit.train.run import prepare

    p = prepare(recipe(world, "one-process", max_steps=1))
    labels, trl_calls, head_rows = [], [], []
    label_only_loss, trl_loss = loss.label_only_loss, SFTTrainer.compute_loss

    def counted(model, inputs, chunk, num_items_in_batch=None):
        labels.append(int((inputs["labels"][:, 1:] != -100).sum()))
        return label_only_loss(model, inputs, chunk, num_items_in_batch)

    monkeypatch.setattr(loss, "label_only_loss", counted)
    monkeypatch.setattr(SFTTrainer, "compute_loss", lambda *a, **k: trl_calls.append(1) or trl_loss(*a, **k))
    p.trainer.loss_chunk_tokens = 16
    head = loss.causal_lm(p.trainer.model).get_output_embeddings()
    head.register_forward_hook(lambda module, args, out: head_rows.append(tuple(args[0].shape)))
    p.trainer.train()
    assert type(p.trainer).__name__ == "LabelOnlyLossSFTTrainer" and p.trainer.label_only_off is None
    assert len(labels) == 1 and trl_calls == []  # one step, one batch, through the label-only loss only
    assert len(head_rows) == -(-labels[0] // 16) > 1 and all(len(shape) == 2 for shape in head_rows)
    assert [rows for rows, _ in head_rows] == [16] * (len(head_rows) - 1) + [labels[0] - 16 * (len(head_rows) - 1)]


@pytest.mark.slow
def test_a_run_no_longer_than_its_warmup_is_refused(world):
    from codigit.train.run import prepare

    # the demo recipe's warm-up (a fraction) on a 1-step run: the only step would have learning rate 0
    with pytest.raises(CodigitError, match=r"warmup_steps 0.05 gives 1 warm-up step\(s\) of a 1-step run"):
        prepare(recipe(world, "warm", max_steps=1, warmup_steps=0.05))
    with pytest.raises(CodigitError, match=r"of a 3-step run"):  # counted from the data: 40 stories, batch 4
        prepare(recipe(world, "warm-epochs", max_steps=-1, num_train_epochs=0.3, warmup_steps=5))
    accepted = prepare(recipe(world, "warm-ok", max_steps=2, warmup_steps=0.05)).trainer.args
    assert accepted.get_warmup_steps(accepted.max_steps) == 1 and accepted.max_steps == 2  # the 2nd step learns
