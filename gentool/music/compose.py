"""What every music kind shares, whatever its network: the training pieces as token
streams, sampling pieces that always decode, and comparing generated pieces with held-out
ones. torch-free; a kind passes in how it samples token ids.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gentool.data.music import Decoded, MusicSet, MusicTokenizer, read_midi, read_music
from gentool.errors import GentoolError
from gentool.tasks import TOKENS_PER_BAR, MusicRequest

# A stream that decodes to no note is sampled again this many times before giving up.
RESAMPLE = 8

#: ``sample(prompt, rows, max_new, attempt)``: ``rows`` lists of new token ids continuing
#: ``prompt`` (at most ``max_new`` each, ending early where the model ends a piece).
Sampler = Callable[[list[int], int, int, int], list[list[int]]]


@dataclass
class MusicData:
    """Training pieces as one id stream each (no BOS/EOS), and what was skipped."""

    pieces: list[list[int]]
    music: MusicSet

    @property
    def tokens(self) -> int:
        return sum(len(p) for p in self.pieces)

    def facts(self, tokenizer: MusicTokenizer) -> dict[str, Any]:
        """The figures a run reports about its music (``gentool info``, gentool.json)."""
        bars = sum(tokenizer.count_bars(p) for p in self.pieces)
        return {
            "pieces": len(self.pieces),
            "skipped_files": len(self.music.skipped),
            "music_tokens": self.tokens,
            "bars": bars,
            "tokens_per_bar": round(self.tokens / bars, 1) if bars else None,
            "vocab_size": len(tokenizer),
        }


def read_pieces(
    paths: Sequence[Path], tokenizer: MusicTokenizer, log: Callable[[str], None] | None = None
) -> MusicData:
    """The MIDI files of ``paths`` as token streams; skipped files are reported to ``log``."""
    music = read_music(paths)
    if log is not None and (line := music.report()):
        log(line)
    pieces = [tokenizer.encode(score) for score in music.scores]
    return MusicData([p for p in pieces if p], music)


def prompt_ids(tokenizer: MusicTokenizer, request: MusicRequest) -> list[int]:
    """The tokens every piece continues: the first bars of ``request.prompt``, or none."""
    if request.prompt is None:
        return []
    return tokenizer.prompt(read_midi(Path(request.prompt)), request.prompt_bars)


def new_tokens(request: MusicRequest) -> int:
    """How many tokens to sample per piece: enough for ``bars`` bars, else ``max_tokens``."""
    if request.bars is not None:
        return request.bars * TOKENS_PER_BAR
    return request.max_tokens


def compose(tokenizer: MusicTokenizer, request: MusicRequest, sample: Sampler) -> Iterator[Decoded]:
    """``request.num_samples`` pieces sampled with ``sample``: each stream is cut at the end
    of a piece (BOS or EOS) and to the bars asked for, then repaired and decoded; a stream
    with no note left is sampled again (RESAMPLE times, then a GentoolError)."""
    prompt = prompt_ids(tokenizer, request)
    prompt_bars = tokenizer.count_bars(prompt)
    ends = {tokenizer.bos_id, tokenizer.eos_id}
    max_new = new_tokens(request)
    wanted, attempt = request.num_samples, 0
    while wanted:
        if attempt > RESAMPLE:
            raise GentoolError(
                f"the model made {RESAMPLE + 1} token streams in a row with no playable note; "
                "train it longer, or lower --temperature"
            )
        rows = sample(prompt, wanted, max_new, attempt)
        for row in rows:
            new = list(row)
            end = next((k for k, i in enumerate(new) if i in ends), len(new))
            ids = prompt + new[:end]
            if request.bars is not None:
                ids = tokenizer.first_bars(ids, prompt_bars + request.bars)
            piece = tokenizer.decode(ids)
            if piece.usable and wanted:
                wanted -= 1
                yield piece
        attempt += 1


def compare(
    generated: Sequence[Decoded],
    held_out: MusicData,
    training: MusicData | None,
) -> dict[str, Any]:
    """The statistics of ``generated`` pieces beside those of the held-out pieces
    (gentool.music.stats): pitch-class histogram distance to the held-out set, pitch range,
    polyphony, notes per bar, share in key, empty bars; and copying, the longest token run
    shared with a training piece, for both sets (when the training pieces are given)."""
    from gentool.music.stats import CopyIndex, copying, histogram_distance, set_stats

    ours = set_stats([p.score for p in generated])
    theirs = set_stats(held_out.music.scores)
    out: dict[str, Any] = {
        "generated_pieces": len(generated),
        "heldout_pieces": len(held_out.pieces),
        "pitch_class_distance": histogram_distance(
            ours["pitch_class_histogram"], theirs["pitch_class_histogram"]
        ),
    }
    for name in ("pitch_range", "polyphony", "notes_per_bar", "in_key", "empty_bars", "bars"):
        out[f"{name}"] = ours[name]
        out[f"heldout_{name}"] = theirs[name]
    if training is not None:
        index = CopyIndex(training.pieces)
        out["copying_mean"] = copying([p.ids for p in generated], index)["mean"]
        out["heldout_copying_mean"] = copying(held_out.pieces, index)["mean"]
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}


def music_facts(tokenizer: MusicTokenizer) -> dict[str, Any]:
    """The tokenizer as ``gentool info`` shows it."""
    config = tokenizer.config
    return {
        "scheme": "REMI+" if config.programs else "REMI",
        "vocab_size": len(tokenizer),
        "positions_per_beat": config.positions_per_beat,
        "velocities": config.velocities,
        "tempos": config.tempos,
        "pitch_range": list(config.pitch_range),
    }
