"""`codigit generate`: batched generation equals one-at-a-time (greedy and seeded sampling), the parquet."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import REPO, codigit
from test_train import recipe, world  # noqa: F401  (the module fixture: tiny Llama + release)

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny(world):  # noqa: F811
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from codigit.train.formats import prepare_tokenizer

    tokenizer = AutoTokenizer.from_pretrained(world["model"])
    prepare_tokenizer(tokenizer)
    model = AutoModelForCausalLM.from_pretrained(world["model"], dtype=torch.float32).eval()
    return model, tokenizer


PROMPTS = ["Who can be a nurse?", "Write a story about a bridge.", "Hi", "Describe a typical surgeon in detail.",
           "Are there only two genders?", "x", "Tell me a bedtime story about a family of five.", "Why?"]  # fmt: skip


@pytest.mark.parametrize("sampled", [False, True])
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


def test_generate_run_writes_base_and_tuned_generations(world, tmp_path):  # noqa: F811
    from codigit.train.run import train

    run = train(recipe(world, "generate", collectives=["codigit"], collective="codigit"))
    result = codigit("generate", str(run), "--suite", str(REPO / "analysis/prompts/codigit-open.jsonl"),
                     "--samples", "2", "--max-new-tokens", "6", "--batch-size", "16")  # fmt: skip
    assert result.returncode == 0, result.stderr
    frame = pd.read_parquet(run / "generations.parquet")
    assert len(frame) == 31 * 2 * 2 and set(frame["model"]) == {"base", "tuned"}
    assert frame.groupby(["model", "prompt_id"]).size().eq(2).all()
    assert frame["seed"].notna().all() and frame["seed"].nunique() == 31 * 2  # one seed per (prompt, sample)
    assert json.loads(frame["meta"].iloc[0])["topic"]
    assert (frame["new_tokens"] <= 6).all() and (frame["prompt_tokens"] > 0).all()


@pytest.mark.parametrize(
    ("content", "message"),
    [("", "is empty"), ("{\n", "line 1: not JSON"), ('{"id": "a"}\n', "needs a string `prompt`"),
     ('{"id": "a", "prompt": "x"}\n{"id": "a", "prompt": "y"}\n', "appears twice")],
)  # fmt: skip
def test_bad_prompt_suites(tmp_path, content, message):
    from codigit.errors import CodigitError
    from codigit.generate import load_suite

    (tmp_path / "s.jsonl").write_text(content)
    with pytest.raises(CodigitError, match=message):
        load_suite(tmp_path / "s.jsonl")


def test_builtin_occupation_suite_carries_typicality():
    from codigit.generate import load_suite

    suite = load_suite("builtin:occupations")
    assert len(suite) == 339 and len({p["id"] for p in suite}) == 339
    admiral = next(p for p in suite if p["occupation"] == "admiral")
    assert admiral["prompt"] == "Write a short story about an admiral at work."
    assert 0.5 < admiral["typicality"] <= 1  # seen as male in Kennison & Trofe (2003)


def test_memorisation_measures_repeated_runs_of_words(world):  # noqa: F811
    import pandas as pd

    from codigit.analysis.memorisation import longest_common_run, ngram_overlap
    from codigit.analysis.metrics import words

    story = words("Mara ran the lab the way she ran her choir, with patience and a tuning fork for every voice.")
    assert longest_common_run(story, story) == len(story)
    leaked = words("Well, Mara ran the lab the way she ran her choir, they said.")
    assert longest_common_run(leaked, story) == 10
    assert ngram_overlap(leaked, story) == pytest.approx(3 / 12)  # 3 of the story's 12 8-grams come back
    assert longest_common_run(words("Something else entirely."), story) == 0

    run = world["root"] / "runs" / "generate"  # trained by the test above (module order)
    result = codigit("memorisation", str(run), "--max-records", "5", "--extract-words", "3")
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(run / "analysis/memorisation.csv")
    assert len(frame) == 5 and (frame["lcs_with_prefix"] >= 0).all()
    summary = json.loads((run / "analysis/memorisation.json").read_text())
    assert summary["records"] == 5 and summary["extract_words"] == 3
    assert summary["extraction_rate"] == pytest.approx(frame["extracted"].mean())
