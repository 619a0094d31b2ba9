"""Batched vs one-at-a-time generation on CPU, same model, same prompts, greedy (or sampled), in one run.

64 conversations (the open prompt suite, twice over, with the chat template) answered by `codigit.generate.
hf_generate` at batch 64 (left padding, prompts sorted by length) and at batch 1. Reported: generated tokens per
second for each, whether every output is identical, and the speedup. Last line: `generation_batched_speedup: X`
(goal >= 8).

`--sampled` samples as `codigit generate` does (temperature 0.7, top-p 0.9, a seed per conversation): each row
draws from its own generator, so a conversation's answer is the same at batch 64 as alone. Last line:
`generation_sampled_batched_speedup: X` (goal >= 12).

    .venv/bin/python benchmarks/generation.py            # SmolLM2-135M-Instruct (codigit:smollm2), 96 new tokens
    .venv/bin/python benchmarks/generation.py --quick    # a small random Llama, Llama-3's vocabulary (< 1 min)
    python benchmarks/generation.py --llama8b            # GPU: random weights in Llama-3.1-8B's shapes, bf16

With --llama8b one-at-a-time generation covers the first 8 conversations only (`--one-at-a-time N`): 64 of them
would take minutes of the GPU's time to show the same tokens/s.

On a GPU with vLLM installed, `--vllm` instead compares `codigit.generate.vllm_generate` (one engine, all 64
requests at once) with `hf_generate` (bf16 on the GPU, batch 64) on the same prompt token ids, greedy; engine
start-up is not timed. Last line: `generation_vllm_speedup: X`. `--model` takes any Llama-3 or ChatML model
(e.g. meta-llama/Llama-3.1-8B-Instruct).

    .venv/bin/python benchmarks/generation.py --vllm --model meta-llama/Llama-3.1-8B-Instruct
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


def common_words(a: str, b: str) -> int:
    """How many leading words two answers share."""
    n = 0
    for x, y in zip(a.split(), b.split(), strict=False):
        if x != y:
            break
        n += 1
    return n


def timed(label: str, generate, *args, **kwargs) -> tuple[list[dict], float]:
    """Run one generation, print its tokens/s line; returns the answers and the tokens/s."""
    began = time.perf_counter()
    out = generate(*args, **kwargs)
    seconds = time.perf_counter() - began
    tokens = sum(r["new_tokens"] for r in out)
    print(f"{label}: {tokens} new tokens in {seconds:.1f} s = {tokens / seconds:.1f} tokens/s")
    return out, tokens / seconds


def vllm_vs_hf(path: str, tokenizer, chats: list, new_tokens: int, batch_size: int) -> None:
    """HF first (then its GPU memory is freed: vLLM reserves most of the GPU), then one vLLM engine."""
    import torch

    from codigit.generate import encode_chats, hf_generate, load_model, vllm_engine, vllm_generate

    model = load_model(path).eval()  # bf16 on the GPU, as `codigit generate` runs it there
    hf_generate(model, tokenizer, chats[:batch_size], None, max_new_tokens=2, batch_size=batch_size)  # warm-up
    hf, hf_rate = timed(f"hf batch {batch_size}", hf_generate, model, tokenizer, chats, None,
                        max_new_tokens=new_tokens, batch_size=batch_size)  # fmt: skip
    del model
    torch.cuda.empty_cache()
    longest = max(len(ids) for ids in encode_chats(tokenizer, chats))
    llm, _ = vllm_engine(path, None, longest + new_tokens)
    out, vllm_rate = timed("vllm", vllm_generate, llm, tokenizer, chats, None, max_new_tokens=new_tokens)
    same = sum(a["text"] == b["text"] for a, b in zip(hf, out, strict=True))
    print(f"model: {path}, greedy, {len(chats)} conversations, up to {new_tokens} new tokens each, "
          f"{torch.cuda.get_device_name()}")  # fmt: skip
    print(f"identical outputs vllm vs hf (both bf16: kernels differ, so some may drift): {same}/{len(chats)}")
    print(f"generation_vllm_speedup: {vllm_rate / hf_rate:.2f}")
    from record import machine, record

    record("generation (vLLM vs HF)", {"model": path, "hf tokens/s": round(hf_rate, 1),
           "vllm tokens/s": round(vllm_rate, 1), "identical": f"{same}/{len(chats)}",
           "generation_vllm_speedup": round(vllm_rate / hf_rate, 2)}, machine())  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small random Llama, 48 new tokens")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int)
    parser.add_argument("--vllm", action="store_true", help="GPU only: vLLM vs HF generate on the GPU")
    parser.add_argument("--llama8b", action="store_true", help="GPU: random weights in Llama-3.1-8B's shapes, bf16")
    parser.add_argument("--one-at-a-time", type=int, help="conversations generated at batch 1 (default all; 8 with "
                        "--llama8b)")  # fmt: skip
    parser.add_argument("--model", help="a Llama-3 or ChatML model name or folder (default: SmolLM2 or --quick's)")
    parser.add_argument("--sampled", action="store_true", help="sample with a seed per conversation, not greedy")
    args = parser.parse_args()

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from codigit.generate import TEMPERATURE, TOP_P, conversations, hf_generate
    from codigit.suites import load_suite
    from codigit.train.formats import prepare_tokenizer
    from codigit.train.models import resolve_model

    if (args.vllm or args.llama8b) and not torch.cuda.is_available():
        parser.error(f"{'--vllm' if args.vllm else '--llama8b'} needs a CUDA GPU")
    if args.vllm:
        try:
            import vllm  # noqa: F401
        except ImportError:
            parser.error("--vllm needs vLLM: pip install vllm")
    prompts = load_suite(REPO / "analysis" / "prompts" / "codigit-open.jsonl")
    chats = conversations((prompts * 3)[:64], None)
    new_tokens = args.max_new_tokens or (48 if args.quick else 96)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        if args.llama8b:
            from codigit.train.llama3 import LLAMA_31_8B, save_llama_shapes

            path = str(save_llama_shapes(Path(tmp) / "llama8b", **LLAMA_31_8B))
        elif args.model:
            path = resolve_model(args.model)
        elif args.quick:
            path = str(small_llama(Path(tmp)))
        else:
            path = resolve_model("codigit:smollm2")
        tokenizer = AutoTokenizer.from_pretrained(path)
        prepare_tokenizer(tokenizer)
        if args.vllm:  # vLLM reads the model folder itself: stay inside the temporary folder
            vllm_vs_hf(path, tokenizer, chats, new_tokens, args.batch_size)
            return
        if args.llama8b:  # random weights, built on the GPU in bf16 as `codigit generate` runs models there
            with torch.device("cuda"):
                model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path), dtype=torch.bfloat16)
            model.eval()
            hf_generate(model, tokenizer, chats[:8], None, max_new_tokens=2, batch_size=8)  # warm-up
        else:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    single = chats[: args.one_at_a_time or (8 if args.llama8b else len(chats))]
    seeds = list(range(len(chats))) if args.sampled else None  # conversation k keeps seed k in both runs
    results = {}
    for batch, subset in ((args.batch_size, chats), (1, single)):
        results[batch] = timed(f"batch {batch:>3}", hf_generate, model, tokenizer, subset,
                               seeds[: len(subset)] if seeds else None, max_new_tokens=new_tokens, batch_size=batch,
                               temperature=TEMPERATURE, top_p=TOP_P)  # fmt: skip
    pairs = list(zip(results[args.batch_size][0], results[1][0], strict=False))
    same = sum(a["text"] == b["text"] for a, b in pairs)
    # bf16 on a GPU: a matrix product's rounding depends on the batch's shape, and random weights give near-tied
    # logits, so one flipped token changes the rest; how far two answers agree tells that from a decoding bug
    agree = sorted(common_words(a["text"], b["text"]) for a, b in pairs if a["text"] != b["text"])
    label = args.model or ("small random Llama (4 layers, 128k vocab)" if args.quick else "SmolLM2-135M-Instruct")
    if args.llama8b:
        label = "random Llama-3.1-8B shapes, bf16"
    where = torch.cuda.get_device_name() if args.llama8b else "CPU"
    mode = f"sampled (temperature {TEMPERATURE}, top-p {TOP_P}, seed per conversation)" if args.sampled else "greedy"
    print(f"model: {label}, {mode}, {len(chats)} conversations, up to {new_tokens} new tokens each, {where}")
    differ = f"; the others agree for their first {agree[len(agree) // 2]} words (median)" if agree else ""
    print(f"identical outputs batched vs one at a time (first {len(single)}): {same}/{len(single)}{differ}")
    sampled = "_sampled" if args.sampled else ""
    print(f"generation{sampled}_batched_speedup: {results[args.batch_size][1] / results[1][1]:.2f}")
    from record import machine, record

    speedup = round(results[args.batch_size][1] / results[1][1], 2)
    record("generation (sampled)" if args.sampled else "generation",
           {"model": label, f"batch {args.batch_size} tokens/s": round(results[args.batch_size][1], 1),
            "batch 1 tokens/s": round(results[1][1], 1), "identical": f"{same}/{len(single)}",
            f"generation{sampled}_batched_speedup": speedup}, machine())  # fmt: skip


if __name__ == "__main__":
    main()
