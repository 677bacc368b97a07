"""Choosing the next token from a distribution: temperature, top-k, top-p (nucleus)."""

from __future__ import annotations

import numpy as np


def sample_token(
    logprobs: np.ndarray,
    rng: np.random.Generator,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> int:
    """Draw one id from ``logprobs`` (V,) in log10 (-inf = impossible).

    Temperature 0 is greedy. Top-k keeps the k most likely ids; top-p keeps the smallest
    set of most likely ids whose probability reaches p. Both apply after temperature.
    """
    logits = np.asarray(logprobs, dtype=np.float64) * np.log(10.0)  # log10 -> natural log
    if temperature == 0:
        return int(np.argmax(logits))
    logits = logits / temperature
    if top_k is None and top_p is None:  # no need to sort the vocabulary
        probs = np.exp(logits - logits.max())
        return int(rng.choice(probs.size, p=probs / probs.sum()))
    candidates = np.argsort(-logits, kind="stable")[:top_k]  # most likely first
    probs = np.exp(logits[candidates] - logits[candidates[0]])
    probs /= probs.sum()
    if top_p is not None:
        # Keep every id up to and including the one that brings the mass to top_p.
        keep = int(np.searchsorted(np.cumsum(probs), top_p) + 1)
        candidates, probs = candidates[:keep], probs[:keep] / probs[:keep].sum()
    return int(candidates[rng.choice(candidates.size, p=probs)])
