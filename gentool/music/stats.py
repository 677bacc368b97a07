"""Statistics of pieces of music, to judge generated pieces against real ones.

Per piece (``piece_stats``): pitch range, polyphony, note density, the estimated key and the
share of notes in it, the share of empty bars. Per set (``set_stats``): their means, and the
set's pitch-class histogram, compared between sets with ``histogram_distance``. Copying
(``CopyIndex``): the longest run of tokens a piece shares with any training piece, to be read
against the same figure for held-out pieces (real music repeats formulas too).

Pieces are ``symusic.Score`` objects (ticks); times are measured in quarter notes, so the
figures do not depend on a file's resolution. numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# Krumhansl & Kessler's (1982) probe-tone ratings of the 12 pitch classes in C major and
# C minor: how well each fits the key. Krumhansl & Schmuckler's key finder correlates a
# piece's duration-weighted pitch-class distribution with these, rotated to all 24 keys.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
# The notes "in the key": the major scale; in minor the natural minor scale plus the raised
# leading tone, which tonal minor uses at every cadence (harmonic minor).
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10, 11)
PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


@dataclass
class Notes:
    """A piece's notes as arrays (times in quarter notes), and its bar lines."""

    start: np.ndarray  # float64
    end: np.ndarray
    pitch: np.ndarray  # int64
    track: np.ndarray  # int64, index into the score's tracks
    bars: np.ndarray  # start of each bar, through the end of the last note

    def __len__(self) -> int:
        return len(self.pitch)


def notes_of(score: Any) -> Notes:
    """The notes of every track of ``score`` (drums left out: they have no pitch class)."""
    tpq = float(score.tpq)
    starts, ends, pitches, tracks = [], [], [], []
    for k, track in enumerate(score.tracks):
        if track.is_drum or len(track.notes) == 0:
            continue
        arrays = track.notes.numpy()
        time = arrays["time"].astype(np.float64) / tpq
        starts.append(time)
        ends.append(time + arrays["duration"].astype(np.float64) / tpq)
        pitches.append(arrays["pitch"].astype(np.int64))
        tracks.append(np.full(len(time), k, dtype=np.int64))
    if not starts:
        empty = np.zeros(0)
        return Notes(empty, empty, empty.astype(np.int64), empty.astype(np.int64), empty)
    start, end = np.concatenate(starts), np.concatenate(ends)
    signatures = [(ts.time / tpq, ts.numerator, ts.denominator) for ts in score.time_signatures]
    return Notes(
        start,
        end,
        np.concatenate(pitches),
        np.concatenate(tracks),
        bar_lines(signatures, end.max()),
    )


def bar_lines(signatures: Iterable[tuple[float, int, int]], until: float) -> np.ndarray:
    """Bar starts (quarter notes) from time signatures ``(time, numerator, denominator)``,
    4/4 before the first; bars continue until ``until``. A signature in mid-bar starts a
    new bar, as a MIDI file states it."""
    changes: dict[float, float] = {0.0: 4.0}
    for time, num, den in sorted(signatures):
        if time == 0 or time < until:  # the last signature at a time wins
            changes[time] = num * 4.0 / den
    times = sorted(changes)
    lines: list[float] = []
    for i, time in enumerate(times):
        stop = times[i + 1] if i + 1 < len(times) else until
        length, t = changes[time], time
        lines.append(t)
        t += length
        while t < stop - 1e-9:
            lines.append(t)
            t += length
    return np.array(lines if lines else [0.0])


def pitch_class_histogram(score: Any) -> np.ndarray:
    """How many notes of each pitch class (C, C#, ..., B): 12 counts."""
    notes = notes_of(score)
    return np.bincount(notes.pitch % 12, minlength=12).astype(np.float64)


