"""The ngram family's music kind: a Markov chain over REMI tokens (``gentool.data.music``).

Each piece is one "sentence" of token strings (``Bar_None``, ``Pitch_60`` ...), so the
n-gram machinery is the text model's; the run also holds the music tokenizer's JSON.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gentool.data.music import Decoded, MusicTokenizer, MusicTokenizerConfig
from gentool.kinds import MUSIC
from gentool.model import TrainingContext
from gentool.music.compose import compose, read_pieces
from gentool.tasks import MusicGeneration, MusicRequest, MusicScoring
from gentool_ngram.family import NGramBase, NGramSettings
from gentool_ngram.lm import NGramLM


@dataclass
class NGramMusicConfig(NGramSettings):
    """The [model] table of an ngram recipe on music."""

    order: int = 5  # a bar of a chorale is ~75 tokens: short contexts barely hold a chord
    programs: bool = True  # REMI+: a Program token before each note (tracks kept apart)


class NGramMusic(NGramBase, MusicGeneration, MusicScoring):
    family = "ngram"
    kind = "music"
    description = "Markov chain of order N over REMI music tokens (MIDI in, MIDI out)"
    config_class = NGramMusicConfig
    trains_on = MUSIC

    def __init__(
        self,
        lm: NGramLM,
        config: Any,
        directory: Path | None = None,
        tokenizer: MusicTokenizer | None = None,
    ) -> None:
        super().__init__(lm, config, directory)
        self.tokenizer = tokenizer or MusicTokenizer.load(directory or Path("."))

    @classmethod
    def train(cls, config: NGramMusicConfig, context: TrainingContext[Any]) -> NGramMusic:
        started = time.perf_counter()
        tokenizer = MusicTokenizer(MusicTokenizerConfig(programs=config.programs))
        data = read_pieces(context.data, tokenizer, context.log)
        lm = NGramLM.estimate(
            [tokenizer.tokens(p) for p in data.pieces],
            order=config.order,
            smoothing=config.smoothing,
            k=config.k,
            alpha=config.alpha,
            discount_fallback=tuple(config.discount_fallback),  # type: ignore[arg-type]
        )
        model = cls(lm, config, tokenizer=tokenizer)
        model.training = {
            **data.facts(tokenizer),
            "ngrams": lm.ngram_counts(),
            "train_seconds": round(time.perf_counter() - started, 3),
        }
        if context.val is not None:
            val = model.evaluate_music([context.val])
            model.training.update({f"val_{k}": v for k, v in val.items()})
        context.log(
            f"ngram order {config.order} on {len(data.pieces)} pieces ({data.tokens} REMI "
            f"tokens), vocabulary {len(lm.vocab)}"
        )
        return model

    def save(self, directory: Path) -> dict[str, Any]:
        self.tokenizer.save(directory)
        return super().save(directory)

    # -- tasks --------------------------------------------------------------------------
    def music_tokenizer(self) -> MusicTokenizer:
        return self.tokenizer

    def generate_music(self, request: MusicRequest) -> Iterator[Decoded]:
        rng = np.random.default_rng(request.seed)

        def sample(prompt: list[int], rows: int, max_new: int, attempt: int) -> list[list[int]]:
            start = self.tokenizer.tokens(prompt)
            return [
                self.tokenizer.ids(self.sample_tokens(start, max_new, rng, request))
                for _ in range(rows)
            ]

        return compose(self.tokenizer, request, sample)

    def evaluate_music(self, paths: Sequence[Path]) -> dict[str, Any]:
        data = read_pieces(paths, self.tokenizer)
        scores = self.lm.score([self.tokenizer.tokens(p) for p in data.pieces])
        bits = scores.bits_per_token()
        return {
            "pieces": len(data.pieces),
            "skipped_files": len(data.music.skipped),
            "tokens": scores.num_tokens,
            "oov": scores.num_oov,
            "cross_entropy": bits * float(np.log(2)),
            "perplexity": scores.perplexity(include_oov=True),
            "bits_per_token": bits,
        }
