"""Next-token sampling: temperature, top-k, top-p."""

from __future__ import annotations

from collections import Counter

import numpy as np

from gentool_ngram.sampling import sample_token

LOG10_PROBS = np.array([*np.log10([0.5, 0.3, 0.15, 0.05]), -np.inf])  # id 4 is impossible


def draw(n: int = 4000, **options: object) -> Counter[int]:
    rng = np.random.default_rng(0)
    return Counter(sample_token(LOG10_PROBS, rng, **options) for _ in range(n))  # type: ignore[arg-type]


def test_plain_sampling_follows_the_distribution() -> None:
    counts = draw()
    assert counts[4] == 0
    assert abs(counts[0] / 4000 - 0.5) < 0.03 and abs(counts[3] / 4000 - 0.05) < 0.015


def test_greedy_top_k_and_top_p() -> None:
    assert draw(50, temperature=0.0) == Counter({0: 50})
    assert set(draw(500, top_k=2)) == {0, 1}
    assert set(draw(500, top_p=0.5)) == {0}  # 0.5 alone reaches the mass
    assert set(draw(500, top_p=0.81)) == {0, 1, 2}


def test_temperature_sharpens_and_flattens() -> None:
    assert draw(temperature=0.3)[0] > draw()[0] > draw(temperature=3.0)[0]
