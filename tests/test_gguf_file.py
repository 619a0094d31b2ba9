"""`write_gguf`: the copy of the trained model contributors get, proven by reading it back with transformers.

transformers reads a GGUF on its own (`gguf_file=`: config, weights and tokenizer all from the file's metadata,
with llama.cpp's q/k permutation undone), so the copy is right when that model gives the original's logits and
that tokenizer the original's ids. The model is a tiny random Llama with the real (offline) Llama-3 tokenizer.
Reading a GGUF with a 128k vocabulary takes transformers ~15-30 s here, so each file is loaded once (and parsed
once: `gguf_parsed_once`, conftest).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from codigit.errors import CodigitError

torch = pytest.importorskip("torch")  # a dependency of codigit: present wherever the suite runs

SHAPE = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2, "max_position_embeddings": 2048}  # fmt: skip
# Random init gives near-uniform attention, where the order of the rotary dims hardly shows (a missing q/k
# permutation moves logits by 0.4% of their size). Scaling q and k by 8 (attention scores by 64) makes it 30%.
SHARPEN = 8
PROMPTS = ["Hello world", "they/them, xe/xem — Ünïcödé 😀 東京", "  leading\n\n\ttabs 12345678 it's"]

# Largest |Δlogit| allowed, as a fraction of the largest |logit|. A weight stored in f16 is off by at most 2^-11
# of itself (unit roundoff, 10 stored mantissa bits); q8_0 stores blocks of 32 as int8 times one f16 scale
# (block max / 127), so a weight is off by up to half a step, 1/254 of its block's max. Each logit goes through
# ~10 such matrices in a row here (embedding, q/k/v/o and gate/up/down per layer, output), and independent
# roundings partly cancel: measured, 0.8x (f16) and 2.4x (q8_0) the per-weight bound. 8x leaves room, and stays
# ~10x below what a q/k permutation mistake does to these logits (SHARPEN), so every dtype's test can catch one.
BOUND = {"f16": 8 * 2**-11, "q8_0": 8 / 254}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[bool, Path]:
    """A tied and an untied tiny Llama (saved as `from_pretrained` folders), by `tie_word_embeddings`."""
    from safetensors.torch import load_file, save_file

    from codigit.train.llama3 import save_random_llama

    root = tmp_path_factory.mktemp("gguf-models")
    models = {}
    for tied in (True, False):
        folder = save_random_llama(root / f"tied-{tied}", tie_word_embeddings=tied, **SHAPE)
        weights = load_file(folder / "model.safetensors")
        for name in weights:
            if name.endswith(("q_proj.weight", "k_proj.weight")):
                weights[name] *= SHARPEN
        save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
        models[tied] = folder
    return models


def write_alone(model: Path, folder: Path, dtype: str) -> Path:
    """The GGUF in a folder of its own, so nothing but the file can be what transformers reads."""
    from codigit.gguf_file import write_gguf

    out = write_gguf(model, folder / "model.gguf", dtype)
    assert sorted(p.name for p in folder.iterdir()) == ["model.gguf"]  # no temporary file left beside it
    return out


def logits(model, tokenizer) -> list:
    with torch.no_grad():
        return [model(torch.tensor([tokenizer(p).input_ids])).logits[0] for p in PROMPTS]


@pytest.mark.slow
@pytest.mark.parametrize("tied, dtype", [(True, "f32"), (True, "f16"), (True, "q8_0"), (False, "f32")])
def test_transformers_reads_back_the_same_model(models, tmp_path, tied, dtype, gguf_parsed_once):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = write_alone(models[tied], tmp_path, dtype)
    original = AutoModelForCausalLM.from_pretrained(models[tied], dtype=torch.float32).eval()
    copy = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=gguf.name, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(models[tied])

    # transformers ties the output to the embedding exactly when the file has no `output.weight`
    assert copy.config.tie_word_embeddings is tied
    for key in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                "max_position_embeddings", "vocab_size", "head_dim"):  # fmt: skip
        assert getattr(copy.config, key) == getattr(original.config, key), key
    # GGUF stores these as float32, as llama.cpp reads them
    assert copy.config.rms_norm_eps == pytest.approx(original.config.rms_norm_eps, rel=2**-23)
    theta = [m.config.rope_parameters["rope_theta"] for m in (copy, original)]
    assert theta[0] == pytest.approx(theta[1], rel=2**-23)
    want, got = logits(original, tokenizer), logits(copy, tokenizer)
    worst = max(float((w - g).abs().max()) for w, g in zip(want, got, strict=True))
    scale = max(float(w.abs().max()) for w in want)
    if dtype == "f32":
        assert worst <= 1e-4
    else:
        assert worst <= BOUND[dtype] * scale, (worst, scale)
    assert worst < 0.1 * scale  # the bound is far below the logits' own size, so it can fail


@pytest.mark.slow
def test_transformers_rebuilds_the_same_tokenizer(models, tmp_path, gguf_parsed_once):
    from transformers import AutoTokenizer

    gguf = write_alone(models[True], tmp_path, "f16")
    original = AutoTokenizer.from_pretrained(models[True])
    copy = AutoTokenizer.from_pretrained(tmp_path, gguf_file=gguf.name)
    specials = ["<|begin_of_text|>Héllo<|eot_id|>", "ελληνικά, русский, العربية, हिन्दी, 日本語 😀👍🏽", "a\r\nb  \n"]
    for text in [*PROMPTS, *specials]:
        assert copy(text).input_ids == original(text).input_ids, text
        assert copy.decode(copy(text).input_ids) == text
    for special in ("bos_token", "eos_token", "pad_token"):
        assert getattr(copy, special) == getattr(original, special), special
    # the file's template drops HF's `{% generation %}` markers (they render nothing; llama.cpp need not parse them)
    chat = [{"role": "user", "content": "Ünïcödé?"}, {"role": "assistant", "content": "Yes."}]
    assert copy.apply_chat_template(chat, tokenize=False) == original.apply_chat_template(chat, tokenize=False)
    assert "generation %}" in original.chat_template and "generation %}" not in copy.chat_template


def test_a_folder_that_is_not_a_llama_is_one_clear_error(models, tmp_path):
    from codigit.gguf_file import write_gguf

    (tmp_path / "gpt2").mkdir()
    (tmp_path / "gpt2" / "config.json").write_text('{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}')
    no_weights = tmp_path / "no-weights"
    no_weights.mkdir()
    for name in ("config.json", "tokenizer.json"):
        (no_weights / name).write_bytes((models[True] / name).read_bytes())
    out = tmp_path / "out" / "model.gguf"
    for folder, says in [(tmp_path / "missing", "config.json"), (tmp_path / "gpt2", "LlamaForCausalLM"),
                         (no_weights, "model.safetensors")]:  # fmt: skip
        with pytest.raises(CodigitError, match=says) as e:
            write_gguf(folder, out)
        assert "\n" not in str(e.value)
    assert not out.exists()


def test_a_failed_write_keeps_the_old_file_and_no_partial_one(models, tmp_path, monkeypatch):
    import codigit.gguf_file as gguf_file

    out = tmp_path / "model.gguf"
    out.write_bytes(b"the copy made before")

    def broken(path, name):
        raise RuntimeError("disk gone")

    monkeypatch.setattr(gguf_file, "_load", broken)
    with pytest.raises(RuntimeError, match="disk gone"):
        gguf_file.write_gguf(models[True], out, "f16")
    assert out.read_bytes() == b"the copy made before"
    assert [p.name for p in tmp_path.iterdir()] == ["model.gguf"]
