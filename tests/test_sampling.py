"""The nucleus sampler behind seeded generation: the right distribution, and a row's token its own."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


def nucleus(probs, top_p: float):
    """The reference: sort each row, keep the smallest set that reaches top_p, renormalise."""
    values, order = probs.sort(dim=-1, descending=True)
    values[values.cumsum(dim=-1) - values >= top_p] = 0
    kept = torch.zeros_like(probs).scatter(-1, order, values)
    return kept / kept.sum(dim=-1, keepdim=True)


def drawer(n: int, seed: int = 0):
    """`draw` as the row sampler gives it: each row's uniforms from its own generator."""
    generators = [torch.Generator().manual_seed(seed + i) for i in range(n)]
    return lambda rows: torch.cat([torch.rand(1, generator=generators[i], dtype=torch.float64) for i in rows])


@pytest.mark.parametrize("top_p", [0.3, 0.9, 1.0])
@pytest.mark.parametrize("vocab, scale", [(40, 0.5), (40, 2.0), (5000, 6.0)])  # whole rows; top k of 5000
def test_tokens_follow_the_nucleus_distribution(vocab, scale, top_p):
    from codigit.sampling import nucleus_sample

    torch.manual_seed(1)
    probs = torch.softmax(torch.randn(1, vocab) * scale, dim=-1)
    n = 20000
    chosen = nucleus_sample(probs.expand(n, -1).contiguous(), drawer(n), top_p)
    share = torch.bincount(chosen, minlength=vocab).double() / n
    expected = nucleus(probs, top_p)[0].double()
    assert (share[expected == 0] == 0).all()  # never a token outside the nucleus
    sigma = (expected * (1 - expected) / n).sqrt()
    assert ((share - expected).abs() <= 5 * sigma + 3 / n).all()  # within 5 standard errors (+3 draws: rare tokens)


def test_tied_tokens_at_the_edge_are_all_in_the_nucleus():
    from codigit.sampling import nucleus_sample

    probs = torch.tensor([[0.4, 0.2, 0.2, 0.2]])  # 0.5 needs a 0.2: every 0.2 is as likely, so all are kept
    chosen = nucleus_sample(probs.expand(4000, -1).contiguous(), drawer(4000), 0.5)
    assert set(chosen.tolist()) == {0, 1, 2, 3}


def test_a_rows_token_does_not_depend_on_the_rows_beside_it():
    from codigit.sampling import nucleus_sample

    torch.manual_seed(2)
    # nuclei of a few dozen tokens (alone: the top 256 suffice) beside a flat row whose nucleus needs whole rows
    peaked = torch.softmax(torch.randn(16, 128256) * 5, dim=-1)
    flat = torch.softmax(torch.randn(1, 128256) * 0.1, dim=-1)
    together = nucleus_sample(torch.cat([peaked, flat]), drawer(17), 0.9)
    alone = [nucleus_sample(peaked[i : i + 1], drawer(1, seed=i), 0.9).item() for i in range(16)]
    assert together[:16].tolist() == alone
    assert together[16].item() == nucleus_sample(flat, drawer(1, seed=16), 0.9).item()
    assert len(set(alone)) > 1  # the uniforms are really used


def test_last_bit_differences_in_a_flat_row_rarely_change_the_token():
    from codigit.sampling import nucleus_sample

    # a random model's rows: 128k nearly equal probabilities; batched and one-at-a-time logits differ in the last
    # bits. Renormalising by the nucleus' own mass passed every edge change on to every draw (50 of 64 answers of
    # the quick benchmark were the same); drawn by rejection, a change matters only on the edge itself.
    torch.manual_seed(3)
    logits = torch.randn(64, 128256) * 0.3
    wobble = logits * (1 + 1e-7 * torch.randn_like(logits))
    a = nucleus_sample(torch.softmax(logits, dim=-1), drawer(64), 0.9)
    b = nucleus_sample(torch.softmax(wobble, dim=-1), drawer(64), 0.9)
    assert (a == b).sum() >= 63
