"""Pieces of music as piano-roll images, and back (numpy; symusic through gentool.data.music).

A phrase is a ``(tracks, time, pitch)`` array of 0/255 on a sixteenth-note grid: ``bars`` bars
of 4/4 (16 steps each) by ``pitches`` pitches from ``low`` up, one plane per track (the four
voices of a chorale), as MuseGAN draws multi-track bars. A cell is on while a note of that
track and pitch sounds.

A binary roll cannot tell one long note from two repeated ones, so a note followed at once by
the same pitch on its track is cut one step short: the gap keeps them two notes.

Back from the generator's output (floats in [-1, 1]): a cell sounds when it is above 0 (a
probability above one half: MuseGAN's hard threshold); a monophonic track (a chorale voice)
sounds at most its loudest pitch at each step. A run of steps on one pitch is a note.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gentool.data.music import WRITE_TPQ, MusicSet
from gentool.errors import DataError

STEPS_PER_BEAT = 4  # a sixteenth-note grid
BEATS_PER_BAR = 4  # phrases are cut from pieces in 4/4
STEPS_PER_BAR = STEPS_PER_BEAT * BEATS_PER_BAR
# A track is monophonic (one pitch at a time: a voice) when at most this share of the steps
# where it sounds have two pitches (a unison written as two notes, a divisi).
MONOPHONIC_SHARE = 0.02


@dataclass
class Layout:
    """What the rolls of a run are: the tracks (names, programs, monophonic or not), the
    pitch range, and how a written piece sounds (tempo, velocity)."""

    names: list[str]
    programs: list[int]
    monophonic: list[bool]
    low: int  # the lowest pitch of the roll
    pitches: int  # a multiple of 12: the networks work in octaves
    qpm: float = 120.0
    velocity: int = 80
    thresholds: list[float] = field(default_factory=list)  # per track; none: 0 each

    @property
    def tracks(self) -> int:
        return len(self.names)

    def to_dict(self) -> dict[str, Any]:
        return {
            "track_names": self.names,
            "programs": self.programs,
            "monophonic": self.monophonic,
            "low_pitch": self.low,
            "pitches": self.pitches,
            "qpm": self.qpm,
            "velocity": self.velocity,
            "thresholds": self.thresholds,
        }

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> Layout:
        return cls(
            list(spec["track_names"]),
            [int(p) for p in spec["programs"]],
            [bool(m) for m in spec["monophonic"]],
            int(spec["low_pitch"]),
            int(spec["pitches"]),
            float(spec["qpm"]),
            int(spec["velocity"]),
            [float(t) for t in spec.get("thresholds", [])],
        )


@dataclass
class Rolls:
    """The phrases of a set of pieces, and the pieces left out (file -> why)."""

    phrases: np.ndarray  # uint8 (N, tracks, bars * 16, pitches), 0 or 255
    pieces: int
    skipped: dict[str, str] = field(default_factory=dict)


def in_four_four(score: Any) -> bool:
    """Whether every time signature of ``score`` is 4/4 (none at all is MIDI's 4/4)."""
    return all((t.numerator, t.denominator) == (4, 4) for t in score.time_signatures)


def pitched_tracks(score: Any) -> list[Any]:
    return [t for t in score.tracks if t.notes and not t.is_drum]


def choose_tracks(scores: Sequence[Any], tracks: int = 0) -> list[tuple[str, int]]:
    """The tracks a run draws, as (name, program): ``tracks`` of them (0: as many as most
    pieces have), each named and played as most pieces' track at that place are."""
    counts = Counter(len(pitched_tracks(s)) for s in scores)
    count = tracks or counts.most_common(1)[0][0]
    places: list[Counter[tuple[str, int]]] = [Counter() for _ in range(count)]
    for score in scores:
        for k, track in enumerate(pitched_tracks(score)[:count]):
            places[k][(track.name, track.program)] += 1
    return [
        place.most_common(1)[0][0] if place else (f"track {k + 1}", 0)
        for k, place in enumerate(places)
    ]


def pieces_tracks(score: Any, names: Sequence[str]) -> list[Any | None]:
    """The tracks of ``score`` for the run's tracks: the one of the same name when there is
    one (a chorale's Soprano is the Soprano wherever it lies), else the one at that place."""
    own = pitched_tracks(score)
    by_name: dict[str, Any] = {}
    for track in own:
        by_name.setdefault(track.name, track)
    named = {id(t) for t in by_name.values() if t.name in names}
    rest = [t for t in own if id(t) not in named]
    out: list[Any | None] = []
    for name in names:
        if name in by_name:
            out.append(by_name[name])
        else:
            out.append(rest.pop(0) if rest else None)
    return out


def make_layout(scores: Sequence[Any], tracks: int = 0) -> Layout:
    """The layout of rolls for ``scores`` (pieces in 4/4): their tracks, pitch range
    (widened to whole octaves), tempo and loudness."""
    chosen = choose_tracks(scores, tracks)
    names = [name for name, _ in chosen]
    pitches, velocities, qpms = [], [], []
    polyphonic = np.zeros(len(names)), np.zeros(len(names))  # (steps with 2+, steps sounding)
    for score in scores:
        step = score.tpq / STEPS_PER_BEAT
        if len(score.tempos):
            qpms.append(float(score.tempos[0].qpm))
        for k, track in enumerate(pieces_tracks(score, names)):
            if track is None:
                continue
            notes = track.notes.numpy()
            pitches.append(notes["pitch"])
            velocities.append(notes["velocity"])
            ends = np.maximum(np.round((notes["time"] + notes["duration"]) / step), 1)
            starts = np.minimum(np.round(notes["time"] / step), ends - 1)
            sounding = np.zeros(int(ends.max()) + 1)
            np.add.at(sounding, starts.astype(int), 1)
            np.add.at(sounding, ends.astype(int), -1)
            sounding = np.cumsum(sounding)
            polyphonic[0][k] += np.sum(sounding >= 2)
            polyphonic[1][k] += np.sum(sounding >= 1)
    if not pitches:
        raise DataError("the gan composes pitched notes, and the pieces given have only drums")
    every = np.concatenate(pitches)
    low, high = int(every.min()), int(every.max())
    span = 12 * math.ceil((high - low + 1) / 12)
    low = max(0, min(low, 128 - span))
    share = polyphonic[0] / np.maximum(polyphonic[1], 1)
    return Layout(
        names,
        [program for _, program in chosen],
        [bool(s <= MONOPHONIC_SHARE) for s in share],
        low,
        span,
        float(np.median(qpms)) if qpms else 120.0,
        int(np.median(np.concatenate(velocities))),
    )


def piece_roll(score: Any, layout: Layout) -> np.ndarray:
    """A whole piece as a bool roll (tracks, steps, pitches), whole bars long; notes outside
    the pitch range are left out."""
    step = score.tpq / STEPS_PER_BEAT
    end = max(t.end() for t in pitched_tracks(score))
    bars = max(1, math.ceil(round(end / step) / STEPS_PER_BAR))
    roll = np.zeros((layout.tracks, bars * STEPS_PER_BAR, layout.pitches), dtype=bool)
    for k, track in enumerate(pieces_tracks(score, layout.names)):
        if track is None:
            continue
        notes = track.notes.numpy()
        starts = np.round(notes["time"] / step).astype(int)
        ends = np.round((notes["time"] + notes["duration"]) / step).astype(int)
        ends = np.maximum(ends, starts + 1)
        rows = notes["pitch"].astype(int) - layout.low
        inside = (rows >= 0) & (rows < layout.pitches)
        # where a note of this pitch starts, the one before it ends a step early
        onsets = {(int(s), int(r)) for s, r in zip(starts[inside], rows[inside], strict=True)}
        for s, e, r in zip(starts[inside], ends[inside], rows[inside], strict=True):
            if (int(e), int(r)) in onsets and e - s > 1:
                e -= 1
            roll[k, s:e, r] = True
    return roll


def read_rolls(music: MusicSet, layout: Layout, bars: int, required: bool = True) -> Rolls:
    """Every phrase of ``bars`` bars that starts on a bar of a piece in 4/4 (one a bar: they
    overlap), as uint8 0/255; silent phrases are left out, pieces in other metres skipped.
    None at all is a DataError when ``required`` (the training pieces), else no phrase."""
    phrases, skipped, used = [], {}, 0
    length = bars * STEPS_PER_BAR
    for piece in music.pieces:
        if not in_four_four(piece.score):
            skipped[str(piece.path)] = f"'{piece.path}' is not in 4/4"
            continue
        if not pitched_tracks(piece.score):
            skipped[str(piece.path)] = f"'{piece.path}' has only drums"
            continue
        roll = piece_roll(piece.score, layout)
        if roll.shape[1] < length:
            pad = np.zeros((roll.shape[0], length - roll.shape[1], roll.shape[2]), dtype=bool)
            roll = np.concatenate([roll, pad], axis=1)
        used += 1
        for start in range(0, roll.shape[1] - length + 1, STEPS_PER_BAR):
            phrase = roll[:, start : start + length]
            if phrase.any():
                phrases.append(phrase)
    if not phrases and not required:
        empty = np.zeros((0, layout.tracks, length, layout.pitches), dtype=np.uint8)
        return Rolls(empty, used, skipped)
    if not phrases:
        raise DataError(
            "the gan composes phrases of pieces in 4/4, and none of the pieces given is in 4/4 "
            "with notes; give MIDI files in 4/4"
        )
    stacked = np.stack(phrases).astype(np.uint8) * 255
    return Rolls(stacked, used, skipped)


def sounding(phrases: np.ndarray, layout: Layout) -> np.ndarray:
    """Per track, the share of what sounds in ``phrases`` (N, tracks, steps, pitches; bool
    or 0/255): of the steps, for a monophonic track (a voice sounds or rests), else of the
    cells."""
    on = phrases > 0
    return np.array(
        [
            on[:, k].any(axis=2).mean() if mono else on[:, k].mean()
            for k, mono in enumerate(layout.monophonic)
        ]
    )


def calibrate(outputs: np.ndarray, layout: Layout, shares: np.ndarray) -> list[float]:
    """Per track, the threshold at which the generator's ``outputs`` (N, tracks, steps,
    pitches; floats) sound as often as the training phrases do (``shares``, from
    ``sounding``): a monophonic track by its loudest pitch at each step, else by cell.

    A well-trained generator's outputs sit near -1 and 1, and this lands near MuseGAN's
    fixed 0; one that has learnt little sits below 0 everywhere, and a fixed threshold
    would make it write silence. Only how much each track sounds is calibrated: which
    pitches, and when, are the generator's."""
    out = []
    for k, mono in enumerate(layout.monophonic):
        values = outputs[:, k].max(axis=2) if mono else outputs[:, k]
        out.append(float(np.quantile(values, 1 - float(shares[k]))))
    return out


def binarize(output: np.ndarray, layout: Layout) -> np.ndarray:
    """The generator's output (tracks, steps, pitches), floats in [-1, 1], as a bool roll:
    above the track's threshold sounds (``calibrate``; 0, a probability of one half, when
    there is none); a monophonic track sounds only its highest-scoring pitch at a step."""
    limits = layout.thresholds or [0.0] * layout.tracks
    on = output > np.asarray(limits, dtype=output.dtype)[:, None, None]
    for k, mono in enumerate(layout.monophonic):
        if mono:
            best = output[k].argmax(axis=1)
            keep = np.zeros_like(on[k])
            keep[np.arange(len(best)), best] = True
            on[k] &= keep
    return on


def roll_score(roll: np.ndarray, layout: Layout) -> Any:
    """A bool roll (tracks, steps, pitches) as a ``symusic.Score`` in 4/4 at the layout's
    tempo: each run of steps on one pitch of a track is a note."""
    import symusic

    tick = WRITE_TPQ // STEPS_PER_BEAT
    score = symusic.Score(WRITE_TPQ)
    score.time_signatures.append(symusic.TimeSignature(0, BEATS_PER_BAR, 4))
    score.tempos.append(symusic.Tempo(0, qpm=layout.qpm))
    for k, (name, program) in enumerate(zip(layout.names, layout.programs, strict=True)):
        track = symusic.Track(name=name, program=program)
        padded = np.pad(roll[k].astype(np.int8), ((1, 1), (0, 0)))
        edges = np.diff(padded, axis=0)  # +1 where a note starts, -1 where it ends
        for row in range(roll.shape[2]):
            starts = np.flatnonzero(edges[:, row] == 1)
            ends = np.flatnonzero(edges[:, row] == -1)
            for s, e in zip(starts, ends, strict=True):
                pitch = layout.low + row
                track.notes.append(
                    symusic.Note(int(s) * tick, int(e - s) * tick, pitch, layout.velocity)
                )
        track.notes.sort()
        score.tracks.append(track)
    return score
