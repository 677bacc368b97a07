"""What a model can do: one small interface per task, and the requests commands pass.

A kind of model (``gentool.model.Model``) states its tasks by implementing these
interfaces; the core derives ``Model.tasks()`` from them and checks, when the plugin
registers the kind, that every abstract method is implemented. A command asks for a
capability (``isinstance(model, TextGeneration)``), never for a family.

Adding a task is adding one interface here (and listing it in ``CAPABILITIES``), plus the
``gentool.api`` function and command that use it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

# -- requests -------------------------------------------------------------------------------


@dataclass(frozen=True)
class GenerationRequest:
    """What ``gentool generate`` asks for; a model ignores options that do not apply to it."""

    prompt: str = ""
    num_samples: int = 1
    max_tokens: int = 100
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    num_beams: int = 1  # > 1: beam search (deterministic; temperature and top-k/p unused)
    repetition_penalty: float = 1.0  # > 1 discourages tokens already in the sequence
    class_label: int | None = None  # conditional image models: the class to draw
    interpolate: int = 0  # image models: > 1 gives each sample as a latent walk of N frames


@dataclass(frozen=True)
class TranslationRequest:
    """What ``gentool translate`` asks for."""

    num_beams: int = 4
    length_penalty: float = 1.0  # > 1 favours longer outputs under beam search
    max_tokens: int | None = None  # most new tokens per sentence (None: the model's limit)


@dataclass(frozen=True)
class MusicRequest:
    """What ``gentool generate`` asks of a music model.

    A piece is ``bars`` bars long when given (sampled up to ``TOKENS_PER_BAR`` tokens a bar,
    then cut), else ``max_tokens`` new tokens (a piece also ends where the model ends it).
    ``prompt`` is a MIDI file whose first ``prompt_bars`` bars every piece continues.
    """

    num_samples: int = 1
    max_tokens: int = 1024
    bars: int | None = None
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    prompt: Path | None = None
    prompt_bars: int = 2


# A REMI bar of a four-part chorale is about 75 tokens; --bars N samples up to this many a bar.
TOKENS_PER_BAR = 128


# Models that sample many rows at once (the neural ones) draw at most this many per batch:
# the first samples print after one batch, and -n 200000 needs no 200000-row batch.
SAMPLE_BATCH = 32


def sample_batches(request: GenerationRequest) -> list[int]:
    """How many rows each batch of ``request`` samples: one batch under beam search (its
    best beams are the samples), else batches of at most SAMPLE_BATCH."""
    total = request.num_samples
    if request.num_beams > 1:
        return [total]
    return [min(SAMPLE_BATCH, total - start) for start in range(0, total, SAMPLE_BATCH)]


# -- capabilities -----------------------------------------------------------------------------


class Capability(ABC):  # noqa: B024 (a marker base: the tasks below add the abstract methods)
    """Base of the task interfaces. ``task`` is the name commands and gentool.json use."""

    task: ClassVar[str]


class TextGeneration(Capability):
    """``gentool generate`` for text."""

    task = "generate-text"

    @abstractmethod
    def generate(self, request: GenerationRequest) -> Iterator[str]:
        """Yield ``request.num_samples`` samples, each as soon as it is made (the CLI prints
        it at once, so ``| head -1`` ends the command early)."""

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        """The first sample of ``request`` in pieces, each yielded as soon as it is made:
        ``request.prompt`` followed by the pieces is the sample (``generate --stream``, and
        the server's ``stream: true``). By default the whole continuation comes as one
        piece; a kind that makes its tokens one by one overrides this to yield them."""
        for sample in self.generate(replace(request, num_samples=1)):
            yield sample[len(request.prompt) :] if sample.startswith(request.prompt) else sample
            return

    def count_tokens(self, text: str) -> int | None:
        """How many tokens ``text`` is to this model (the server's ``usage``): None when the
        kind cannot tell cheaply, the default."""
        return None

    def generate_batch(self, requests: Sequence[GenerationRequest]) -> list[list[str]]:
        """The samples of each request, for requests that arrived together (the server's
        dynamic batching): the same as ``generate`` on each, which is the default. A kind
        that can compute several prompts in one pass overrides this (an unseeded request
        may then draw other samples than alone; a seeded one must not)."""
        return [list(self.generate(request)) for request in requests]


class TextScoring(Capability):
    """``gentool evaluate --data TEXT``: perplexity and bits per token."""

    task = "score-text"
    #: The field of a table's rows that ``evaluate_text`` reads (None: ``text``): a run's
    #: ``data.text_field``, set when the run is loaded, so that held-out rows are read as
    #: the training rows were.
    text_field: str | None = None

    @abstractmethod
    def evaluate_text(self, paths: Sequence[Path]) -> dict[str, Any]:
        """Score the text files (tables: their ``text_field``); the metrics dict of
        docs/cli.md (tokens, perplexity, ...)."""


class Translation(Capability):
    """``gentool translate``; ``gentool evaluate --source --target``: BLEU, chrF, loss."""

    task = "translate"

    @abstractmethod
    def translate(self, texts: Sequence[str], request: TranslationRequest) -> list[str]:
        """One translation per text, in order."""

    @abstractmethod
    def evaluate_translation(self, source: Path, target: Path) -> dict[str, Any]:
        """Score translations of ``source`` against the references in ``target``."""


class ImageGeneration(Capability):
    """``gentool generate`` for images (``--grid`` / ``--out-dir``)."""

    task = "generate-image"

    @abstractmethod
    def generate_images(self, request: GenerationRequest) -> list[Any]:
        """``request.num_samples`` PIL images (times ``request.interpolate`` frames)."""

    def classes(self) -> list[str]:
        """The class names a conditional model draws (``--class``); [] when unconditional."""
        return []


class ImageScoring(Capability):
    """``gentool evaluate --data IMAGES``: FID/KID, PSNR/SSIM, ..."""

    task = "score-images"

    @abstractmethod
    def evaluate_images(
        self,
        paths: Sequence[Path],
        feature_space: str = "classifier",
        feature_weights: Path | None = None,
    ) -> dict[str, Any]:
        """Score the model against the real images in ``paths``; ``feature_space`` names
        where FID/KID are computed ("classifier": the plugin's offline default;
        "inception": the published FID's network, its weights read from
        ``feature_weights``); a model with no such scores refuses anything but the default."""


class ImageRestoration(Capability):
    """``gentool restore``: an image in, the restored image out."""

    task = "restore-image"

    @abstractmethod
    def restore(self, images: Sequence[Any]) -> list[Any]:
        """One restored PIL image per input image."""


class MusicGeneration(Capability):
    """``gentool generate -o piece.mid`` for symbolic music (MIDI)."""

    task = "generate-music"

    @abstractmethod
    def music_tokenizer(self) -> Any:
        """The run's ``gentool.data.music.MusicTokenizer`` (what its tokens mean)."""

    @abstractmethod
    def generate_music(self, request: MusicRequest) -> Iterator[Any]:
        """Yield ``request.num_samples`` pieces, each a ``gentool.data.music.Decoded`` that is
        ``usable`` (a stream that decodes to no note is sampled again, never yielded)."""


class MusicScoring(Capability):
    """``gentool evaluate --data MIDI``: cross-entropy and perplexity of held-out pieces'
    tokens (the same REMI tokens for every family, so their figures compare)."""

    task = "score-music"

    @abstractmethod
    def evaluate_music(self, paths: Sequence[Path]) -> dict[str, Any]:
        """Score the MIDI files of ``paths``: tokens, cross_entropy, perplexity, ..."""


class ImageTranslation(Capability):
    """``gentool transform``: an image of domain A in, its translation to domain B out
    (``reverse``: B to A, for models that go both ways); ``gentool evaluate --data A
    --target B`` scores translations against the images of B."""

    task = "translate-image"

    @abstractmethod
    def transform(self, images: Sequence[Any], reverse: bool = False) -> list[Any]:
        """One translated PIL image per input, of the input's size; ``reverse`` on a model
        that goes one way only is a GentoolError saying so."""

    @abstractmethod
    def evaluate_domains(
        self,
        data: Sequence[Path],
        target: Path | None,
        feature_space: str = "classifier",
        feature_weights: Path | None = None,
    ) -> dict[str, Any]:
        """Score translations of the A images ``data`` against the B images ``target``
        (None: ``data`` is one ``.npz`` holding arrays ``a`` and ``b``); ``feature_space``
        and ``feature_weights`` as for ``ImageScoring.evaluate_images``."""


#: Every task interface, in the order ``gentool models`` lists tasks.
CAPABILITIES: tuple[type[Capability], ...] = (
    TextGeneration,
    TextScoring,
    Translation,
    ImageGeneration,
    ImageScoring,
    ImageRestoration,
    MusicGeneration,
    MusicScoring,
    ImageTranslation,
)

GENERATE_TEXT = TextGeneration.task
SCORE_TEXT = TextScoring.task
TRANSLATE = Translation.task
GENERATE_IMAGE = ImageGeneration.task
SCORE_IMAGES = ImageScoring.task
RESTORE_IMAGE = ImageRestoration.task
GENERATE_MUSIC = MusicGeneration.task
SCORE_MUSIC = MusicScoring.task
TRANSLATE_IMAGE = ImageTranslation.task


def tasks_of(cls: type) -> tuple[str, ...]:
    """The tasks a model class implements, from the interfaces it subclasses."""
    return tuple(c.task for c in CAPABILITIES if issubclass(cls, c))


def capability(task: str) -> type[Capability]:
    """The interface of the task named ``task``."""
    for c in CAPABILITIES:
        if c.task == task:
            return c
    raise KeyError(task)
