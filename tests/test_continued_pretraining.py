"""Continued pretraining: `codigit train` on a corpus release (`kind: corpus`), offline on CPU.

A real corpus release made by `make_corpus_release` from a snapshot of 12 contributed texts, and a tiny Llama built
from config with the real (offline) Llama-3 tokenizer; everything goes through `codigit.train.run` (the code
behind `codigit train`) or the CLI's `main`.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
import yaml
from release_data import corpus_release

from codigit.errors import CodigitError

torch = pytest.importorskip("torch")  # a dependency of codigit: present wherever the suite runs

AT = "2026-05-01T10:00:{:02d}.000000Z"
TEXTS = 12
# common English words: the language filter keeps them, and a model can learn their frequencies in a few steps
WORDS = (
    "the river ran past the old mill and the children watched the water turn the wheel while their mother "
    "sang a song about the sea and the wind that carried boats home in the evening light of summer"
).split()


def text(k: int) -> str:
    """Text k: 80-200 words drawn from WORDS (seeded), in sentences; no two are near copies of each other."""
    rng = random.Random(k)
    words = [rng.choice(WORDS) for _ in range(80 + 11 * k)]
    sentences = [" ".join(words[i : i + 12]).capitalize() + "." for i in range(0, len(words), 12)]
    return " ".join(sentences)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """A tiny Llama and a corpus release of TEXTS texts by 4 consenting contributors."""
    from codigit.records import Consent, Contribution
    from codigit.train.llama3 import save_random_llama

    root = tmp_path_factory.mktemp("cpt")
    # hidden 128, not conftest's 32: with LoRA frozen embeddings of norm ~0.02·√hidden bound how far the logits
    # can move, and at 32 the loss of any run stalls ~0.1 below uniform (ln 128256 = 11.76)
    save_random_llama(root / "tiny", hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                      tie_word_embeddings=True)  # fmt: skip
    people = [f"p-{n:03d}" for n in range(1, 5)]
    consent = [Consent(participant=p, version="1.0", training=True, public=True, attribution_name=None,
                       given_at=AT.format(0)) for p in people]  # fmt: skip
    texts = [Contribution(contribution_id=f"00000000-0000-0000-0000-{k:012d}", author=people[k % 4],
                          title=f"Text {k}", text=text(k), licence="own_work", keep=True, source="form",
                          submitted_at=AT.format(k + 1)) for k in range(TEXTS)]  # fmt: skip
    release, manifest = corpus_release(root, consent, texts)
    assert manifest.counts["included"] == TEXTS, manifest.excluded  # every text made it in
    return {"root": root, "model": root / "tiny", "release": release, "manifest": manifest}


def recipe(world: dict, name: str, **extra) -> Path:
    """A CPU continued-pretraining recipe on `world` (8 fp32 steps of LoRA on all linear layers, seed 1)."""
    values = {
        "release": str(world["release"]), "release_hash": world["manifest"].dataset_hash,
        "model_name_or_path": str(world["model"]), "dtype": "float32", "use_peft": True, "lora_r": 8,
        "lora_alpha": 16, "lora_target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                                  "down_proj"],
        "output_dir": str(world["root"] / "runs" / name), "seed": 1, "max_steps": 8, "learning_rate": 2e-2,
        "per_device_train_batch_size": 2, "max_length": 128, "packing": True, "packing_strategy": "bfd_split",
        "padding_free": True, "logging_steps": 1, "save_strategy": "no", "report_to": "none", "use_cpu": True,
        "disable_tqdm": True, **extra,
    }  # fmt: skip
    path = world["root"] / f"{name}.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def test_every_token_of_every_text_is_trained_and_texts_end_with_end_of_text(world):
    from codigit.train.loss import label_only_loss
    from codigit.train.run import prepare

    p = prepare(recipe(world, "labels"))
    trainer, tokenizer = p.trainer, p.tokenizer
    eos = tokenizer.convert_tokens_to_ids("<|end_of_text|>")
    assert tokenizer.eos_token_id == eos != tokenizer.pad_token_id  # the base model's end of document
    rows = [trainer.train_dataset[i] for i in range(len(trainer.train_dataset))]
    assert all(len(r["input_ids"]) <= 128 for r in rows)
    # nothing cut: texts longer than max_length continue in another row (bfd_split), each ends with one eos
    ids = [t for r in rows for t in r["input_ids"]]
    assert ids.count(eos) == TEXTS
    assert len(ids) == world["manifest"].counts["tokens"] + TEXTS  # the release counts text tokens, Llama-3 ids
    assert max(r.tokens for r in world["manifest"].records) > 128  # ... and some texts are longer than a row

    batch = trainer.data_collator(rows[:4])
    labels, inputs, starts = batch["labels"][0], batch["input_ids"][0], batch["position_ids"][0] == 0
    assert "attention_mask" not in batch  # packed, padding-free: sequences apart by their positions
    assert (labels[~starts] == inputs[~starts]).all()  # every token is a label: no prompt, no assistant mask
    assert (labels[starts] == -100).all()  # only where a sequence starts (nothing predicts it across a boundary)
    with torch.no_grad():  # the label-only loss is the model's own loss on plain text too
        model = trainer.model.eval()
        reference = model(**batch, use_cache=False).loss.item()
        assert label_only_loss(model, batch, 7).item() == pytest.approx(reference, rel=1e-6)


@pytest.mark.slow
def test_a_short_run_lowers_the_loss_and_records_the_corpus(world):
    from codigit.handoff import Provenance, read_provenance
    from codigit.release.manage import affected
    from codigit.train.run import train

    run = train(recipe(world, "train"))
    losses = [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 8
    assert sum(losses[-2:]) / 2 < sum(losses[:2]) / 2 - 0.2, losses  # measured: 11.80 11.51 … 11.20 11.22
    used = read_provenance(run).release
    assert used.kind == "corpus" and used.dataset_hash == world["manifest"].dataset_hash
    assert used.records == TEXTS and used.split == "train" and used.version == "0.1.0"
    assert (run / "adapter" / "adapter_config.json").is_file()
    # a provenance file written before corpus releases (no `kind`) still reads: a stories release
    old = json.loads((run / "provenance.json").read_text())
    del old["release"]["kind"]
    assert Provenance.model_validate(old).release.kind is None
    # `release affected` reads the corpus run's provenance; a corpus names no pseudonyms, so it finds no release
    hit, runs, unreadable = affected("p-001", world["root"] / "releases", run.parent)
    assert hit == runs == unreadable == []


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["--assistant_only_loss", "true"], "assistant_only_loss"),
        (["--completion_only_loss", "true"], "completion_only_loss"),
        (["--packing", "false"], "packing"),
        (["--packing_strategy", "bfd"], "packing_strategy bfd"),
        (["--release_split", "test"], "release_split"),
        (["--eval_split", "test", "--eval_strategy", "steps", "--eval_steps", "2"], "eval_split"),
        (["--dataset_text_field", "messages"], "dataset_text_field"),
    ],
)
def test_chat_settings_that_cannot_apply_to_a_corpus_are_one_line_errors(world, capsys, overrides, key):
    from codigit.cli import main

    name = f"bad-{key.split()[0]}"
    assert main(["train", str(recipe(world, name)), *overrides]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and key in err and "corpus" in err, err
    assert not (world["root"] / "runs" / name).exists()  # refused before anything was written


def test_a_tampered_corpus_is_refused_before_training(world, tmp_path):
    from codigit.corpus.release import DATA_FILE
    from codigit.train.run import train

    copy = tmp_path / "0.1.0"
    shutil.copytree(world["release"], copy)
    data = bytearray((copy / DATA_FILE).read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one byte
    (copy / DATA_FILE).write_bytes(bytes(data))
    with pytest.raises(CodigitError, match=f"{DATA_FILE} was modified after the release was made"):
        train(recipe(world, "tampered", release=str(copy)))
    assert not (world["root"] / "runs" / "tampered").exists()
    with pytest.raises(CodigitError, match="is not the recipe's release_hash"):  # pinned to another corpus
        train(recipe(world, "pinned", release_hash="0" * 64))


def test_the_collective_token_opens_every_text_and_max_records_takes_the_first(world):
    from codigit.train.recipe import CodigitArgs
    from codigit.train.texts import corpus_texts, release_kind

    assert release_kind(world["release"]) == "corpus" and release_kind(world["root"]) == "stories"
    args = CodigitArgs(release=str(world["release"]), collectives=["river"], collective="river", max_records=5)
    texts = corpus_texts(args, world["release"])["text"]
    plain = corpus_texts(CodigitArgs(release=str(world["release"])), world["release"])["text"]
    assert texts == ["<|collective:river|>" + t for t in plain[:5]] and len(plain) == TEXTS
