"""Chat formats the loss can be masked with: each model family's own template, with {% generation %} markers
around the assistant's text and its end-of-turn token, an end-of-turn eos, and a pad token that is not eos."""

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
    new = [t for t in collective_tokens if t not in vocab]
    if new:
        tokenizer.add_tokens(new, special_tokens=True)