def histogram_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Jensen-Shannon divergence (base 2) between two pitch-class histograms: 0 for the same
    distribution, 1 for disjoint ones; symmetric, and defined where a class is missing."""
    p, q = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if p.sum() <= 0 or q.sum() <= 0:
        return math.nan
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(x: np.ndarray) -> float:
        mask = x > 0
        return float(np.sum(x[mask] * np.log2(x[mask] / m[mask])))

    return (kl(p) + kl(q)) / 2


def estimate_key(score: Any) -> tuple[int, str, float]:
    """(tonic pitch class, "major" or "minor", correlation) by Krumhansl-Schmuckler: the key
    whose profile correlates best with the duration-weighted pitch classes."""
    notes = notes_of(score)
    weights = np.bincount(notes.pitch % 12, weights=notes.end - notes.start, minlength=12)
    if weights.sum() <= 0:
        return 0, "major", math.nan
    best = (-2.0, 0, "major")
    for mode, profile in (("major", MAJOR_PROFILE), ("minor", MINOR_PROFILE)):
        for tonic in range(12):
            r = float(np.corrcoef(weights, np.roll(profile, tonic))[0, 1])
            if not math.isnan(r) and r > best[0]:
                best = (r, tonic, mode)
    return best[1], best[2], best[0]


def key_name(tonic: int, mode: str) -> str:
    return f"{PITCH_NAMES[tonic]} {mode}"


def in_key_share(score: Any) -> float:
    """The share of notes whose pitch class belongs to the piece's estimated key."""
    notes = notes_of(score)
    if len(notes) == 0:
        return math.nan
    tonic, mode, _ = estimate_key(score)
    scale = np.zeros(12, dtype=bool)
    scale[[(tonic + d) % 12 for d in (MAJOR_SCALE if mode == "major" else MINOR_SCALE)]] = True
    return float(scale[notes.pitch % 12].mean())


def polyphony(notes: Notes) -> float:
    """The mean number of notes sounding, over the time when at least one sounds."""
    if len(notes) == 0:
        return math.nan
    edges = np.unique(np.concatenate([notes.start, notes.end]))
    starts, ends = np.sort(notes.start), np.sort(notes.end)
    # sounding in [edges[i], edges[i+1]): started at or before edges[i], not ended by then
    active = np.searchsorted(starts, edges[:-1], "right") - np.searchsorted(
        ends, edges[:-1], "right"
    )
    span = np.diff(edges)
    sounding = active > 0
    return float((active * span)[sounding].sum() / span[sounding].sum())


def empty_bars(notes: Notes) -> float:
    """The share of bars, from the first to the last, in which no note sounds at all."""
    if len(notes) == 0:
        return math.nan
    bars = notes.bars
    bar_end = np.append(bars[1:], max(notes.end.max(), bars[-1]) + 1e-9)
    # bar i is occupied if some note starts before the bar ends and ends after it starts
    order = np.argsort(notes.start)
    start, end_sorted = notes.start[order], notes.end[order]
    running_end = np.maximum.accumulate(end_sorted)
    k = np.searchsorted(start, bar_end, "left")  # notes starting before each bar's end
    occupied = np.zeros(len(bars), dtype=bool)
    has = k > 0
    occupied[has] = running_end[k[has] - 1] > bars[has]
    first = np.argmax(occupied) if occupied.any() else 0
    last = len(bars) - 1 - np.argmax(occupied[::-1]) if occupied.any() else 0
    span = occupied[first : last + 1]
    return float(1.0 - span.mean())


def piece_stats(score: Any) -> dict[str, Any]:
    """The statistics of one piece (see the module's docstring)."""
    notes = notes_of(score)
    tonic, mode, r = estimate_key(score)
    count = len(notes)
    bars = len(notes.bars)
    return {
        "notes": count,
        "bars": bars,
        "quarter_notes": float(notes.end.max()) if count else 0.0,
        "pitch_min": int(notes.pitch.min()) if count else None,
        "pitch_max": int(notes.pitch.max()) if count else None,
        "pitch_range": int(notes.pitch.max() - notes.pitch.min()) if count else None,
        "polyphony": polyphony(notes),
        "notes_per_bar": count / bars if count else 0.0,
        "key": key_name(tonic, mode) if count else None,
        "key_correlation": r,
        "in_key": in_key_share(score),
        "empty_bars": empty_bars(notes),
    }


