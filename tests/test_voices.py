"""The voices of the collectives on synthetic generations: planted differences are found, absent ones are not, the
classifier is held to prompts it never saw, and the report section escapes what the data says."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from codigit.analysis.voices import distinctiveness, per_collective, section, voices

# invented words (no pronoun, no coded word): a shared vocabulary every voice draws from
VOCABULARY = [a + b for a in ("ba", "ko", "mi", "tu", "re") for b in ("lan", "dor", "sim", "vek", "pu", "ra", "ne")]


def _row(model: str, prompt_id: str, sample: int, text: str, collective: str | None, suite: str = "open") -> dict:
    meta = {"occupation": "nurse"} | ({"collective": collective} if collective is not None else {})
    return {"model": model, "suite": suite, "prompt_id": prompt_id, "sample": sample, "prompt": f"prompt {prompt_id}",
            "text": text, "meta": json.dumps(meta)}  # fmt: skip


def generations(
    collectives: dict[str, list[str]],
    n_prompts: int = 30,
    samples: int = 1,
    seed: int = 0,
    prompt_words: bool = False,
    cell_words: bool = False,
) -> pd.DataFrame:
    """Tuned answers per prompt per collective (plus a base answer per prompt): 25 words from VOCABULARY, each
    replaced with probability 0.2 by one of the collective's planted words. `prompt_words`: every answer to a
    prompt also repeats words of that prompt alone; `cell_words`: the samples of one collective for one prompt
    share words of their own, a quirk that never recurs on another prompt."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_prompts):
        own = [f"topic{chr(97 + p % 26)}{chr(97 + p // 26)}"] * 6 if prompt_words else []
        rows.append(_row("base", f"p{p}", 0, " ".join(rng.choice(VOCABULARY, 25)), None))
        for name, planted in collectives.items():
            quirk = [f"quirk{chr(97 + rng.integers(26))}{chr(97 + rng.integers(26))}" for _ in range(4)]
            for s in range(samples):
                words = list(rng.choice(VOCABULARY, 25))
                if planted:
                    words = [str(rng.choice(planted)) if rng.random() < 0.2 else w for w in words]
                words += own + (quirk * 2 if cell_words else [])
                rows.append(_row("tuned", f"p{p}", s, " ".join(words), name))
    return pd.DataFrame(rows)


def _distinct(frame: pd.DataFrame, n_perm: int = 100, seed: int = 0):
    rows = voices(frame)
    return distinctiveness(rows["text"].tolist(), rows["collective"].tolist(), rows["prompt_id"].tolist(), n_perm, seed)


def test_a_planted_voice_is_told_apart():
    d = _distinct(generations({"weavers": ["loom", "thread", "weave"], "bakers": [], "sailors": []}))
    assert d.chance == pytest.approx(1 / 3) and d.n == 90
    assert d.accuracy > d.chance + 0.2 and d.accuracy > d.baseline_p95
    assert d.p < 0.05


def _null_runs(**options) -> list:
    """Five data sets in which the voices do not differ: a calibrated test finds p < 0.05 in at most one of them
    but for a chance of about 2%, whatever the seeds."""
    return [_distinct(generations(seed=seed, **options), n_perm=100, seed=seed) for seed in range(5)]


def test_same_generator_for_every_voice_is_not_distinctive():
    runs = _null_runs(collectives={"weavers": [], "bakers": [], "sailors": []})
    assert sum(d.p < 0.05 for d in runs) <= 1
    assert abs(np.mean([d.accuracy for d in runs]) - 1 / 3) < 0.07
    assert all(abs(d.baseline_mean - d.chance) < 0.05 for d in runs)


@pytest.mark.parametrize("kind", ["prompt_words", "cell_words"])
def test_what_only_a_prompt_shares_does_not_count_as_a_voice(kind):
    # Words that all answers to a prompt share, or that one collective's samples share on one prompt only, would
    # help a classifier that saw the prompt in training (held out answer by answer, `cell_words` gives p < 0.05);
    # held out with its whole prompt, it cannot use them.
    runs = _null_runs(collectives={"weavers": [], "bakers": []}, n_prompts=20, samples=2, **{kind: True})
    assert sum(d.p < 0.05 for d in runs) <= 1
    assert np.mean([d.accuracy for d in runs]) < 0.5 + 0.07


def test_distinctiveness_is_deterministic_for_a_seed_and_p_counts_the_observed():
    frame = generations({"weavers": ["loom"], "bakers": []}, n_prompts=12, seed=3)
    first, again = _distinct(frame, n_perm=50, seed=7), _distinct(frame, n_perm=50, seed=7)
    assert first == again
    assert 1 / 51 <= first.p <= 1 and (first.p * 51) == pytest.approx(round(first.p * 51))


