"""A trained Llama-architecture model as one GGUF file: the copy contributors get, for llama.cpp-based apps.

It writes what llama.cpp's `convert_hf_to_gguf.py` writes for a Llama (SmolLM2 and Llama-3.x are both):
the same metadata keys, tensor names and tensor types, and the q/k row permutation llama.cpp's RoPE expects
(transformers' GGUF loader undoes it; `tests/test_gguf_file.py` checks next-token logits after the round trip).
Only the `gguf` package's public API is used (its `SpecialVocab` is the very code llama.cpp's converter runs).
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
from pathlib import Path
from typing import Any, Literal, get_args

from codigit.errors import CodigitError

GGUFType = Literal["f32", "f16", "q8_0"]

# llama.cpp's `tokenizer.ggml.pre` for the pre-tokenizers its Llama-family vocabularies use. llama.cpp picks it by
# hashing a test text's ids; we read the pre-tokenizer itself, which names the same split.
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|"
    r"\s+(?!\S)|\s+"
)
# HF's `{% generation %}` marks what training learns from; it renders nothing, and llama.cpp's Jinja may refuse it
_GENERATION_TAG = re.compile(r"\{%-?\s*(?:end)?generation\s*-?%\}")


def write_gguf(model_dir: Path, out: Path, dtype: GGUFType = "f16") -> Path:
    """`model_dir` (config.json of a `LlamaForCausalLM`, safetensors weights, tokenizer.json) as the GGUF `out`.
    Norms and other 1-D tensors stay f32 whatever `dtype` says, as llama.cpp keeps them; with q8_0 a matrix whose
    rows are not whole 32-value blocks falls back to f16, as in llama.cpp. `out` appears whole or not at all."""
    import gguf
    import numpy as np

    model_dir, out = Path(model_dir), Path(out)
    if dtype not in get_args(GGUFType):
        raise CodigitError(f"GGUF type {dtype!r}: choose one of {', '.join(get_args(GGUFType))}")
    config = _llama_config(model_dir)
    n_head, n_kv = config["num_attention_heads"], config.get("num_key_value_heads") or config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // n_head
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    rope_type = rope.get("rope_type") or rope.get("type") or "default"
    if rope_type not in ("default", "llama3"):
        raise CodigitError(f"{model_dir}: RoPE scaling {rope_type!r} is not supported (only default and llama3)")
    tied = bool(config.get("tie_word_embeddings", False))

    writer = gguf.GGUFWriter(None, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(model_dir.name)
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv)
    writer.add_rope_freq_base(float(rope.get("rope_theta", config.get("rope_theta", 10000.0))))
    writer.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_vocab_size(config["vocab_size"])
    file_type = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16}
    writer.add_file_type(file_type.get(dtype, gguf.LlamaFileType.MOSTLY_Q8_0))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    _add_vocab(writer, model_dir, config["vocab_size"])

    # Each tensor is read, converted and written one at a time (the header needs only shapes), so converting an 8B
    # model needs memory for one tensor, not for the model.
    tensors = _plan_tensors(model_dir, config["num_hidden_layers"], tied)
    if rope_type == "llama3":  # llama.cpp applies Llama-3.1's long-context RoPE from this tensor
        tensors.append(("rope_freqs.weight", (head_dim // 2,), lambda: _llama3_rope_factors(rope, config, head_dim)))

    def convert(name: str, load: Any) -> Any:
        data = load().float()
        if name.endswith(("attn_q.weight", "attn_q.bias")):  # the two halves of each head's rotary dims interleaved
            data = _permute(data, n_head)
        elif name.endswith(("attn_k.weight", "attn_k.bias")):
            data = _permute(data, n_kv)
        return gguf.quants.quantize(data.numpy(), _qtype(name, tuple(data.shape), dtype))

    tmp = out.parent / f".{out.name}.{secrets.token_hex(4)}.tmp"
    try:
        for name, shape, _ in tensors:
            qtype = _qtype(name, shape, dtype)
            block, size = gguf.GGML_QUANT_SIZES[qtype]
            q8 = qtype == gguf.GGMLQuantizationType.Q8_0  # declared by its shape in bytes, as the uint8 array it is
            declared = gguf.quants.quant_shape_to_byte_shape(shape, qtype) if q8 else shape
            nbytes = math.prod(shape) // block * size
            writer.add_tensor_info(name, declared, np.dtype(np.uint8 if q8 else np.float32), nbytes, raw_dtype=qtype)
        out.parent.mkdir(parents=True, exist_ok=True)
        writer.write_header_to_file(tmp)
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for name, _, load in tensors:
            writer.write_tensor_data(convert(name, load))
        writer.flush()
        for f in writer.fout or ():
            os.fsync(f.fileno())
        writer.close()
        os.replace(tmp, out)
    except OSError as e:
        raise CodigitError(f"{out}: could not be written ({e.strerror or e}); nothing was kept") from None
    finally:
        writer.close()
        tmp.unlink(missing_ok=True)
    return out


def _llama_config(model_dir: Path) -> dict:
    """config.json, checked to be a plain Llama that llama.cpp's `llama` architecture runs as it is."""
    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CodigitError(f"{model_dir}: no readable config.json ({e})") from None
    if config.get("model_type") != "llama" or config.get("architectures") != ["LlamaForCausalLM"]:
        found = config.get("architectures") or config.get("model_type")
        raise CodigitError(f"{model_dir}: a GGUF copy needs a LlamaForCausalLM model, this is {found}")
    if config.get("attention_bias") or config.get("mlp_bias") or config.get("hidden_act", "silu") != "silu":
        raise CodigitError(f"{model_dir}: a Llama with biases or a non-SiLU activation has no GGUF copy here")
    if not (model_dir / "tokenizer.json").is_file():
        raise CodigitError(f"{model_dir}: no tokenizer.json (a GGUF carries the tokenizer)")
    return config