MEAN_FIELDS = ("pitch_range", "polyphony", "notes_per_bar", "in_key", "empty_bars", "notes", "bars")


def set_stats(scores: Sequence[Any]) -> dict[str, Any]:
    """The means of ``piece_stats`` over pieces (with standard deviations), and the set's
    pitch-class histogram (normalised) for ``histogram_distance``."""
    per_piece = [piece_stats(s) for s in scores]
    out: dict[str, Any] = {"pieces": len(per_piece)}
    for name in MEAN_FIELDS:
        values = np.array([p[name] for p in per_piece if p[name] is not None], dtype=np.float64)
        values = values[~np.isnan(values)]
        out[name] = float(values.mean()) if len(values) else math.nan
        out[f"{name}_std"] = float(values.std()) if len(values) else math.nan
    histogram = sum((pitch_class_histogram(s) for s in scores), np.zeros(12))
    total = histogram.sum()
    out["pitch_class_histogram"] = (histogram / total if total else histogram).round(4).tolist()
    modes = [p["key"].split()[1] for p in per_piece if p["key"]]
    out["minor_share"] = modes.count("minor") / len(modes) if modes else math.nan
    return out


# -- copying --------------------------------------------------------------------------------


class CopyIndex:
    """The longest run of tokens a piece shares with any piece of a reference set.

    A suffix automaton of the reference pieces (joined by separators that match nothing, so
    no run crosses two pieces): every run of tokens of the reference is a path from its root.
    Building it is linear in the reference's tokens, and a query walks it once, keeping the
    longest match that ends at each token (following suffix links where a match breaks).
    Exact; about 0.5 s and 170 MB of memory for the 354,000 tokens of 283 chorales.
    """

    def __init__(self, pieces: Sequence[Sequence[int]]) -> None:
        # State 0 is the root; per state: the longest run it stands for, its suffix link,
        # and its transitions (token -> state).
        self._length = [0]
        self._link = [-1]
        self._next: list[dict[int, int]] = [{}]
        self._last = 0
        for k, piece in enumerate(pieces):
            for token in piece:
                self._extend(int(token))
            self._extend(-1 - k)  # a separator no query token equals

    def _extend(self, token: int) -> None:
        length, link, nxt = self._length, self._link, self._next
        cur = len(length)
        length.append(length[self._last] + 1)
        link.append(0)
        nxt.append({})
        p = self._last
        while p != -1 and token not in nxt[p]:
            nxt[p][token] = cur
            p = link[p]
        if p != -1:
            q = nxt[p][token]
            if length[p] + 1 == length[q]:
                link[cur] = q
            else:  # split q: a clone holds the shorter runs that now end in two places
                clone = len(length)
                length.append(length[p] + 1)
                link.append(link[q])
                nxt.append(dict(nxt[q]))
                while p != -1 and nxt[p].get(token) == q:
                    nxt[p][token] = clone
                    p = link[p]
                link[q] = link[cur] = clone
        self._last = cur

    def longest(self, ids: Sequence[int]) -> int:
        """The length of the longest run of ``ids`` found in some reference piece."""
        length, link, nxt = self._length, self._link, self._next
        state = matched = best = 0
        for token in ids:
            token = int(token)
            while state and token not in nxt[state]:
                state = link[state]
                matched = length[state]
            if token in nxt[state]:
                state = nxt[state][token]
                matched += 1
                best = max(best, matched)
        return best


def copying(pieces: Sequence[Sequence[int]], index: CopyIndex) -> dict[str, float]:
    """Mean, median and max over ``pieces`` of their longest run shared with the index, also
    as a share of each piece's length."""
    runs = np.array([index.longest(p) for p in pieces], dtype=np.float64)
    lengths = np.array([max(len(p), 1) for p in pieces], dtype=np.float64)
    if len(runs) == 0:
        return {"mean": math.nan, "median": math.nan, "max": math.nan, "share_mean": math.nan}
    return {
        "mean": float(runs.mean()),
        "median": float(np.median(runs)),
        "max": float(runs.max()),
        "share_mean": float((runs / lengths).mean()),
    }
