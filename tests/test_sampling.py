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


@pytest.mark.parametrize("top_p", [0.3, 0.9, 1.0])
@pytest.mark.parametrize("scale", [0.5, 6.0])  # a flat row (a random model's: nucleus beyond 4096) and a peaked one
def test_tokens_follow_the_nucleus_distribution(top_p, scale):
    from codigit.generate import nucleus_sample

    torch.manual_seed(1)
    probs = torch.softmax(torch.randn(1, 5000) * scale, dim=-1)
    n = 4000
    grid = (torch.arange(n, dtype=torch.float64) + 0.5) / n  # evenly spread uniforms: counts are all but exact
    chosen = nucleus_sample(probs.expand(n, -1).contiguous(), grid, top_p)
    share = torch.bincount(chosen, minlength=5000).double() / n
    expected = nucleus(probs, top_p)[0].double()
    assert (share[expected == 0] == 0).all()  # never a token outside the nucleus
    assert (share - expected).abs().sum() <= 2 * (expected > 0).sum() / n  # each within a grid step or two


def test_tied_tokens_at_the_edge_are_all_in_the_nucleus():
    from codigit.generate import nucleus_sample

    probs = torch.tensor([[0.4, 0.2, 0.2, 0.2]])  # 0.9 needs a 0.2: every 0.2 is as likely, so all are kept
    grid = (torch.arange(1000, dtype=torch.float64) + 0.5) / 1000
    counts = torch.bincount(nucleus_sample(probs.expand(1000, -1).contiguous(), grid, 0.5), minlength=4)
    assert counts.tolist() == [400, 200, 200, 200]


def test_a_rows_token_does_not_depend_on_the_rows_beside_it():
    from codigit.generate import nucleus_sample

    torch.manual_seed(2)
    peaked = torch.softmax(torch.randn(8, 128256) * 8, dim=-1)
    flat = torch.softmax(torch.randn(1, 128256) * 0.1, dim=-1)  # its nucleus makes the sampler sort whole rows
    uniforms = torch.rand(9, dtype=torch.float64)
    together = nucleus_sample(torch.cat([peaked, flat]), uniforms, 0.9)
    alone = [nucleus_sample(peaked[i : i + 1], uniforms[i : i + 1], 0.9).item() for i in range(8)]
    assert together[:8].tolist() == alone
    assert together[8].item() == nucleus_sample(flat, uniforms[8:], 0.9).item()
    assert len(set(alone)) > 1  # the uniforms are really used