def _plan_tensors(model_dir: Path, n_blocks: int, tied: bool) -> list[tuple[str, tuple[int, ...], Any]]:
    """(llama.cpp name, shape, loader) for every weight, in the checkpoint's order, from the safetensors headers."""
    import gguf
    from safetensors import safe_open

    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
    elif (model_dir / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        raise CodigitError(f"{model_dir}: no model.safetensors (nor a sharded index)")
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_blocks)
    plan = []
    for file in files:
        with safe_open(model_dir / file, framework="pt") as f:
            for hf_name in f.keys():
                if tied and hf_name == "lm_head.weight":
                    continue  # llama.cpp reuses token_embd when there is no `output`; transformers ties it back
                if hf_name.endswith(".rotary_emb.inv_freq"):
                    continue  # older checkpoints save RoPE's constants; llama.cpp computes them
                name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
                if name is None:
                    raise CodigitError(f"{model_dir}: tensor {hf_name} has no place in a Llama GGUF")
                shape = tuple(f.get_slice(hf_name).get_shape())
                plan.append((name, shape, lambda file=file, hf_name=hf_name: _load(model_dir / file, hf_name)))
    if not tied and "output.weight" not in {name for name, _, _ in plan}:
        raise CodigitError(f"{model_dir}: untied embeddings but no lm_head.weight")
    return plan


def _load(path: Path, name: str) -> Any:
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        return f.get_tensor(name)


def _qtype(name: str, shape: tuple[int, ...], dtype: GGUFType) -> Any:
    """The GGML type llama.cpp's converter gives this tensor for `--outtype dtype`."""
    import gguf

    types = gguf.GGMLQuantizationType
    if len(shape) <= 1 or name.endswith("_norm.weight") or dtype == "f32":
        return types.F32
    if dtype == "q8_0" and shape[-1] % gguf.GGML_QUANT_SIZES[types.Q8_0][0] == 0:
        return types.Q8_0
    return types.F16


