"""`codigit generate`: batched generation equals one-at-a-time (greedy and seeded sampling), the parquet."""

from __future__ import annotations

import json
import sys
import types

import pandas as pd
import pytest
from conftest import REPO, codigit, recipe

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny(world):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from codigit.train.formats import prepare_tokenizer

    tokenizer = AutoTokenizer.from_pretrained(world["model"])
    prepare_tokenizer(tokenizer)
    model = AutoModelForCausalLM.from_pretrained(world["model"], dtype=torch.float32).eval()
    return model, tokenizer


PROMPTS = ["Who can be a nurse?", "Write a story about a bridge.", "Hi", "Describe a typical surgeon in detail.",
           "Are there only two genders?", "x", "Tell me a bedtime story about a family of five.", "Why?"]  # fmt: skip


@pytest.mark.parametrize("sampled", [False, True])
@pytest.mark.slow
def test_batched_generation_equals_one_at_a_time(tiny, sampled):
    from codigit.generate import conversations, hf_generate, sample_seed

    model, tokenizer = tiny
    chats = conversations([{"prompt": p} for p in PROMPTS], None)
    seeds = [sample_seed(0, str(i), 0) for i in range(len(PROMPTS))] if sampled else None
    kwargs = {"max_new_tokens": 12, "temperature": 1.0, "top_p": 0.9}
    batched = hf_generate(model, tokenizer, chats, seeds, batch_size=8, **kwargs)
    single = hf_generate(model, tokenizer, chats, seeds, batch_size=1, **kwargs)
    assert [r["text"] for r in batched] == [r["text"] for r in single]
    assert all(r["new_tokens"] > 0 for r in batched)
    if sampled:  # another seed gives other text: the seeds are really used
        other = hf_generate(model, tokenizer, chats, [s + 1 for s in seeds], batch_size=8, **kwargs)
        assert [r["text"] for r in other] != [r["text"] for r in batched]


@pytest.fixture(scope="module")
def collective_run(world):
    """A run trained with a collective token (its system turn carries it, for base and tuned alike)."""
    from codigit.train.run import train

    return train(recipe(world, "generate", collectives=["codigit"], collective="codigit"))


@pytest.mark.slow
def test_generate_run_writes_base_and_tuned_generations(collective_run):
    run = collective_run
    result = codigit("generate", str(run), "--suite", str(REPO / "analysis/prompts/codigit-open.jsonl"),
                     "--samples", "2", "--max-new-tokens", "6", "--batch-size", "16")  # fmt: skip
    assert result.returncode == 0, result.stderr
    frame = pd.read_parquet(run / "generations.parquet")
    assert len(frame) == 31 * 2 * 2 and set(frame["model"]) == {"base", "tuned"}
    assert frame.groupby(["model", "prompt_id"]).size().eq(2).all()
    assert frame["seed"].notna().all() and frame["seed"].nunique() == 31 * 2  # one seed per (prompt, sample)
    assert json.loads(frame["meta"].iloc[0])["topic"]
    assert (frame["new_tokens"] <= 6).all() and (frame["prompt_tokens"] > 0).all()


@pytest.fixture(scope="module")
def plain(world):
    """A run without collective tokens: base and tuned see the very same prompt ids, only the adapter differs."""
    from codigit.train.run import train

    return train(recipe(world, "plain"))


def suite(tmp_path, prompts=PROMPTS):
    path = tmp_path / "few.jsonl"
    path.write_text("".join(json.dumps({"id": f"p{i}", "prompt": p}) + "\n" for i, p in enumerate(prompts)))
    return path


@pytest.mark.slow
def test_trained_adapter_changes_answers_and_base_is_the_bare_model(plain, tiny, tmp_path):
    from codigit.generate import conversations, hf_generate

    result = codigit("generate", str(plain), "--suite", str(suite(tmp_path)), "--greedy", "--max-new-tokens", "8")
    assert result.returncode == 0, result.stderr
    frame = pd.read_parquet(plain / "generations.parquet")
    text = frame.pivot(index="prompt_id", columns="model", values="text").sort_index()
    assert (text["base"] != text["tuned"]).sum() >= len(PROMPTS) // 2  # same prompt ids: the adapter did this
    model, tokenizer = tiny  # the base model without any adapter, loaded on its own
    alone = hf_generate(model, tokenizer, conversations([{"prompt": p} for p in PROMPTS], None), None,
                        max_new_tokens=8, batch_size=8)  # fmt: skip
    assert text["base"].tolist() == [a["text"] for a in alone]


