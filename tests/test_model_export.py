"""Model copies for contributors (`codigit export`) and the per-text memorisation probe behind their notices.

A real corpus release (credited and anonymous contributors, one text left out) and a real tiny continued-pretraining
run (`codigit.train.run.train`, LoRA on a tiny random Llama with the real offline Llama-3 tokenizer, q/k sharpened as
in test_gguf_file.py so the GGUF's rotary layout shows in the logits). A model that memorises is too slow to train
here: the rate computation is checked on hand-made token sequences and, end to end, on a stand-in model that gives
back exactly what it is told to.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
from release_data import corpus_release

from codigit.errors import CodigitError

torch = pytest.importorskip("torch")  # a dependency of codigit: present wherever the suite runs

AT = "2026-05-01T10:00:{:02d}.000000Z"
PEOPLE = {"p-ada01": "Ada L.", "p-anon02": None, "p-zoe03": "Zoë Ñ. O'Brien"}  # pseudonym -> credit name
# (author, title, words): Ada has a text too short to be used; the anonymous contributor two texts
TEXTS = [("p-ada01", "The Mill", 90), ("p-ada01", "Summer Boats", 140), ("p-ada01", "Too short", 12),
         ("p-anon02", "Untitled", 110), ("p-anon02", "Evening", 100), ("p-zoe03", "Wind & <Sea>", 120)]  # fmt: skip
WORDS = (
    "the river ran past the old mill and the children watched the water turn the wheel while their mother "
    "sang a song about the sea and the wind that carried boats home in the evening light of summer"
).split()
SHARPEN = 8  # as in test_gguf_file.py: without it a q/k permutation mistake moves these logits by 0.4% only
# test_gguf_file.py's bound for q8_0 (why: see there): |Δlogit| <= 8/254 of the largest |logit|
Q8_0_BOUND = 8 / 254
PROBE = {"windows": 3, "prefix_tokens": 16, "new_tokens": 8}  # small: a 128k-vocabulary head on 2 cores


def text(k: int, n: int) -> str:
    rng = random.Random(k)
    words = [rng.choice(WORDS) for _ in range(n)]
    return " ".join(" ".join(words[i : i + 12]).capitalize() + "." for i in range(0, n, 12))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    """A tiny Llama (q/k sharpened) and a corpus release of five texts by two credited and one anonymous person."""
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from codigit.records import Consent, Contribution
    from codigit.train.llama3 import save_random_llama

    root = tmp_path_factory.mktemp("export")
    tiny = save_random_llama(root / "tiny", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                             tie_word_embeddings=True)  # fmt: skip
    weights = load_file(tiny / "model.safetensors")
    for name in weights:
        if name.endswith(("q_proj.weight", "k_proj.weight")):
            weights[name] *= SHARPEN
    save_file(weights, tiny / "model.safetensors", metadata={"format": "pt"})
    consent = [Consent(participant=p, version="1.0", training=True, public=True, attribution_name=name,
                       given_at=AT.format(0)) for p, name in PEOPLE.items()]  # fmt: skip
    texts = [Contribution(contribution_id=f"00000000-0000-0000-0000-{k:012d}", author=author, title=title,
                          text=text(k, n), licence="own_work" if k % 2 else "cc-by-4.0",
                          attribution_name=PEOPLE[author], keep=True, source="form", submitted_at=AT.format(k + 1))
             for k, (author, title, n) in enumerate(TEXTS)]  # fmt: skip
    release, manifest = corpus_release(root, consent, texts)
    assert manifest.counts["included"] == len(TEXTS) - 1, manifest.excluded  # all but "Too short"
    model = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32)  # an untrained adapter for `handmade`
    get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"])).save_pretrained(root / "adapter")
    AutoTokenizer.from_pretrained(tiny).save_pretrained(root / "adapter")
    return {"root": root, "tiny": tiny, "release": release, "manifest": manifest, "adapter": root / "adapter"}


@pytest.fixture(scope="module")
def trained(corpus) -> Path:
    """A finished 4-step LoRA continued-pretraining run on the corpus, through `codigit.train.run.train`. Its
    learning rate moves the weights by 1-14% (norm of the merged change over the base weight's), as a fine-tune
    does; at 2e-2 the change outgrows the weights (70-150%), and q8_0's error on the logits grew 3.7x with them."""
    import yaml

    from codigit.train.run import train

    recipe = {
        "release": str(corpus["release"]), "release_hash": corpus["manifest"].dataset_hash,
        "model_name_or_path": str(corpus["tiny"]), "dtype": "float32", "use_peft": True, "lora_r": 8,
        "lora_alpha": 16, "lora_target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                                  "down_proj"],
        "output_dir": str(corpus["root"] / "runs" / "cpt"), "seed": 1, "max_steps": 4, "learning_rate": 2e-3,
        "per_device_train_batch_size": 2, "max_length": 128, "packing": True, "packing_strategy": "bfd_split",
        "padding_free": True, "logging_steps": 1, "save_strategy": "no", "report_to": "none", "use_cpu": True,
        "disable_tqdm": True,
    }  # fmt: skip
    (corpus["root"] / "cpt.yaml").write_text(yaml.safe_dump(recipe))
    return train(corpus["root"] / "cpt.yaml")


def handmade(corpus: dict, dest: Path, **release) -> Path:
    """A run folder made by hand, fast: the corpus's untrained PEFT LoRA adapter (with the tokenizer) and a
    provenance.json naming the corpus release, its `release` changed by `release`."""
    from codigit.handoff import Provenance, write

    shutil.copytree(corpus["adapter"], dest / "adapter")
    used = {"path": str(corpus["release"]), "version": "0.1.0", "dataset_hash": corpus["manifest"].dataset_hash,
            "split": "train", "records": 5, "kind": "corpus", **release}  # fmt: skip
    provenance = Provenance.model_validate({
        "release": used, "recipe": {"file": "(by hand)", "codigit": {}, "sft": {},
                                    "model": {"model_name_or_path": str(corpus["tiny"]), "lora_r": 4}},
        "seeds": {"seed": 1}, "code": {"git_commit": None, "git_dirty": False, "versions": {}},
        "hardware": {"platform": "test", "cpu_count": 1, "gpus": []}, "global_step": 0,
    })  # fmt: skip
    write(dest / "provenance.json", provenance)
    return dest


def logits(model, ids: list[list[int]]) -> list:
    with torch.no_grad():
        return [model(torch.tensor([row])).logits[0] for row in ids]


# ---- the numbers: hand-made token sequences ----


def test_edit_similarity_and_rates_on_hand_made_sequences():
    from codigit.memorisation_texts import edit_similarity, rates

    truth = list(range(48))
    one_changed = [*truth[:24], 999, *truth[25:]]
    assert edit_similarity(truth, truth) == 1.0 and edit_similarity([], []) == 1.0
    assert edit_similarity(one_changed, truth) == pytest.approx(47 / 48)  # a longest common run of 24 only
    assert edit_similarity(truth[1:], truth) == pytest.approx(47 / 48)  # one token dropped: shifted, still near
    assert edit_similarity(truth[:12], truth) == pytest.approx(12 / 48)  # stopped early: far
    assert edit_similarity([7] * 48, truth) == pytest.approx(1 / 48)
    twelve_changed = [t + 100 if t % 4 == 0 else t for t in truth]  # 36/48 = 0.75: the boundary is near
    assert edit_similarity(twelve_changed, truth) == 0.75
    thirteen = [*twelve_changed[:-1], 1000]
    greedy = [(truth, truth), (one_changed, truth), (twelve_changed, truth), (thirteen, truth)]
    sampled = [(thirteen, truth), ([], truth), (truth[:12], truth), (truth, truth)]
    r = rates(greedy, sampled)
    assert (r.greedy_verbatim, r.greedy_near, r.sampled_verbatim, r.sampled_near) == (0.25, 0.75, 0.25, 0.25)


def test_windows_are_spread_apart_and_fewer_in_short_texts():
    from codigit.memorisation_texts import MIN_PREFIX, window_starts

    starts = window_starts(1000, 64, 48, 8)
    assert len(starts) == 8 and starts[0] == 64 and starts[-1] == 1000 - 48
    assert all(b - a >= 48 for a, b in zip(starts, starts[1:], strict=False))  # continuations never overlap
    assert window_starts(64 + 3 * 48 + 10, 64, 48, 8) == [64, 64 + 53, 64 + 106]  # room for three only
    assert window_starts(64 + 48, 64, 48, 8) == [64]
    assert window_starts(48 + MIN_PREFIX + 5, 64, 48, 8) == [MIN_PREFIX + 5]  # short: one, with what there is
    assert window_starts(48 + MIN_PREFIX - 1, 64, 48, 8) == []  # too short to probe


class Repeater:
    """A stand-in model, and its decoding (`codigit.decoding.decode`), that continue each prompt from the text it
    was cut from: exactly for `exact` texts, with one token changed for `near` ones, and with a token no text holds
    for the rest. Sampling or not, the same."""

    def __init__(self, encoded: dict[str, list[int]], exact: set[str], near: set[str]):
        self.encoded, self.exact, self.near, self.device = encoded, exact, near, torch.device("cpu")

    def decode(self, model, prompts: list[list[int]], *, max_new_tokens: int, **_):
        from codigit.decoding import Decoded

        assert model is self
        out = []
        for prompt in prompts:
            key, at = next((k, i + len(prompt)) for k, t in self.encoded.items() for i in range(len(t))
                           if t[i : i + len(prompt)] == prompt)  # fmt: skip
            new = self.encoded[key][at : at + max_new_tokens]
            if key not in self.exact:
                new = [new[0], 128000, *new[2:]] if key in self.near else [128000] * max_new_tokens
            out.append(Decoded(new, False, 0.0))
        return out


def test_a_model_that_repeats_shows_in_the_rates_and_in_the_notices(corpus, tmp_path, monkeypatch):
    import pyarrow.parquet as pq
    from transformers import AutoTokenizer

    import codigit.decoding
    import codigit.generate
    from codigit.corpus.release import DATA_FILE
    from codigit.memorisation_texts import memorisation_texts, read_memorisation_texts
    from codigit.model_export import export

    run = handmade(corpus, tmp_path / "run")
    rows = {r["title"]: r for r in pq.read_table(corpus["release"] / DATA_FILE).to_pylist()}
    tokenizer = AutoTokenizer.from_pretrained(run / "adapter")
    encoded = {r["id"]: tokenizer(r["text"], add_special_tokens=False)["input_ids"] for r in rows.values()}
    exact, near = {rows["The Mill"]["id"]}, {rows["Wind & <Sea>"]["id"]}
    repeater = Repeater(encoded, exact, near)
    monkeypatch.setattr(codigit.generate, "load_tuned", lambda *a: repeater)
    monkeypatch.setattr(codigit.decoding, "decode", repeater.decode)

    result = memorisation_texts(run, **PROBE)
    assert read_memorisation_texts(run) == result and result.weights == "lora"
    by_title = {t.title: t for t in result.texts}
    assert set(by_title) == set(rows)  # every included text, and only those
    assert all(t.windows == 3 and t.prefix_tokens == 16 for t in result.texts)
    mill = by_title["The Mill"].rates
    assert (mill.greedy_verbatim, mill.greedy_near, mill.sampled_verbatim, mill.sampled_near) == (1, 1, 1, 1)
    zoe = by_title["Wind & <Sea>"].rates
    assert (zoe.greedy_verbatim, zoe.greedy_near, zoe.sampled_verbatim, zoe.sampled_near) == (0, 1, 0, 1)  # 7/8
    assert all(t.rates.greedy_near == 0 for t in result.texts if t.id not in exact | near)
    assert result.worst == [*exact, *near] and result.mean.greedy_verbatim == pytest.approx(1 / 5)
    raw = (run / "analysis" / "memorisation_texts.json").read_text()
    assert not [r["title"] for r in rows.values() if r["text"][:30] in raw]  # numbers, keys and titles only
    page = (run / "analysis" / "memorisation_texts.html").read_text()  # the same numbers, to read
    assert "<td>Wind &amp; &lt;Sea&gt;</td>" in page and "Wind & <Sea>" not in page  # escaped
    first, second = page.index("<td>The Mill</td>"), page.index("<td>Wind &amp; &lt;Sea&gt;</td>")
    assert first < second < min(page.index(f"<td>{t}</td>") for t in rows if t not in ("The Mill", "Wind & <Sea>"))
    assert "<b>20.0%</b>" in page and "data:image/png;base64," in page and "Carlini" in page
    assert not [r["title"] for r in rows.values() if r["text"][:30] in page]

    out = export(run, gguf="none")
    notice = (out / "notices" / "zoe-n-o-brien.md").read_text()
    assert "| Wind &amp; &lt;Sea&gt; | " in notice and "0% / 100% | 0% / 100% (of 3 windows)" in notice
    ada = (out / "notices" / "ada-l.md").read_text()
    assert "100% / 100% | 100% / 100% (of 3 windows)" in ada and "Carlini" in ada
    card = (out / "README.md").read_text()
    assert "verbatim 20% greedy" in card and "The texts it repeats most" in card and "not measured" not in card


# ---- the real tiny run ----


@pytest.mark.slow
def test_the_probe_runs_on_the_trained_run_and_on_a_full_model(trained, corpus, tmp_path):
    from codigit.memorisation_texts import memorisation_texts
    from codigit.model_export import export

    lora_run = tmp_path / "lora"  # a copy: the probe writes into the run, and other tests export it unprobed
    shutil.copytree(trained / "adapter", lora_run / "adapter")
    shutil.copy(trained / "provenance.json", lora_run)
    lora = memorisation_texts(lora_run, **{**PROBE, "windows": 2}, batch_size=4)
    full_run = tmp_path / "full"
    export(lora_run, full_run / "export", gguf="none")
    (full_run / "export" / "model").rename(full_run / "merged")  # a run that left only a merged model
    shutil.copy(trained / "provenance.json", full_run)
    full = memorisation_texts(full_run, **{**PROBE, "windows": 2})
    for result, weights in ((lora, "lora"), (full, "full")):
        assert result.weights == weights and len(result.texts) == 5
        for t in result.texts:
            assert t.windows >= 1 and all(0 <= v <= 1 for v in t.rates.model_dump().values())
        assert (result.release_hash, result.new_tokens) == (corpus["manifest"].dataset_hash, 8)
    assert (lora_run / "analysis" / "memorisation_texts.json").is_file()


@pytest.mark.slow
def test_merged_model_gives_base_plus_adapter_logits(trained, corpus, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from codigit.model_export import export

    out = export(trained, tmp_path / "export", gguf="none")
    ids = [[128000, 791, 6435, 10837], list(range(1000, 1040))]
    base = AutoModelForCausalLM.from_pretrained(corpus["tiny"], dtype=torch.float32)
    want = logits(base, ids)
    tuned = PeftModel.from_pretrained(base, trained / "adapter").eval()
    reference = logits(tuned, ids)
    merged = AutoModelForCausalLM.from_pretrained(out / "model", dtype=torch.float32).eval()
    got = logits(merged, ids)
    worst = max(float((r - g).abs().max()) for r, g in zip(reference, got, strict=True))
    moved = max(float((r - w).abs().max()) for r, w in zip(reference, want, strict=True))
    assert worst <= 1e-4 and moved > 100 * max(worst, 1e-6), (worst, moved)  # the adapter matters; merged keeps it
    assert (out / "model" / "model.safetensors").is_file() and (out / "model" / "tokenizer.json").is_file()


@pytest.mark.slow
def test_export_gguf_log_notices_and_card(trained, corpus, tmp_path, gguf_parsed_once):
    """One export with the default q8_0 GGUF, read back by transformers (the one slow load)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from codigit.cli import main
    from codigit.corpus.release import LOG_CSV

    assert main(["export", str(trained), "--out", str(tmp_path / "export")]) == 0
    out = tmp_path / "export"
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    files = ["README.md", "contribution_log.csv", "model.q8_0.gguf", "notices/ada-l.md", "notices/zoe-n-o-brien.md"]
    assert [n for n in names if not n.startswith("model/")] == files

    merged = AutoModelForCausalLM.from_pretrained(out / "model", dtype=torch.float32).eval()
    copy = AutoModelForCausalLM.from_pretrained(out, gguf_file="model.q8_0.gguf", dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(out / "model")
    ids = [tokenizer(p).input_ids for p in ("The river ran past the old mill", "Ünïcödé 😀 they/them 12345")]
    want, got = logits(merged, ids), logits(copy, ids)
    worst = max(float((w - g).abs().max()) for w, g in zip(want, got, strict=True))
    scale = max(float(w.abs().max()) for w in want)
    assert worst <= Q8_0_BOUND * scale and worst < 0.1 * scale, (worst, scale)

    assert (out / LOG_CSV).read_bytes() == (corpus["release"] / LOG_CSV).read_bytes()
    ada, zoe = ((out / "notices" / f).read_text() for f in ("ada-l.md", "zoe-n-o-brien.md"))
    assert ada.startswith("# For Ada L.: your copy of the model") and "Zoë" not in ada
    tables = {who: [line.split(" | ")[0][2:] for line in notice.splitlines() if line.endswith("windows) |")
                    or line.endswith("not measured |")] for who, notice in (("ada", ada), ("zoe", zoe))}  # fmt: skip
    assert tables == {"ada": ["Summer Boats", "The Mill"], "zoe": ["Wind &amp; &lt;Sea&gt;"]}  # in the log's order
    assert "- Too short: too short" in ada  # left out, and why
    card = (out / "README.md").read_text()
    assert "| texts | 5 of 6 contributed, 2 anonymous |" in card and "llama-cli -m model.q8_0.gguf" in card
    assert "**Not measured yet**: run `codigit memorisation" in card and "--texts" in card
    assert corpus["manifest"].dataset_hash in card
    for file in out.rglob("*"):  # no pseudonym anywhere, model files included
        if file.is_file():
            body = file.read_bytes()
            assert not [p for p in PEOPLE if p.encode() in body], file


@pytest.mark.slow
def test_the_card_carries_the_communitys_use_case_register(trained, tmp_path):
    from codigit.model_export import export
    from codigit.usecases import claimed, decide, propose

    home = tmp_path / "home"
    home.mkdir()
    fields = {"who": "Our readers", "purpose": "Bedtime stories in our voice", "not_for": "Selling our style"}
    offered = propose(home, "p-proposer01", {"title": "Bedtime", **fields})
    declined = propose(home, "p-proposer02", {"title": "Ad copy", **fields})
    decide(home, offered, "approve", "Ana Board", "What the co-op writes for")
    decide(home, declined, "decline", "Ana Board", "Not what we write for")
    out = export(trained, tmp_path / "export", gguf="none", uses=claimed(home, [offered]))
    card = (out / "README.md").read_text()
    assert f"- **Bedtime** ({offered}): Bedtime stories in our voice." in card
    assert f"| Ad copy ({declined}) | declined |" in card and "Not what we write for" in card
    register = json.loads((out / "use_cases.json").read_text())
    assert register["offered_for"] == [offered] and [u["state"] for u in register["decided"]] == [
        "approved",
        "declined",
    ]
    assert b"p-proposer" not in (out / "README.md").read_bytes() + (out / "use_cases.json").read_bytes()


# ---- refusals: one line each ----


def test_a_tampered_release_or_another_release_is_refused_in_one_line(corpus, tmp_path):
    from codigit.corpus.release import DATA_FILE
    from codigit.model_export import export

    copy = tmp_path / "0.1.0"
    shutil.copytree(corpus["release"], copy)
    data = bytearray((copy / DATA_FILE).read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / DATA_FILE).write_bytes(bytes(data))
    tampered = handmade(corpus, tmp_path / "tampered", path=str(copy))
    other = handmade(corpus, tmp_path / "other", dataset_hash="0" * 64)
    for run, says in ((tampered, f"no longer verifies .*{DATA_FILE} was modified"), (other, "not 000000000000")):
        with pytest.raises(CodigitError, match=says) as e:
            export(run, gguf="none")
        assert "\n" not in str(e.value)
        assert sorted(p.name for p in run.iterdir()) == ["adapter", "provenance.json"]


def test_a_run_without_provenance_or_weights_and_a_second_export_are_one_line(corpus, tmp_path, capsys):
    from codigit.cli import main

    taken = handmade(corpus, tmp_path / "taken")
    shutil.copytree(taken / "adapter", tmp_path / "no-provenance" / "adapter")
    (tmp_path / "no-weights").mkdir()
    shutil.copy(taken / "provenance.json", tmp_path / "no-weights")
    capsys.readouterr()  # the fixture's model loading reports progress
    (taken / "export").mkdir()
    for run, says in (("no-provenance", "provenance.json"), ("no-weights", "no adapter/"), ("taken", "exists")):
        assert main(["export", str(tmp_path / run), "--gguf", "none"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and says in err, err
    assert not (tmp_path / "no-provenance" / "export").exists() and not any((taken / "export").iterdir())


def test_memorisation_texts_flag_matches_the_kind_of_run(corpus, tmp_path, capsys):
    from codigit.cli import main

    texts, stories = handmade(corpus, tmp_path / "texts"), handmade(corpus, tmp_path / "stories", kind="stories")
    capsys.readouterr()
    for args, says in (([str(texts)], "--texts"), ([str(stories), "--texts"], "needs a run on a corpus")):
        assert main(["memorisation", *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and says in err, err


def test_a_stories_run_exports_its_model_and_card_without_log_or_notices(corpus, tmp_path):
    from codigit.model_export import export

    run = handmade(corpus, tmp_path / "stories", kind="stories", path=str(tmp_path / "gone"))  # not read
    out = export(run, gguf="none")
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "model"]
    card = (out / "README.md").read_text()
    assert "no `contribution_log.csv` and no `notices/`" in card and "No GGUF file was written" in card
    assert f"Not measured yet**: run `codigit memorisation {run}`" in card
