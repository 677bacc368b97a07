"""The base class a model family implements, and the requests the CLI passes to it.

The CLI never asks which family it is talking to: it asks what the family can do
(``Family.tasks``) and calls the matching method. A family is registered through the
``register_models`` hook (see ``gentool.hookspecs``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from gentool.errors import PluginError
from gentool.recipes import NoTrainingOptions
from gentool.training import Runtime

# Task names a family may declare. The generic commands map onto them.
GENERATE_TEXT = "generate-text"
SCORE_TEXT = "score-text"  # evaluate: perplexity, bits per token
TRANSLATE = "translate"  # translate; evaluate --source/--target: BLEU, chrF, loss
GENERATE_IMAGE = "generate-image"
SCORE_IMAGES = "score-images"  # evaluate --data IMAGES: FID/KID, PSNR/SSIM, ...
RESTORE_IMAGE = "restore-image"


@dataclass(frozen=True)
class GenerationRequest:
    """What ``gentool generate`` asks for; families ignore options that do not apply."""

    prompt: str = ""
    num_samples: int = 1
    max_tokens: int = 100
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    num_beams: int = 1  # > 1: beam search (deterministic; temperature and top-k/p unused)
    repetition_penalty: float = 1.0  # > 1 discourages tokens already in the sequence
    class_label: int | None = None  # conditional image families: the class to draw
    interpolate: int = 0  # image families: > 1 gives each sample as a latent walk of N frames


# Families that sample many rows at once (the neural ones) draw at most this many per
# batch: the first samples print after one batch, and -n 200000 needs no 200000-row batch.
SAMPLE_BATCH = 32


def sample_batches(request: GenerationRequest) -> list[int]:
    """How many rows each batch of ``request`` samples: one batch under beam search (its
    best beams are the samples), else batches of at most SAMPLE_BATCH."""
    total = request.num_samples
    if request.num_beams > 1:
        return [total]
    return [min(SAMPLE_BATCH, total - start) for start in range(0, total, SAMPLE_BATCH)]


@dataclass(frozen=True)
class TranslationRequest:
    """What ``gentool translate`` asks for."""

    num_beams: int = 4
    length_penalty: float = 1.0  # > 1 favours longer outputs under beam search
    max_tokens: int | None = None  # most new tokens per sentence (None: the family's limit)


@dataclass
class TrainingContext:
    """What the core hands to ``Family.train`` besides the typed config.

    ``data`` are the training files (``--data`` or the recipe's ``[data] train``; the
    family's embedded default when neither is given), ``val`` an optional held-out
    file, ``seed`` the run's seed, ``log`` a function that prints progress to stderr
    (on the main process only). Neural families hand ``train``, ``run_dir`` and
    ``runtime`` to ``gentool.training.fit``.
    """

    data: list[Path]
    val: Path | None
    seed: int
    source: Path | None = None  # parallel data: aligned source / target files
    target: Path | None = None
    val_source: Path | None = None
    val_target: Path | None = None
    train: Any = None  # the recipe's [train] table: an instance of train_config_class
    log: Callable[[str], None] = print
    run_dir: Path | None = None  # where checkpoints and metrics.jsonl go while training
    runtime: Runtime = field(default_factory=Runtime)  # device, trackers, resume
    recipe: dict[str, Any] = field(default_factory=dict)  # the whole resolved recipe


class Family:
    """A model family: its name, what it can do, its config, and how it trains and loads.

    Subclasses set the class attributes and implement ``train``, ``save`` and ``load``,
    plus one method per declared task:

    ==================  =========================================================
    task                method
    ==================  =========================================================
    ``generate-text``   ``generate(request) -> list[str]`` (and, optionally,
                        ``generate_iter``: the same samples, yielded as made)
    ``score-text``      ``evaluate(paths) -> dict`` (metrics)
    ``translate``       ``translate(texts, request) -> list[str]`` and
                        ``evaluate_translation(source, target) -> dict``
    ``generate-image``  ``generate_images(request) -> list[PIL.Image.Image]``
    ``score-images``    ``evaluate_images(paths) -> dict`` (metrics)
    ``restore-image``   ``restore(images) -> list[PIL.Image.Image]``
    ==================  =========================================================

    ``tasks`` on the class lists every task the family's models may support; a family
    whose models differ (a decoder LM or a translator) sets ``self.tasks`` on each model
    to what that model supports, and the commands check the model's.

    ``export_formats`` lists what ``gentool export --format`` accepts (``export``), and
    ``import_formats`` what ``gentool import`` reads (``import_model``).
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    tasks: tuple[str, ...] = ()  # a model (instance) may narrow it
    config_class: ClassVar[type]  # a dataclass: the recipe's [model] table
    train_config_class: ClassVar[type] = NoTrainingOptions  # the recipe's [train] table
    export_formats: ClassVar[tuple[str, ...]] = ()
    import_formats: ClassVar[tuple[str, ...]] = ()
    #: The embedded training data used when no --data is given (None: --data required).
    default_data: ClassVar[Path | None] = None

    # -- training and persistence -------------------------------------------------
    @classmethod
    def train(cls, config: Any, context: TrainingContext) -> Family:
        raise NotImplementedError

    def save(self, directory: Path) -> dict[str, Any]:
        """Write the model's files into ``directory`` (a fresh temporary directory that
        becomes the run once complete). Return the metrics summary for gentool.json."""
        raise NotImplementedError

    @classmethod
    def load(cls, directory: Path, config: Any) -> Family:
        raise NotImplementedError

    # -- tasks ----------------------------------------------------------------------
    def generate(self, request: GenerationRequest) -> list[str]:
        raise NotImplementedError

    def generate_iter(self, request: GenerationRequest) -> Iterator[str]:
        """``generate``'s samples, each yielded as soon as it is made: what ``gentool
        generate`` prints from, so the first sample shows at once and a closed pipe stops
        the rest. A family that makes samples one by one (or in small batches) overrides
        this, and ``generate`` becomes ``list(self.generate_iter(request))``."""
        yield from self.generate(request)

    def evaluate(self, paths: Sequence[Path]) -> dict[str, Any]:
        raise NotImplementedError

    def translate(self, texts: Sequence[str], request: TranslationRequest) -> list[str]:
        raise NotImplementedError

    def evaluate_translation(self, source: Path, target: Path) -> dict[str, Any]:
        raise NotImplementedError

    def generate_images(self, request: GenerationRequest) -> list[Any]:
        raise NotImplementedError

    def evaluate_images(self, paths: Sequence[Path]) -> dict[str, Any]:
        raise NotImplementedError

    def restore(self, images: Sequence[Any]) -> list[Any]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Facts for ``gentool info``: sizes, vocabulary, statistics (JSON-serialisable)."""
        return {}

    def export(self, fmt: str, path: Path) -> None:
        """Write the model in the format ``fmt`` (one of ``export_formats``) to ``path``, as
        a whole or not at all (write it under ``gentool.runs.atomic_path``). gentool has
        checked the place: outside every run directory, replaced only with --force."""
        raise NotImplementedError

    @classmethod
    def import_model(cls, fmt: str, path: Path) -> tuple[Family, Any]:
        """Read a model in a foreign format; return it and the config it corresponds to."""
        raise NotImplementedError


def check_family(obj: object) -> type[Family]:
    """Validate what a plugin passed to ``register``; raise PluginError saying what is wrong."""
    if not (isinstance(obj, type) and issubclass(obj, Family)):
        raise PluginError(f"register() takes a gentool.family.Family subclass, got {obj!r}")
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise PluginError(f"family {obj.__qualname__} needs a `name` that is an identifier")
    if not dataclasses.is_dataclass(getattr(obj, "config_class", None)):
        raise PluginError(f"family '{name}' needs a dataclass `config_class`")
    return obj