def _permute(weights: Any, n_head: int) -> Any:
    """llama.cpp's `LlamaModel.permute`: HF stores each head's rotary pairs as (first half, second half); GGML's
    RoPE rotates adjacent pairs, so the rows of q and k go from [2, d/2] to [d/2, 2] within each head."""
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def _llama3_rope_factors(rope: dict, config: dict, head_dim: int) -> Any:
    """llama.cpp's per-frequency divisors for Llama-3.1's RoPE (convert_hf_to_gguf.py, LlamaModel)."""
    import torch

    base = rope.get("rope_theta", config.get("rope_theta", 10000.0))
    factor, low, high = rope.get("factor", 8.0), rope.get("low_freq_factor", 1.0), rope.get("high_freq_factor", 4.0)
    old = rope.get("original_max_position_embeddings", 8192)
    factors = []
    for freq in 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)):
        wavelen = 2 * math.pi / float(freq)
        if wavelen < old / high:
            factors.append(1.0)
        elif wavelen > old / low:
            factors.append(factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return torch.tensor(factors, dtype=torch.float32)


def _add_vocab(writer: Any, model_dir: Path, vocab_size: int) -> None:
    """The byte-level BPE vocabulary as llama.cpp's `_set_vocab_gpt2` writes it: tokens (already in the byte
    alphabet in tokenizer.json), types (added special tokens CONTROL, other added ones USER_DEFINED, ids the
    tokenizer lacks UNUSED `[PADn]`), merges, special ids, add-BOS/EOS flags and the chat template."""
    import gguf

    tokenizer = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    model = tokenizer.get("model") or {}
    if model.get("type") != "BPE" or (tokenizer.get("decoder") or {}).get("type") != "ByteLevel":
        raise CodigitError(f"{model_dir}: tokenizer.json is not a byte-level BPE (Llama-3 / SmolLM2 style)")
    types = gguf.TokenType
    tokens = [f"[PAD{i}]" for i in range(vocab_size)]
    kinds = [types.UNUSED] * vocab_size
    added = {t["id"]: t for t in tokenizer.get("added_tokens", [])}
    for token, i in [*model["vocab"].items(), *((t["content"], i) for i, t in added.items())]:
        if i >= vocab_size:
            raise CodigitError(f"{model_dir}: token id {i} is past the model's vocab_size {vocab_size}")
        tokens[i] = token
        kinds[i] = (types.CONTROL if added[i]["special"] else types.USER_DEFINED) if i in added else types.NORMAL
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(_pre_tokenizer(model_dir, tokenizer.get("pre_tokenizer") or {}))
    writer.add_token_list(tokens)
    writer.add_token_types(kinds)

    special = gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=vocab_size)
    # llama.cpp adds BOS to a llama-bpe vocabulary unless told not to; say what the tokenizer itself does
    special.add_special_token.setdefault("bos", False)
    special.add_special_token.setdefault("eos", False)
    if isinstance(special.chat_template, str):
        special.chat_template = _GENERATION_TAG.sub("", special.chat_template)
    special.add_to_gguf(writer, quiet=True)


def _pre_tokenizer(model_dir: Path, pre: dict) -> str:
    """llama.cpp's name for how this tokenizer splits text before BPE."""
    steps = pre.get("pretokenizers", [pre])
    kinds = [step.get("type") for step in steps]
    if kinds == ["Split", "ByteLevel"] and steps[0].get("pattern", {}).get("Regex") == _LLAMA3_SPLIT:
        return "llama-bpe"  # Llama-3.x
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits") and steps[1].get("use_regex"):
        return "smollm"  # SmolLM / SmolLM2: GPT-2's split, one digit at a time
    if kinds == ["ByteLevel"] and steps[0].get("use_regex"):
        # GPT-2's split alone: what transformers rebuilds from a GGUF whose vocabulary says "smollm" (the CPU demo
        # model is made that way), so the tokenizer the run trained with splits as llama.cpp's "gpt2" does
        return "gpt2"
    raise CodigitError(f"{model_dir}: tokenizer.json's pre-tokenizer ({', '.join(map(str, kinds))}) is not one a "
                       "GGUF copy supports (Llama-3, SmolLM2 or GPT-2's)")  # fmt: skip