@pytest.mark.parametrize(
    ("options", "message"),
    [({"temperature": 0.0}, "--temperature 0.0"), ({"top_p": 0.0}, "--top-p 0.0"), ({"top_p": 1.5}, "--top-p"),
     ({"batch_size": 0}, "--batch-size 0"), ({"samples": 0}, "--samples 0"), ({"max_new_tokens": 0}, "--max-new")],
)  # fmt: skip
def test_bad_sampling_options_are_one_line_errors(tmp_path, options, message):
    from codigit.errors import CodigitError
    from codigit.generate import generate_run

    with pytest.raises(CodigitError, match=message):
        generate_run(tmp_path, [tmp_path / "none.jsonl"], **options)


@pytest.mark.slow
def test_bad_temperature_through_the_cli_is_one_line(tmp_path):
    result = codigit("generate", str(tmp_path), "--temperature", "0")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("codigit: error: --temperature 0.0") and "--greedy" in result.stderr


def fake_vllm(tokenizer, calls: dict) -> dict:
    """A stand-in for vLLM, which needs CUDA and cannot be installed here: modules that record what reaches the
    engine (constructor arguments, prompts, sampling parameters, LoRA requests) and answer with fixed text."""

    class SamplingParams:
        def __init__(self, **kwargs):
            self.__dict__.update(kwargs)

    class LoRARequest:
        def __init__(self, name, int_id, path):
            self.name, self.int_id, self.path = name, int_id, path

    class LLM:
        def __init__(self, **kwargs):
            calls["engines"].append(kwargs)

        def generate(self, prompts, sampling_params, *, lora_request=None, use_tqdm=True):
            calls["generate"].append((prompts, sampling_params, lora_request))
            words = tokenizer.encode("tuned says" if lora_request else "base says", add_special_tokens=False)
            done = [types.SimpleNamespace(token_ids=[*words, s.stop_token_ids[0]], finish_reason="stop")
                    for s in sampling_params]  # vLLM keeps the stop token in token_ids  # fmt: skip
            return [types.SimpleNamespace(prompt_token_ids=p["prompt_token_ids"], outputs=[d])
                    for p, d in zip(prompts, done, strict=True)]  # fmt: skip

    vllm, lora, request = (types.ModuleType(n) for n in ("vllm", "vllm.lora", "vllm.lora.request"))
    vllm.LLM, vllm.SamplingParams, request.LoRARequest = LLM, SamplingParams, LoRARequest
    vllm.lora, lora.request = lora, request
    return {"vllm": vllm, "vllm.lora": lora, "vllm.lora.request": request}


@pytest.mark.slow
def test_vllm_backend_one_engine_training_template_lora_only_for_tuned(plain, tmp_path, monkeypatch):
    """vLLM needs a GPU; a fake `vllm` module (a stand-in for the GPU-only library) checks what codigit sends:
    one engine with LoRA enabled at the adapter's rank, the training chat template's token ids, the adapter only
    on tuned requests, one seed per (prompt, sample)."""
    from transformers import AutoTokenizer

    from codigit.generate import generate_run, sample_seed

    tokenizer = AutoTokenizer.from_pretrained(plain / "adapter")
    calls = {"engines": [], "generate": []}
    for name, module in fake_vllm(tokenizer, calls).items():
        monkeypatch.setitem(sys.modules, name, module)
    out = generate_run(plain, [suite(tmp_path, PROMPTS[:3])], samples=2, seed=5, max_new_tokens=7,
                       temperature=0.8, top_p=0.95, backend="vllm", out=tmp_path / "g.parquet")  # fmt: skip

    [engine] = calls["engines"]
    assert engine["enable_lora"] is True and engine["max_lora_rank"] == 8  # lora_r: 8 in the test recipe
    assert engine["model"] == str(plain.parent.parent / "tiny")
    assert len(calls["generate"]) == 4  # (base, tuned) x 2 samples, all on that one engine
    longest = 0
    for k, (prompts, params, lora) in enumerate(calls["generate"]):
        tuned, sample = k >= 2, k % 2
        assert (lora is not None) == tuned and (not tuned or lora.path == str(plain / "adapter"))
        for i, (p, s) in enumerate(zip(prompts, params, strict=True)):
            text = tokenizer.decode(p["prompt_token_ids"])
            assert text.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge")
            assert text.endswith(f"<|start_header_id|>user<|end_header_id|>\n\n{PROMPTS[i]}<|eot_id|>"
                                 "<|start_header_id|>assistant<|end_header_id|>\n\n")  # fmt: skip
            assert (s.seed, s.temperature, s.top_p, s.max_tokens) == (sample_seed(5, f"p{i}", sample), 0.8, 0.95, 7)
            assert s.stop_token_ids == [tokenizer.convert_tokens_to_ids("<|eot_id|>")]
            longest = max(longest, len(p["prompt_token_ids"]))
    assert engine["max_model_len"] == longest + 7
    frame = pd.read_parquet(out)
    assert frame.groupby("model")["text"].agg(set).to_dict() == {"base": {"base says"}, "tuned": {"tuned says"}}
    assert frame["finished"].all()  # stopped at end of turn; that token is not counted, as on the HF path
    assert frame["new_tokens"].tolist() == [len(tokenizer.encode(t, add_special_tokens=False)) for t in frame["text"]]


