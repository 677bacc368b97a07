"""``MusicStreamModel``: a language model of music's REMI tokens (``gentool.data.music``),
for any network that reads one token stream (the rnn's, the transformer LM's).

The pieces become one stream, ``BOS piece BOS piece ... BOS``: BOS starts, separates and
ends them, so a sampled BOS ends a piece, and scoring predicts every token of a piece and
its end, as ngram's ``</s>`` does (the perplexities of the families compare). The tokenizer
is miditok's, saved in the run as ``music_tokenizer.json`` (JSON, no pickle) beside the
Hugging Face model. Nothing here imports torch at module level.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from gentool.data.music import Decoded, MusicTokenizer, MusicTokenizerConfig
from gentool.errors import DataError
from gentool.kinds import MUSIC
from gentool.model import TrainingContext
from gentool.music.compose import MusicData, compose, read_pieces
from gentool.neural.config import StreamTrainConfig
from gentool.neural.streams import LN2, StreamModel
from gentool.runs import is_main_process
from gentool.tasks import GenerationRequest, MusicGeneration, MusicRequest, MusicScoring

if TYPE_CHECKING:
    import torch


def music_stream(pieces: Sequence[Sequence[int]], bos: int) -> torch.Tensor:
    """``BOS piece BOS piece ... BOS`` as one tensor of ids."""
    import torch

    ids = [bos]
    for piece in pieces:
        ids += [*piece, bos]
    return torch.tensor(ids, dtype=torch.long)


class MusicStreamModel(StreamModel, MusicGeneration, MusicScoring):
    """A language model of REMI music tokens; a network class adds the four stream steps."""

    trains_on: ClassVar[str | None] = MUSIC
    special_tokens: ClassVar[tuple[str, ...]] = ()  # (the music tokenizer has its own)

    # -- training -------------------------------------------------------------------------------
    @classmethod
    def read_data(cls, config: Any, context: TrainingContext[Any]) -> list[Path]:
        return list(context.data)  # read once the tokenizer is known (it may be the run's)

    @classmethod
    def new_tokenizer(cls, config: Any, data: Any) -> MusicTokenizer:
        if getattr(config, "init", ""):  # a run started from another keeps its tokenizer
            return MusicTokenizer.load(Path(config.init))
        return MusicTokenizer(MusicTokenizerConfig(programs=config.programs))

    @classmethod
    def run_tokenizer(cls, config: Any, context: TrainingContext[Any], data: Any) -> Any:
        if context.runtime.resume:
            return MusicTokenizer.load(context.run_dir)
        tokenizer = cls.new_tokenizer(config, data)
        if is_main_process():
            tokenizer.save(context.run_dir)
        return tokenizer

    @classmethod
    def bos_of(cls, tokenizer: Any) -> int:
        return int(tokenizer.bos_id)

    @classmethod
    def streams(
        cls, config: Any, context: TrainingContext[Any], tokenizer: Any, data: list[Path]
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The training pieces as one stream; held out: ``--val``'s pieces, else the last
        ``train.val_fraction`` of the pieces (whole pieces: none is cut in two)."""
        train: StreamTrainConfig = context.train
        music = read_pieces(data, tokenizer, context.log)
        pieces, held = music.pieces, []
        if context.val is not None:
            held = read_pieces([context.val], tokenizer).pieces
        elif len(pieces) > 1 and train.val_fraction > 0:
            cut = len(pieces) - max(1, math.floor(len(pieces) * train.val_fraction))
            pieces, held = pieces[:cut], pieces[cut:]
        context.log(
            f"music: {len(music.pieces)} pieces, {music.tokens} REMI tokens "
            f"({len(held)} pieces held out)"
        )
        bos = int(tokenizer.bos_id)
        return music_stream(pieces, bos), (music_stream(held, bos) if held else None)

    def save(self, directory: Path) -> dict[str, Any]:
        self.model.save_pretrained(str(directory))
        self.tokenizer.save(directory)
        return self.metrics

    @classmethod
    def tokenizer_loader(cls, directory: Path) -> Callable[[], Any] | None:
        return lambda: MusicTokenizer.load(directory)

    # -- tasks ----------------------------------------------------------------------------------
    def suppressed(self) -> list[int]:
        return [self.tokenizer.pad_id, self.tokenizer.eos_id]  # BOS ends a piece

    def logits_processors(self) -> list[Any]:
        """Sampling follows REMI's grammar (``MusicTokenizer.grammar``): a token that
        cannot follow the previous one is never drawn, so even a model that has learnt
        little writes notes rather than token salad."""
        import torch
        from transformers import LogitsProcessor

        allowed = torch.from_numpy(self.tokenizer.grammar())

        class Grammar(LogitsProcessor):
            def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
                mask = allowed.to(scores.device)[input_ids[:, -1]]
                width = min(mask.shape[1], scores.shape[1])
                out = torch.full_like(scores, -math.inf)
                out[:, :width] = scores[:, :width].masked_fill(~mask[:, :width], -math.inf)
                return out

        return [Grammar()]

    def music_tokenizer(self) -> MusicTokenizer:
        return self.tokenizer

    def generate_music(self, request: MusicRequest) -> Iterator[Decoded]:
        import torch

        def sample(prompt: list[int], rows: int, max_new: int, attempt: int) -> list[list[int]]:
            if request.seed is not None:  # each attempt seeded: the same seed, the same pieces
                torch.manual_seed(request.seed + attempt)
            asked = GenerationRequest(
                max_tokens=max_new,
                temperature=request.temperature,
                top_k=request.top_k,
                top_p=request.top_p,
            )
            out: list[list[int]] = []
            for start in range(0, rows, 32):
                batch = dataclasses.replace(asked, num_samples=min(32, rows - start))
                out += self.continue_ids([self.tokenizer.bos_id, *prompt], batch).tolist()
            return out

        return compose(self.tokenizer, request, sample)

    def evaluate_music(self, paths: Sequence[Path]) -> dict[str, Any]:
        data: MusicData = read_pieces(paths, self.tokenizer)
        if not data.pieces:
            raise DataError(f"'{paths[0]}' has no music tokens to score")
        ids = music_stream(data.pieces, self.tokenizer.bos_id)
        started = time.perf_counter()
        total = self.stream_loss(ids)
        loss = total / (len(ids) - 1)
        return {
            "pieces": len(data.pieces),
            "skipped_files": len(data.music.skipped),
            "tokens": len(ids) - 1,
            "cross_entropy": loss,
            "perplexity": math.exp(loss),
            "bits_per_token": loss / LN2,
            "seconds": time.perf_counter() - started,
        }
