"""The gan ``music`` kind: multi-track piano-roll phrases, in the spirit of MuseGAN.

The data decides it: ``gentool train gan --data chorales/`` (MIDI files) trains this kind,
as it trains the music kinds of ngram, rnn and transformer. Each piece in 4/4 becomes
phrases of ``model.bars`` bars on a sixteenth-note grid, one plane per track
(``gentool_gan.rolls``); a DCGAN-like pair learns them on the same engine as the image
generator (``gentool_gan.composition``). Generating draws phrases from noise, binarizes
them and writes MIDI through the same output path as the sequence families.

A run holds ``model.safetensors`` (generator, critic, the generator's moving average),
``config.json`` (the networks and the roll layout: tracks, pitch range, tempo),
``music_tokenizer.json`` (REMI, to measure copying against the training pieces as every
music kind does) and ``samples.png`` (a piano roll of one phrase). It scores no tokens:
``gentool evaluate`` gives the statistics of generated pieces, and no perplexity.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from gentool.data.music import Decoded, MusicTokenizer, MusicTokenizerConfig, read_music
from gentool.errors import GentoolError
from gentool.kinds import MUSIC
from gentool.model import FromRun, TrainingContext
from gentool.runs import is_main_process
from gentool.tasks import MusicGeneration, MusicRequest
from gentool_gan.base import GanModel, count_parameters
from gentool_gan.configs import ComposerConfig, ComposerTrainConfig, check_composer

if TYPE_CHECKING:
    from gentool.neural.engine import FitResult
    from gentool_gan.composition import RollTask
    from gentool_gan.generation import GenerationPair
    from gentool_gan.rolls import Layout, Rolls

# A piece whose rolls binarize to no note is drawn again (new noise) this many times.
REDRAW = 8


@dataclass
class PhraseData:
    """The training phrases and the held-out ones (``--val``, else the last pieces)."""

    train: Rolls
    val: Rolls | None
    layout: Layout

    def counts(self) -> dict[str, int]:
        skipped = len(self.train.skipped) + (len(self.val.skipped) if self.val else 0)
        return {
            "train_pieces": self.train.pieces,
            "train_phrases": len(self.train.phrases),
            "val_phrases": len(self.val.phrases) if self.val is not None else 0,
            "skipped_files": skipped,
        }


class PianoRollGenerator(GanModel, MusicGeneration, FromRun):
    """A trained piano-roll GAN: draws phrases of music, writes them as MIDI."""

    kind = "music"
    description = "MuseGAN-style multi-track piano-roll phrases (MIDI in, MIDI out)"
    config_class = ComposerConfig
    train_config_class = ComposerTrainConfig
    trains_on: ClassVar[str | None] = MUSIC
    default_data: ClassVar[Path | None] = None

    def __init__(
        self,
        pair: GenerationPair,
        spec: dict[str, Any],
        tokenizer: MusicTokenizer,
        metrics: dict[str, Any] | None = None,
        samples: Any = None,
    ) -> None:
        from gentool_gan.rolls import Layout

        self.pair = pair.eval()
        self.spec = spec
        self.layout = Layout.from_dict(spec)
        self.tokenizer = tokenizer
        self.metrics = metrics or {}
        self.samples = samples

    @property
    def network(self) -> GenerationPair:
        return self.pair

    # -- training -----------------------------------------------------------------------------
    @classmethod
    def check_config(cls, config: ComposerConfig, train: ComposerTrainConfig) -> None:
        check_composer(config)
        super().check_config(config, train)

    @classmethod
    def read_training_data(
        cls, config: ComposerConfig, context: TrainingContext[Any]
    ) -> PhraseData:
        """Phrases of the pieces in 4/4; held out: ``--val``, else the last
        ``train.val_fraction`` of the pieces (whole pieces, so no phrase is in both)."""
        from gentool_gan.rolls import in_four_four, make_layout, read_rolls

        music = read_music(context.data)
        if line := music.report():
            context.log(line)
        held = None
        if context.val is not None:
            held = read_music([context.val])
        elif len(music) > 2 and context.train.val_fraction > 0:
            cut = len(music) - max(1, math.floor(len(music) * context.train.val_fraction))
            held = type(music)(music.pieces[cut:])
            music = type(music)(music.pieces[:cut], music.skipped)
        metred = [p.score for p in music.pieces if in_four_four(p.score)]
        layout = make_layout(metred or music.scores, config.tracks)
        train = read_rolls(music, layout, config.bars)
        if train.skipped:
            first, count = next(iter(train.skipped.values())), len(train.skipped)
            context.log(f"left out {count} piece(s) the gan cannot use; first: {first}")
        train.skipped = {**music.skipped, **train.skipped}
        val = read_rolls(held, layout, config.bars, required=False) if held else None
        return PhraseData(train, val, layout)

    @classmethod
    def training_line(cls, config: ComposerConfig, counts: dict[str, int]) -> str:
        return (
            f"training a gan music model ({config.bars}-bar phrases, {config.loss} loss) on "
            f"{counts['train_phrases']} phrases of {counts['train_pieces']} pieces "
            f"({counts['val_phrases']} held out)"
        )

    @classmethod
    def make_task(
        cls,
        config: ComposerConfig,
        context: TrainingContext[ComposerTrainConfig],
        data: PhraseData,
    ) -> tuple[RollTask, dict[str, Any]]:
        import torch

        from gentool_gan.composition import RollTask, build_pair

        train = context.train
        spec = {
            "task": "music",
            "bars": config.bars,
            **data.layout.to_dict(),
            "latent_size": config.latent_size,
            "width": config.width,
            "loss": config.loss,
            "spectral_norm": config.spectral_norm,
            "ema": train.ema_decay > 0,
            "data": data.counts(),
        }
        val = data.val
        task = RollTask(
            build_pair(spec, train.label_smoothing, train.gp_weight),
            train,
            torch.from_numpy(data.train.phrases),
            None,
            torch.from_numpy(val.phrases) if val is not None and len(val.phrases) else None,
            None,
            seed=context.seed,
            run_dir=context.run_dir,
            loss_kind=config.loss,
        )
        task.layout = data.layout
        density = float(data.train.phrases.mean()) / 255
        task.model.generator.start_sparse(density)  # type: ignore[operator]
        if is_main_process() and not context.runtime.resume:
            tokenizer(context.run_dir)  # (written at once: a resumed run reads the same)
        return task, spec

    @classmethod
    def trained(
        cls, spec: dict[str, Any], task: RollTask, result: FitResult, metrics: dict[str, Any]
    ) -> PianoRollGenerator:
        from gentool.music.pianoroll import draw_pianoroll
        from gentool_gan.composition import SAMPLE_SEED, calibrated, phrases
        from gentool_gan.generation import trained_figures
        from gentool_gan.rolls import roll_score

        pair: GenerationPair = result.model  # type: ignore[assignment]
        layout = task.layout
        layout.thresholds = calibrated(pair, layout, task.images.numpy())
        spec = {**spec, "thresholds": layout.thresholds}
        metrics.update(trained_figures(task, result))
        roll = phrases(pair, SAMPLE_SEED, 1, layout)[0]
        samples = draw_pianoroll(roll_score(roll, layout), "samples")
        return cls(pair, spec, tokenizer(task.run_dir), metrics, samples)

    # -- persistence --------------------------------------------------------------------------
    def save(self, directory: Path) -> dict[str, Any]:
        self.tokenizer.save(directory)
        return super().save(directory)

    @classmethod
    def load(cls, directory: Path, config: ComposerConfig) -> PianoRollGenerator:
        from gentool_gan.composition import build_pair

        spec = cls.read_spec(directory)
        pair = cls.load_network(lambda: build_pair(spec), directory)
        return cls(pair, spec, MusicTokenizer.load(directory))

    # -- tasks --------------------------------------------------------------------------------
    def music_tokenizer(self) -> MusicTokenizer:
        return self.tokenizer

    def generate_music(self, request: MusicRequest) -> Iterator[Decoded]:
        """``num_samples`` pieces of ``bars`` bars (one phrase when not given), each phrases
        side by side; ``temperature`` scales the noise. Sampling options of token models
        (top-k/p, the token count) do not apply; a prompt cannot be continued."""
        from gentool_gan.composition import phrases
        from gentool_gan.rolls import STEPS_PER_BAR, roll_score

        if request.prompt is not None:
            raise GentoolError(
                "--prompt: the gan draws whole phrases from noise and cannot continue a piece; "
                "drop --prompt (or continue it with an ngram, rnn or transformer run)"
            )
        phrase_bars = int(self.spec["bars"])
        bars = request.bars or phrase_bars
        per_piece = math.ceil(bars / phrase_bars)
        wanted, attempt = request.num_samples, 0
        seed = request.seed
        while wanted:
            if attempt > REDRAW:
                raise GentoolError(
                    f"the model drew {REDRAW + 1} sets of pieces with no note; train it longer"
                )
            drawn = None if seed is None else seed + attempt
            rolls = phrases(self.pair, drawn, wanted, self.layout, per_piece, request.temperature)
            for roll in rolls:
                score = roll_score(roll[:, : bars * STEPS_PER_BAR], self.layout)
                if score.note_num() and wanted:
                    wanted -= 1
                    yield Decoded(score, self.tokenizer.encode(score), score.note_num(), bars, {})
            attempt += 1

    def describe(self) -> dict[str, Any]:
        return {
            "task": "music",
            "bars": self.spec["bars"],
            "tracks": self.layout.names,
            "programs": self.layout.programs,
            "monophonic": self.layout.monophonic,
            "pitch_range": [self.layout.low, self.layout.low + self.layout.pitches - 1],
            "latent_size": self.spec["latent_size"],
            "width": self.spec["width"],
            "loss": self.spec["loss"],
            "spectral_norm": self.spec["spectral_norm"],
            "ema": self.spec["ema"],
            "parameters": count_parameters(self.pair.generator),
            "parameters_d": count_parameters(self.pair.discriminator),
            "data": self.spec.get("data", {}),
        }


def tokenizer(run_dir: Path | None) -> MusicTokenizer:
    """The run's REMI tokenizer (for copying, and ``gentool info``): the one saved in it,
    else a new one (REMI+, as the sequence families' default) saved there."""
    if run_dir is not None and (run_dir / "music_tokenizer.json").is_file():
        return MusicTokenizer.load(run_dir)
    made = MusicTokenizer(MusicTokenizerConfig(programs=True))
    if run_dir is not None and is_main_process():
        made.save(run_dir)
    return made
