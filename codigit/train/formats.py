"""Chat formats the loss can be masked with: each model family's own template, with {% generation %} markers
around the assistant's text and its end-of-turn token, an end-of-turn eos, and a pad token that is not eos.
Plain text (continued pretraining) needs only the family's end-of-document token as eos, and a pad distinct from it."""

from __future__ import annotations

from codigit.errors import CodigitError
from codigit.train import llama3

# SmolLM2's own ChatML template, with generation markers (its shipped template has none).
CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if loop.first and messages[0]['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- generation %}{{- message['content'] + '<|im_end|>' }}{%- endgeneration %}{{- '\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
# family marker token -> (template, end-of-turn token, pad token)
FAMILIES = {
    llama3.EOT: (llama3.CHAT_TEMPLATE, llama3.EOT, llama3.PAD),
    "<|im_end|>": (CHATML_TEMPLATE, "<|im_end|>", "<|endoftext|>"),
}

# family's end-of-document token -> pad token, for plain text: what the base model saw between documents
TEXT_FAMILIES = {llama3.EOS: llama3.PAD, "<|endoftext|>": "<|im_end|>"}


def collective_token(name: str) -> str:
    return f"<|collective:{name}|>"


def prepare_tokenizer(tokenizer, collective_tokens: list[str] = ()) -> None:
    """Set the family's masked template, eos = end of turn (generation stops there), a pad distinct from it,
    and add the collective-identity tokens as special tokens."""
    vocab = tokenizer.get_vocab()
    family = next((k for k in FAMILIES if k in vocab), None)
    if family is None:
        raise CodigitError(
            "no chat format with generation markers for this tokenizer (codigit knows Llama-3 and ChatML/SmolLM2)"
        )
    template, eot, pad = FAMILIES[family]
    tokenizer.chat_template = template
    tokenizer.eos_token = eot
    if pad not in vocab or pad == eot:
        raise CodigitError(f"this tokenizer has no pad token distinct from {eot}")
    tokenizer.pad_token = pad
    _add_tokens(tokenizer, collective_tokens)


def prepare_text_tokenizer(tokenizer, collective_tokens: list[str] = ()) -> None:
    """For plain text: eos = the family's end-of-document token (TRL appends it to every text, so packed texts
    stay apart and generation can stop where a document ends), a pad distinct from it, the collective tokens.
    The chat template is left as the model has it: a text run applies none."""
    vocab = tokenizer.get_vocab()
    eos = next((k for k in TEXT_FAMILIES if k in vocab), None)
    if eos is None:
        raise CodigitError("no end-of-document token known for this tokenizer (codigit knows Llama-3 and SmolLM2)")
    if TEXT_FAMILIES[eos] not in vocab:
        raise CodigitError(f"this tokenizer has no pad token distinct from {eos}")
    tokenizer.eos_token, tokenizer.pad_token = eos, TEXT_FAMILIES[eos]
    _add_tokens(tokenizer, collective_tokens)


def _add_tokens(tokenizer, tokens: list[str]) -> None:
    if new := [t for t in tokens if t not in tokenizer.get_vocab()]:
        tokenizer.add_tokens(new, special_tokens=True)
