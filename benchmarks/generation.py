"""Batched vs one-at-a-time generation on CPU, same model, same prompts, greedy, in one run.

64 conversations (the open prompt suite, twice over, with the chat template) answered by `codigit.generate.
hf_generate` at batch 64 (left padding, prompts sorted by length) and at batch 1. Reported: generated tokens per
second for each, whether every output is identical, and the speedup. Last line: `generation_batched_speedup: X`
(goal >= 8).

    .venv/bin/python benchmarks/generation.py            # SmolLM2-135M-Instruct (codigit:smollm2), 96 new tokens
    .venv/bin/python benchmarks/generation.py --quick    # a small random Llama, Llama-3's vocabulary (< 1 min)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def small_llama(work: Path) -> Path:
    """A randomly initialised 4-layer Llama (hidden 256) with the real Llama-3 tokenizer and vocabulary."""
    from codigit.train.llama3 import save_random_llama

    return save_random_llama(work / "small", hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small random Llama, 48 new tokens")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int)
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from codigit.generate import conversations, hf_generate, load_suite
    from codigit.train.formats import prepare_tokenizer
    from codigit.train.models import resolve_model

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        if args.quick:
            path = str(small_llama(Path(tmp)))
        else:
            path = resolve_model("codigit:smollm2")
        tokenizer = AutoTokenizer.from_pretrained(path)
        prepare_tokenizer(tokenizer)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    prompts = load_suite(REPO / "analysis" / "prompts" / "codigit-open.jsonl")
    chats = conversations((prompts * 3)[:64], None)
    new_tokens = args.max_new_tokens or (48 if args.quick else 96)
    results = {}
    for batch in (args.batch_size, 1):
        began = time.perf_counter()
        out = hf_generate(model, tokenizer, chats, None, max_new_tokens=new_tokens, batch_size=batch)
        seconds = time.perf_counter() - began
        tokens = sum(r["new_tokens"] for r in out)
        results[batch] = (out, tokens / seconds, seconds, tokens)
        print(f"batch {batch:>3}: {tokens} new tokens in {seconds:.1f} s = {tokens / seconds:.1f} tokens/s")
    same = sum(a["text"] == b["text"] for a, b in zip(results[args.batch_size][0], results[1][0], strict=True))
    label = "small random Llama (4 layers, 128k vocab)" if args.quick else "SmolLM2-135M-Instruct"
    print(f"model: {label}, greedy, {len(chats)} conversations, up to {new_tokens} new tokens each, CPU")
    print(f"identical outputs batched vs one at a time: {same}/{len(chats)}")
    print(f"generation_batched_speedup: {results[args.batch_size][1] / results[1][1]:.2f}")


if __name__ == "__main__":
    main()