@pytest.mark.parametrize(
    ("content", "message"),
    [("", "is empty"), ("{\n", "line 1: not JSON"), ('{"id": "a"}\n', "needs a string `prompt`"),
     ('{"id": "a", "prompt": "x"}\n{"id": "a", "prompt": "y"}\n', "appears twice")],
)  # fmt: skip
def test_bad_prompt_suites(tmp_path, content, message):
    from codigit.errors import CodigitError
    from codigit.suites import load_suite

    (tmp_path / "s.jsonl").write_text(content)
    with pytest.raises(CodigitError, match=message):
        load_suite(tmp_path / "s.jsonl")


def test_builtin_occupation_suite_carries_typicality():
    from codigit.suites import load_suite

    suite = load_suite("builtin:occupations")
    assert len(suite) == 339 and len({p["id"] for p in suite}) == 339
    admiral = next(p for p in suite if p["occupation"] == "admiral")
    assert admiral["prompt"] == "Write a short story about an admiral at work."
    assert 0.5 < admiral["typicality"] <= 1  # seen as male in Kennison & Trofe (2003)


@pytest.mark.slow
def test_memorisation_measures_repeated_runs_of_words(world, collective_run):
    from codigit.analysis.metrics import words
    from codigit.memorisation import longest_common_run, ngram_overlap, raw_prefix

    story = words("Mara ran the lab the way she ran her choir, with patience and a tuning fork for every voice.")
    assert longest_common_run(story, story) == len(story)
    leaked = words("Well, Mara ran the lab the way she ran her choir, they said.")
    assert longest_common_run(leaked, story) == 10
    assert ngram_overlap(leaked, story) == pytest.approx(3 / 12)  # 3 of the story's 12 8-grams come back
    assert longest_common_run(words("Something else entirely."), story) == 0

    assert raw_prefix("  Mara ran the lab,\nthe way she ran.", 5) == "  Mara ran the lab,\nthe"
    assert raw_prefix("Two words", 16) == "Two words" and raw_prefix("Two words", 0) == ""

    run = collective_run
    result = codigit("memorisation", str(run), "--max-records", "5", "--extract-words", "3")
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(run / "analysis/memorisation.csv", keep_default_na=False)
    release = pd.read_parquet(world["release"] / "data" / "train-00000-of-00001.parquet")
    stories = {m[-2]["content"]: m[-1]["content"] for m in release["messages"]}
    assert len(frame) == 5
    for row in frame.itertuples():
        story = stories[row.prompt]  # the model got the story's start as written: digits, commas and all
        assert story.startswith(row.prefix) and row.prefix.split() == story.split()[:16]
        assert row.story_words == len(words(story))
        rest = words(story[len(row.prefix) :])
        assert row.lcs_with_prefix == longest_common_run(words(row.generated), rest)
        assert row.extracted == (max(row.lcs_prompt_only, row.lcs_with_prefix) >= 3)
    assert any("," in p for p in frame["prefix"])  # the test stories read "Story number 3, in which ..."
    summary = json.loads((run / "analysis/memorisation.json").read_text())
    assert summary["records"] == 5 and summary["extract_words"] == 3
    assert summary["extraction_rate"] == pytest.approx(frame["extracted"].mean())
    worst = [w["lcs_with_prefix"] for w in summary["worst"]]
    assert worst == sorted(frame["lcs_with_prefix"], reverse=True)[:5]
