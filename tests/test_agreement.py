"""Krippendorff's alpha: the published worked example, the `krippendorff` package, the bootstrap, multi-label."""

from __future__ import annotations

import math

import krippendorff
import numpy as np
import pytest

from codigit.agreement import Rating, agreement, multilabel_agreement

NAN = np.nan
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the example with missing values:
# 4 observers × 12 units; published alphas: nominal 0.743, ordinal 0.815, interval 0.849.
PUBLISHED = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
]


def to_ratings(matrix) -> list[Rating]:
    return [
        Rating(item=f"u{u:02d}", rater=f"r{r}", value=int(v))
        for r, row in enumerate(matrix)
        for u, v in enumerate(row)
        if not (isinstance(v, float) and math.isnan(v))
    ]


@pytest.mark.parametrize(("level", "published"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)])
def test_published_worked_example(level, published):
    result = agreement(to_ratings(PUBLISHED), level, n_boot=200)
    assert round(result.alpha, 3) == published
    assert result.n_items == 11  # unit 12 has a single value: not pairable
    assert result.n_raters == 4 and result.n_values == 40


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
@pytest.mark.parametrize("seed", range(5))
def test_matches_the_krippendorff_package(level, seed):
    rng = np.random.default_rng(seed)
    truth = rng.integers(1, 6, size=30)
    matrix = np.array([np.clip(truth + rng.integers(-1, 2, size=30), 1, 5) for _ in range(4)], dtype=float)
    matrix[rng.random(matrix.shape) < 0.25] = NAN  # reviewers skip stories
    expected = krippendorff.alpha(reliability_data=matrix, level_of_measurement=level)
    assert agreement(to_ratings(matrix), level, n_boot=0).alpha == pytest.approx(expected, abs=1e-12)


def test_bootstrap_interval_is_seeded_and_brackets_alpha():
    ratings = to_ratings(PUBLISHED)
    first = agreement(ratings, "ordinal", n_boot=500, seed=7)
    assert first == agreement(ratings, "ordinal", n_boot=500, seed=7)
    assert first.ci_low < first.alpha < first.ci_high <= 1.0
    assert agreement(ratings, "ordinal", n_boot=500, seed=8).ci_low != first.ci_low


def test_self_reviews_are_excluded():
    honest = [Rating("s1", "a", 5), Rating("s1", "b", 1), Rating("s2", "a", 2), Rating("s2", "b", 2)]
    with_self = [*honest, Rating("s1", "author-of-s1", 5, self_review=True)]
    assert agreement(with_self, "ordinal", n_boot=0) == agreement(honest, "ordinal", n_boot=0)


def test_most_disputed_items_come_first():
    ratings = [
        Rating("calm", "a", 3), Rating("calm", "b", 3), Rating("calm", "c", 3),
        Rating("split", "a", 1), Rating("split", "b", 5), Rating("split", "c", 5),
        Rating("mild", "a", 2), Rating("mild", "b", 3), Rating("mild", "c", 3),
    ]  # fmt: skip
    disputed = agreement(ratings, "interval", n_boot=0).disputed
    assert [item for item, _ in disputed] == ["split", "mild"]  # full agreement is not a dispute
    assert disputed[0][1] == pytest.approx((16 + 16 + 0) * 2 / 6)  # mean squared difference over ordered pairs


def test_multilabel_is_one_binary_alpha_per_label():
    themes = {
        ("s1", "a"): {"care", "work"}, ("s1", "b"): {"care"}, ("s1", "c"): {"care", "work"},
        ("s2", "a"): {"family"}, ("s2", "b"): {"family", "work"}, ("s2", "c"): set(),
        ("s3", "a"): {"work"}, ("s3", "b"): {"work"}, ("s3", "c"): {"care", "work"},
    }  # fmt: skip
    ratings = [Rating(item, rater, frozenset(v)) for (item, rater), v in themes.items()]
    result = multilabel_agreement(ratings, ["care", "work", "family"], n_boot=0)
    for label, got in result.items():
        matrix = [[float(label in themes[(s, r)]) for s in ("s1", "s2", "s3")] for r in ("a", "b", "c")]
        assert got.alpha == pytest.approx(krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal"))


def test_undefined_alpha_and_bad_input():
    same = [Rating("s1", "a", 4), Rating("s1", "b", 4)]
    assert math.isnan(agreement(same, "ordinal", n_boot=10).alpha)  # no variation: alpha is undefined
    assert agreement([Rating("s1", "a", 4)], "ordinal").n_items == 0
    with pytest.raises(ValueError, match="twice"):
        agreement([Rating("s1", "a", 4), Rating("s1", "a", 5)], "ordinal")
