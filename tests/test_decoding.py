"""`codigit.decoding.decode`: rows leave the batch as they end, and every row still gets Hugging Face generate's
greedy tokens, or with seeds the tokens it gets one at a time."""

from __future__ import annotations

import random

import pytest

torch = pytest.importorskip("torch")

NEW = 10


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from transformers import AutoModelForCausalLM

    from codigit.train.llama3 import save_random_llama

    folder = save_random_llama(tmp_path_factory.mktemp("decoding") / "tiny", hidden_size=32, intermediate_size=64,
                               num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                               max_position_embeddings=256)  # fmt: skip
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()


def prompts(vocab: int) -> list[list[int]]:
    rng = random.Random(3)
    return [[rng.randrange(1000, vocab) for _ in range(rng.randint(2, 12))] for _ in range(8)]


def an_end_some_rows_reach(model, texts, **sampling) -> int:
    """A token that, taken as end of text, ends some rows early and not others: the case where rows leave."""
    from codigit.decoding import decode

    never = decode(model, texts, eos_token_id=-1, pad_token_id=0, max_new_tokens=NEW, batch_size=8, **sampling)
    for candidate in dict.fromkeys(t for d in never for t in d.tokens[1:-1]):
        ends = [candidate in d.tokens for d in never]
        if any(ends) and not all(ends):
            return candidate
    raise AssertionError("no token ends some rows and not others")


def test_rows_that_end_leave_the_batch_and_the_rest_get_generates_greedy_tokens(model):
    from codigit.decoding import decode

    texts = prompts(model.config.vocab_size)
    eos = an_end_some_rows_reach(model, texts)
    ours = decode(model, texts, eos_token_id=eos, pad_token_id=0, max_new_tokens=NEW, batch_size=8)
    assert any(d.finished and len(d.tokens) < NEW - 1 for d in ours) and any(not d.finished for d in ours)

    longest = max(map(len, texts))
    ids = torch.tensor([[0] * (longest - len(t)) + t for t in texts])
    mask = torch.tensor([[0] * (longest - len(t)) + [1] * len(t) for t in texts])
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=NEW,
                             eos_token_id=eos, pad_token_id=0)  # fmt: skip
    for d, row in zip(ours, out[:, longest:].tolist(), strict=True):
        assert d.tokens == (row[: row.index(eos)] if eos in row else row)
        assert d.finished == (eos in row)


def test_seeded_rows_get_the_same_tokens_in_a_batch_that_shrinks_as_one_at_a_time(model):
    from codigit.decoding import decode

    texts = prompts(model.config.vocab_size)
    seeds = list(range(100, 108))
    eos = an_end_some_rows_reach(model, texts, seeds=seeds, top_p=0.9)
    kwargs = {"eos_token_id": eos, "pad_token_id": 0, "max_new_tokens": NEW, "seeds": seeds, "top_p": 0.9}
    together = decode(model, texts, batch_size=8, **kwargs)
    alone = decode(model, texts, batch_size=1, **kwargs)
    assert any(d.finished for d in together) and not all(d.finished for d in together)
    assert [d.tokens for d in together] == [d.tokens for d in alone]
    other = decode(model, texts, batch_size=8, **{**kwargs, "seeds": [s + 1 for s in seeds]})
    assert [d.tokens for d in other] != [d.tokens for d in together]


def test_a_limit_per_row_cuts_each_row_where_its_own_limit_says(model):
    from codigit.decoding import decode

    texts = prompts(model.config.vocab_size)
    eos = an_end_some_rows_reach(model, texts)
    full = decode(model, texts, eos_token_id=eos, pad_token_id=0, max_new_tokens=NEW, batch_size=8)
    # rows that end have room to end; the others are cut short, each at a limit of its own
    limits = [NEW if d.finished else 1 + k % (NEW - 1) for k, d in enumerate(full)]
    cut = decode(model, texts, eos_token_id=eos, pad_token_id=0, max_new_tokens=limits, batch_size=3)
    for whole, part, limit in zip(full, cut, limits, strict=True):
        assert part.tokens == whole.tokens[:limit]
        assert part.finished == (whole.finished and len(whole.tokens) < limit)
    assert any(not d.finished and d.tokens for d in cut) and any(d.finished for d in cut)
    with pytest.raises(ValueError, match="at least 1 per prompt"):
        decode(model, texts, eos_token_id=eos, pad_token_id=0, max_new_tokens=[0] * len(texts), batch_size=8)


def test_the_growing_cache_holds_what_concatenation_would_through_growth_and_rows_leaving(model):
    from transformers import DynamicCache

    from codigit.decoding import growing_cache

    grown, plain = growing_cache(model.config), DynamicCache(config=model.config)
    shape = (5, model.config.num_key_value_heads, 7, model.config.head_dim)  # a 7-token prompt, then one at a time
    for step in range(150):  # past 64 and 128 positions: the buffers double twice
        keys, values = torch.randn(shape), torch.randn(shape)
        for layer in range(model.config.num_hidden_layers):
            got, want = grown.update(keys, values, layer), plain.update(keys, values, layer)
            assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
        if step == 100:  # rows 1 and 3 end
            for cache in (grown, plain):
                cache.batch_select_indices(torch.tensor([0, 2, 4]))
            shape = (3, *shape[1:])
        shape = (shape[0], shape[1], 1, shape[3])
    assert grown.get_seq_length() == plain.get_seq_length() == 7 + 149