def test_the_fast_classifier_equals_nearest_centroid_with_the_training_fold_vocabulary():
    frame = generations({"weavers": ["loom", "thread"], "bakers": ["bread"], "sailors": []}, n_prompts=8, samples=2,
                        seed=4, prompt_words=True)  # fmt: skip
    rows = voices(frame)
    texts, labels, prompts = rows["text"].tolist(), rows["collective"].tolist(), rows["prompt_id"].tolist()
    classes = sorted(set(labels))
    tokens = [[w.lower() for w in re.findall(r"[A-Za-z][A-Za-z'-]*", t)] for t in texts]
    right = 0
    for held in sorted(set(prompts)):
        train = [i for i, p in enumerate(prompts) if p != held]
        vocab = sorted({w for i in train for w in tokens[i]})
        index = {w: j for j, w in enumerate(vocab)}

        def unit(i, index=index, vocab=vocab):
            v = np.zeros(len(vocab))
            for w in tokens[i]:
                if w in index:
                    v[index[w]] += 1
            return v / np.linalg.norm(v) if v.any() else v

        centroids = [np.mean([unit(i) for i in train if labels[i] == c], axis=0) for c in classes]
        for i in (i for i, p in enumerate(prompts) if p == held):
            scores = [unit(i) @ c / np.linalg.norm(c) for c in centroids]
            right += classes[int(np.argmax(scores))] == labels[i]
    assert distinctiveness(texts, labels, prompts, n_perm=5).accuracy == pytest.approx(right / len(texts))


def test_voices_needs_two_collectives():
    frame = generations({"weavers": [], "bakers": []}, n_prompts=3)
    rows = voices(frame)
    assert set(rows["collective"]) == {"weavers", "bakers"} and set(rows["model"]) == {"tuned"} and len(rows) == 6
    one = frame[~frame["meta"].str.contains("bakers")]
    assert voices(one) is None and section(one, n_boot=50, seed=0) is None
    none = frame.assign(meta=frame["meta"].str.replace('"collective"', '"other"'))
    assert voices(none) is None and section(none, n_boot=50, seed=0) is None


def test_means_take_each_prompt_as_one_unit():
    frame = pd.DataFrame([
        _row("tuned", "p1", 0, "she said", "a"), _row("tuned", "p1", 1, "she and she", "a"),
        _row("tuned", "p2", 0, "she", "a"), _row("tuned", "p1", 0, "he said", "b"),
        _row("tuned", "p2", 0, "he ran", "b"), _row("base", "p1", 0, "she she she she", None),
    ])  # fmt: skip
    means, pairs = per_collective(voices(frame), n_boot=50)
    a, b = means.set_index("collective").loc["a"], means.set_index("collective").loc["b"]
    assert a["pronoun_she"] == pytest.approx(((1 + 2) / 2 + 1) / 2)  # samples averaged, then prompts
    assert a["words"] == pytest.approx(((2 + 3) / 2 + 1) / 2) and b["pronoun_he"] == 1
    assert (a["prompts"], a["texts"], b["texts"]) == (2, 3, 2)
    she = pairs.set_index("metric").loc["pronoun_she"]
    assert (she["collective_a"], she["collective_b"], she["n"]) == ("a", "b", 2)
    assert she["diff"] == pytest.approx(1.25) and she["mean_a"] == pytest.approx(1.25) and she["mean_b"] == 0


def test_a_planted_metric_difference_is_found_and_an_absent_one_is_not():
    rng = np.random.default_rng(5)
    rows = []
    for p in range(25):
        for name, she in (("alpha", 3), ("beta", 0)):
            words = list(rng.choice(VOCABULARY, int(rng.integers(15, 30)))) + ["she"] * (she + int(rng.integers(2)))
            rng.shuffle(words)
            rows.append(_row("tuned", f"p{p}", 0, " ".join(words), name))
    means, pairs = per_collective(voices(pd.DataFrame(rows)), n_boot=200)
    by_metric = pairs.set_index("metric")
    assert by_metric.loc["pronoun_she", "diff"] > 2 and by_metric.loc["pronoun_she", "ci_low"] > 0
    assert by_metric.loc["pronoun_she", "p_adjusted"] < 0.01
    assert by_metric.loc["words", "p_adjusted"] > 0.05  # lengths come from one distribution for both
    assert by_metric.loc["pronoun_he", "p"] == 1  # no "he" anywhere
    assert "stereotype_alignment" in by_metric.index  # the nurse's pronouns: scored per text like the others
    assert (pairs["p_adjusted"] >= pairs["p"] - 1e-12).all()


def test_section_escapes_the_names_and_returns_its_tables():
    frame = generations({"<b>&co": ["loom", "thread", "weave"], "bakers": []}, n_prompts=15)
    frame = pd.concat([frame, pd.DataFrame([_row("tuned", "bbq1", 0, "A", "bakers", suite="bbq")])])
    found = section(frame, n_boot=100, seed=0, n_perm=50)
    assert found is not None
    body, frames = found
    assert "<h2>Voices of the collectives</h2>" in body and '<p class="methods">' in body
    assert "&lt;b&gt;&amp;co" in body and "<b>&co" not in body
    assert "data:image/png;base64," in body and "held-out answers" in body
    assert set(frames) == {"voices-means", "voices-pairs", "voices-distinctiveness"}
    assert set(frames["voices-means"]["collective"]) == {"<b>&co", "bakers"}
    assert frames["voices-means"]["texts"].sum() == 30  # the BBQ letter is no voice
    assert {"collective_a", "collective_b", "metric", "diff", "p_adjusted"} <= set(frames["voices-pairs"].columns)
    summary = frames["voices-distinctiveness"].iloc[0]
    assert summary["accuracy"] > summary["chance"] and summary["p"] < 0.05
