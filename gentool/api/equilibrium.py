"""A GAN's equilibrium, judged from its ``metrics.jsonl`` (``gentool info`` on a GAN run).

The two networks of a GAN never converge in the ordinary sense: training succeeds when the
discriminator's outputs on real images, D(x), and on generated ones, D(G(z)), settle at a
balance, and fails when they swing without calming down (oscillation) or one network wins
outright (divergence); and the generator may collapse onto a few images (mode collapse).
These rules say which, simply, comparing the last third of the logged values of each
series with its first third (the series is cut by the count of logged values):

- **diverged**: a logged value in the last third is not finite; or, for probabilities
  (the non-saturating loss), the last third's mean is below 0.05 or above 0.95 (one
  network has won); or the last third still drifts: a least-squares line through it moves
  by more than the first third's standard deviation, and by more than 2 x ``TOLERANCE``.
- **oscillating**: else, when the last third's standard deviation is above half the first
  third's (the early swings did not die down) and above ``TOLERANCE``.
- **settled**: else.

``TOLERANCE`` is 0.05 in probability; the hinge and WGAN losses log raw scores, which have
no fixed scale, so there it is 0.05 x the series' mean absolute value. The verdict of the
pair is the worse of the two.

The diversity figure (the spread of generated images over that of real ones, about 1 when
as varied as the data) **collapsed** when its last third's mean is below ``COLLAPSE`` (half)
of the highest mean of any third (it dropped), or below ``COLLAPSE_FLOOR`` (generated
images a quarter as varied as the real ones, whatever came before).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

TOLERANCE = 0.05
COLLAPSE = 0.5
COLLAPSE_FLOOR = 0.25
PINNED = 0.05  # probabilities: a mean this close to 0 or 1 means one network won
MIN_POINTS = 6  # two logged values a third at least
VERDICTS = ("settled", "oscillating", "diverged")  # from best to worst


def summary(series: dict[str, dict[str, list[Any]]], probabilities: bool) -> dict[str, Any]:
    """The equilibrium of a GAN run from its logged ``series`` (``api.curves``' of one run):
    ``{"verdict", "reason", "d_real", "d_fake", "diversity"}``; ``d_real`` and
    ``d_fake`` ``{verdict, reason, early, late}`` with ``early``/``late`` the first and last
    thirds' ``{mean, std, trend}`` (trend: how far a fitted line moves across the third);
    ``diversity`` ``{collapsed, early, late, peak}`` (means of the first, last and highest
    third). ``verdict`` is null when too few values were logged to tell (``reason`` says)."""
    found: dict[str, Any] = {}
    for key in ("d_real", "d_fake"):
        points = series.get(key)
        found[key] = _judge(points["step"], points["value"], probabilities) if points else None
    judged = [found[k] for k in ("d_real", "d_fake") if found[k] and found[k]["verdict"]]
    if len(judged) == 2:
        worst = max(judged, key=lambda j: VERDICTS.index(j["verdict"]))
        found["verdict"], found["reason"] = worst["verdict"], worst["reason"]
    else:
        found["verdict"] = None
        found["reason"] = (
            f"too few logged values to tell (at least {MIN_POINTS} of D(x) and D(G(z)) are "
            "needed; log more often with train.log_every)"
        )
    points = series.get("diversity")
    found["diversity"] = _collapse(points["value"]) if points else None
    return found


def _thirds(values: Sequence[Any]) -> tuple[list[Any], list[Any], list[Any]]:
    third = len(values) // 3
    return list(values[:third]), list(values[third:-third]), list(values[-third:])


def _describe(steps: Sequence[int], values: Sequence[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.pstdev(values),
        "trend": _trend(steps, values),
    }


def _trend(steps: Sequence[int], values: Sequence[float]) -> float:
    """How far the least-squares line through the points moves from the first step to the
    last: the drift of the values, not their noise."""
    if len(set(steps)) < 2:
        return 0.0
    slope = statistics.linear_regression(steps, values).slope
    return slope * (steps[-1] - steps[0])


def _judge(steps: Sequence[int], values: Sequence[Any], probabilities: bool) -> dict[str, Any]:
    if len(values) < MIN_POINTS:
        return {
            "verdict": None,
            "reason": f"{len(values)} logged values",
            "early": None,
            "late": None,
        }
    first_steps, _, last_steps = _thirds(steps)
    first, _, last = _thirds(values)
    if any(v is None or not math.isfinite(v) for v in last):
        return {
            "verdict": "diverged",
            "reason": "a value of the last third is not finite",
            "early": None,
            "late": None,
        }
    finite = [v for v in values if v is not None and math.isfinite(v)]
    first_pairs = [(s, v) for s, v in zip(first_steps, first, strict=True) if v is not None]
    early = _describe([s for s, _ in first_pairs], [v for _, v in first_pairs])
    late = _describe(last_steps, last)
    scale = 1.0 if probabilities else statistics.fmean(abs(v) for v in finite)
    tolerance = TOLERANCE * scale
    if probabilities and not PINNED <= late["mean"] <= 1 - PINNED:
        verdict, reason = "diverged", f"pinned at {late['mean']:.2f}: one network won"
    elif abs(late["trend"]) > max(early["std"], 2 * tolerance):
        verdict = "diverged"
        reason = f"still drifting: {late['trend']:+.3g} across the last third"
    elif late["std"] > max(0.5 * early["std"], tolerance):
        verdict = "oscillating"
        reason = f"swings of std {late['std']:.3g} late, {early['std']:.3g} early"
    else:
        verdict = "settled"
        reason = (
            f"std {late['std']:.3g} late ({early['std']:.3g} early), drift {late['trend']:+.3g}"
        )
    return {"verdict": verdict, "reason": reason, "early": early, "late": late}


def _collapse(values: Sequence[Any]) -> dict[str, Any] | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if len(finite) < MIN_POINTS:
        return None
    thirds = [statistics.fmean(t) for t in _thirds(finite)]
    peak, late = max(thirds), thirds[-1]
    return {
        "collapsed": late < COLLAPSE * peak or late < COLLAPSE_FLOOR,
        "early": thirds[0],
        "late": late,
        "peak": peak,
    }
