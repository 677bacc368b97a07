"""gentool.testing: every built-in kind passes the conformance kit, so do small kinds of
each task written here, and the kit catches real defects (each kind below breaks exactly
one promise)."""

from __future__ import annotations

import dataclasses
import json
import pickle
import random
import shutil
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
from gentool_hello import HelloModel

from gentool import recipes, runs
from gentool.api import ParallelPaths
from gentool.data import read_parallel
from gentool.data.images import read_images
from gentool.errors import RecipeError
from gentool.family import Family
from gentool.kinds import MUSIC, PARALLEL, route
from gentool.model import Model, TrainingContext
from gentool.plugins import get_registry
from gentool.tasks import (
    GenerationRequest,
    ImageGeneration,
    ImageRestoration,
    ImageScoring,
    TextGeneration,
    Translation,
    TranslationRequest,
)
from gentool.testing import (
    CHECKS,
    SAMPLE_SHAPES,
    ConformanceError,
    check_family,
    check_model,
    data_sort,
    registered,
    sample_lines,
    sample_pairs,
    skippable_checks,
    write_sample_corpus,
    write_sample_images,
    write_sample_parallel,
)

# -- every built-in kind ------------------------------------------------------------------------

RNN = ["model.hidden_size=16", "model.embedding_size=8", "model.num_layers=1"]
TRANSFORMER = ["model.d_model=16", "model.num_layers=1", "model.num_heads=2", "model.d_ff=32",
               "model.context_length=32"]  # fmt: skip
NEURAL = ["train.max_steps=2", "train.batch_size=4", "train.eval_batches=1"]
MUSIC_STEPS = ["train.max_steps=20", "train.batch_size=4", "train.eval_batches=1"]
GAN = ["model.width=4", "train.sample_every=0", *NEURAL]

# Every kind built into gentool (and the test plugin's), by its family and the --set values
# that select it and make its run tiny. Adding a kind is one line; the test below it fails
# until the line is here.
KINDS: dict[str, tuple[str, list[str]]] = {
    "ngram": ("ngram", []),
    "ngram-music": ("ngram", []),
    "hello": ("hello", []),
    "rnn": ("rnn", [*NEURAL, "train.seq_len=16", *RNN]),
    "transformer-lm": (
        "transformer",
        ["model.arch=decoder", *NEURAL, "train.seq_len=16", *TRANSFORMER],
    ),  # fmt: skip
    "transformer-translator": (
        "transformer",
        ["model.arch=encoder-decoder", *NEURAL, "train.bleu_pairs=2", *TRANSFORMER],
    ),  # fmt: skip
    # Music kinds sample under REMI's grammar: a few steps give playable notes.
    "rnn-music": ("rnn", [*MUSIC_STEPS, "train.seq_len=16", *RNN]),
    "transformer-music": ("transformer", [*MUSIC_STEPS, "train.seq_len=16", *TRANSFORMER]),
    "gan-generator": ("gan", ["model.task=generate", "model.latent_size=8", *GAN]),
    "gan-restorer": ("gan", ["model.task=colorize", "model.image_size=16", *GAN]),
    "gan-paired": ("gan", ["model.task=paired", "model.image_size=16", *GAN]),
    "gan-cyclegan": ("gan", ["model.task=cyclegan", "model.image_size=16", *GAN]),
    "gan-music": (
        "gan",
        ["model.width=4", "model.latent_size=8", "train.sample_every=0", *MUSIC_STEPS],
    ),  # fmt: skip
}


def kind_of(family: str, overrides: list[str], name: str = "") -> type[Model]:
    """The kind ``gentool train FAMILY --set ...`` trains, on text or on parallel data; or
    on music, for the kinds named ``...-music`` in KINDS."""
    raw = recipes.with_overrides({"family": family}, overrides)
    for data in (MUSIC,) if name.endswith("-music") else (None, PARALLEL):
        try:
            return route(get_registry(), family, raw, data)[0]
        except RecipeError:
            continue
    raise AssertionError(f"{family} {overrides} selects no kind")


@pytest.mark.parametrize("name", sorted(KINDS))
def test_builtin_kind_conforms(name: str, tmp_path: Path) -> None:
    family, overrides = KINDS[name]
    kind = kind_of(family, overrides, name)
    report = check_model(kind, overrides=overrides, tmp_path=tmp_path)
    assert (report.family, report.kind) == (family, kind.kind_name())
    assert "gentool.json" in report.files
    assert set(report.passed) | set(report.skipped) == set(CHECKS)
    assert not set(report.skipped) & {c.name for c in CHECKS.values() if c.task is None}
    for check in CHECKS.values():  # every task of the kind was checked
        if check.task is not None and issubclass(kind, check.task):
            assert check.name in report.passed, check.name
    assert (report.run / "gentool.json").is_file()
    assert family in str(report)


def test_every_builtin_kind_is_checked() -> None:
    """A kind that gentool or the test plugin registers is in KINDS (so it is checked)."""
    registry = get_registry()
    builtin = {
        kind
        for kind in registry.all_kinds()
        if registry.owners[kind.family].distribution in ("gentool", "gentool-hello")
    }
    checked = {
        kind_of(f, overrides, name) for name, (f, overrides) in KINDS.items() if f in registry.kinds
    }
    assert builtin <= checked, sorted(k.__qualname__ for k in builtin - checked)


def test_kit_works_without_tmp_path_and_with_given_data(tmp_path: Path) -> None:
    data = write_sample_corpus(tmp_path / "mine.txt", count=50, seed=3)
    report = check_model(
        kind_of("ngram", []), data=[data], overrides=["model.order=2"], skip=["atomic"]
    )
    assert not report.run.exists()  # a temporary directory, removed
    assert "evaluate" in report.passed
    assert report.skipped["atomic"] == "skipped by the caller"
    assert report.skipped["translate"] == "not a Translation (translate)"


def test_skip_names_only_skippable_checks() -> None:
    assert set(skippable_checks()) == {
        "bad-data", "generate-seed", "generate-images-seed", "atomic", "train-json",
    }  # fmt: skip
    with pytest.raises(ValueError, match="skippable checks"):
        check_model(HelloModel, skip=["load"])


def test_each_check_is_listed_once_with_what_it_asserts() -> None:
    assert list(CHECKS)[:3] == ["class", "registered", "routed"]
    assert all(check.summary for check in CHECKS.values())
    assert {c.task for c in CHECKS.values()} >= {
        TextGeneration, Translation, ImageGeneration, ImageScoring, ImageRestoration, None,
    }  # fmt: skip


# -- sample data ----------------------------------------------------------------------------


def test_sample_corpus_is_varied_and_repeatable() -> None:
    lines = sample_lines(300)
    assert lines == sample_lines(300) != sample_lines(300, seed=1)
    assert len(set(lines)) > 250
    assert {line[-1] for line in lines} >= {".", "?", "!"}
    assert any(not line.isascii() for line in lines)


def test_sample_parallel_corpus_is_aligned_and_regular(tmp_path: Path) -> None:
    source, target = write_sample_parallel(tmp_path / "s.txt", tmp_path / "t.txt", 50)
    corpus = read_parallel(source, target)
    assert corpus.pairs == sample_pairs(50) != sample_pairs(50, seed=1)
    assert all(len(s.split()) == len(t.split()) and s != t for s, t in corpus.pairs)
    lexicon: dict[str, str] = {}  # a word is always translated the same way: learnable
    for s, t in corpus.pairs:
        for a, b in zip(s.split(), t.split(), strict=True):
            assert lexicon.setdefault(a, b) == b
    words = Counter(w for _, t in corpus.pairs for w in t.split())
    assert words["de"] + words["De"] > 20  # the lexicon's "the"


def test_sample_images_are_coloured_shapes_by_class(tmp_path: Path) -> None:
    folder = write_sample_images(tmp_path / "images", count=12, size=16)
    found = read_images([folder], 16)
    assert found.images.shape == (12, 3, 16, 16)
    assert found.classes == sorted(SAMPLE_SHAPES)
    assert np.any(found.images[:, 0] != found.images[:, 1])  # colour, not gray
    again = write_sample_images(tmp_path / "again", count=12, size=16)
    assert (read_images([again], 16).images == found.images).all()


def test_the_kit_picks_data_by_what_the_kind_trains_on() -> None:
    assert data_sort(HelloModel) == "text"
    assert data_sort(ToyTranslator) == "parallel"
    assert data_sort(ToyPainter) == data_sort(ToyUpscaler) == "images"


# -- small kinds of each task, written here ---------------------------------------------------
# What a third-party author might write: numpy and pillow, no torch. Family "toy" has three
# kinds, routed as the built-in ones are: by its data (parallel -> translator) and by the
# model.task selector (paint, upscale).


@dataclass
class TranslatorConfig:
    """A word-by-word translator has no options."""


class ToyTranslator(Model, Translation):
    """Word-by-word translation: each source word by the target word seen most often at
    its position."""

    family = "toy"
    kind = "translator"
    description = "word-by-word translator (a test kind)"
    config_class = TranslatorConfig
    trains_on = PARALLEL

    def __init__(self, lexicon: dict[str, str]) -> None:
        self.lexicon = lexicon

    @classmethod
    def train(cls, config: Any, context: TrainingContext[Any]) -> ToyTranslator:
        assert context.source is not None and context.target is not None
        counts: dict[str, Counter[str]] = {}
        for source, target in read_parallel(context.source, context.target).pairs:
            for s, t in zip(source.split(), target.split(), strict=False):
                counts.setdefault(s, Counter())[t] += 1
        return cls({s: c.most_common(1)[0][0] for s, c in counts.items()})

    def save(self, directory: Path) -> dict[str, Any]:
        runs.write_json(directory / "lexicon.json", self.lexicon)
        return {"words": len(self.lexicon)}

    @classmethod
    def load(cls, directory: Path, config: Any) -> ToyTranslator:
        return cls(json.loads((directory / "lexicon.json").read_text(encoding="utf-8")))

    def translate(self, texts: Sequence[str], request: TranslationRequest) -> list[str]:
        limit = request.max_tokens
        return [" ".join(self.lexicon.get(w, w) for w in t.split()[:limit]) for t in texts]

    def evaluate_translation(self, source: Path, target: Path) -> dict[str, Any]:
        pairs = read_parallel(source, target).pairs
        hypotheses = self.translate([s for s, _ in pairs], TranslationRequest())
        exact = sum(h == t for h, (_, t) in zip(hypotheses, pairs, strict=True))
        return {"sentences": len(pairs), "exact": exact / len(pairs)}


SIZE = 16


@dataclass
class PainterConfig:
    task: Literal["paint"] = "paint"


class ToyPainter(Model, ImageGeneration, ImageScoring):
    """Draws each pixel from a normal distribution fitted to the training images (one per
    class when the data has classes)."""

    family = "toy"
    kind = "painter"
    description = "per-pixel Gaussian image model (a test kind)"
    config_class = PainterConfig
    selected_by = {"task": ("paint",)}

    def __init__(self, means: np.ndarray, std: np.ndarray, names: list[str]) -> None:
        self.means, self.std, self.names = means, std, names

    @classmethod
    def train(cls, config: Any, context: TrainingContext[Any]) -> ToyPainter:
        data = read_images(context.data, SIZE, "rgb")
        images = data.images.astype(np.float32)
        labels = data.labels if data.labels is not None else np.zeros(len(images), np.int64)
        means = np.stack([images[labels == c].mean(0) for c in range(int(labels.max()) + 1)])
        return cls(means, images.std(0), data.classes)

    def save(self, directory: Path) -> dict[str, Any]:
        tensors = {"means": self.means, "std": self.std}
        runs.save_tensors(directory / runs.TENSOR_FILE, tensors, self.family)
        runs.write_json(directory / "classes.json", self.names)
        return {"classes": len(self.names)}

    @classmethod
    def load(cls, directory: Path, config: Any) -> ToyPainter:
        tensors = runs.load_tensors(directory / runs.TENSOR_FILE, cls.family)
        names = json.loads((directory / "classes.json").read_text(encoding="utf-8"))
        return cls(tensors["means"], tensors["std"], names)

    def generate_images(self, request: GenerationRequest) -> list[Any]:
        from PIL import Image

        rng = np.random.default_rng(request.seed)
        images = []
        for _ in range(request.num_samples):
            label = request.class_label
            mean = self.means[label if label is not None else rng.integers(len(self.means))]
            pixels = np.clip(mean + rng.normal(size=mean.shape) * self.std, 0, 255)
            images.append(Image.fromarray(pixels.astype(np.uint8).transpose(1, 2, 0)))
        return images

    def classes(self) -> list[str]:
        return self.names

    def evaluate_images(self, paths: Sequence[Path]) -> dict[str, Any]:
        real = read_images(list(paths), SIZE, "rgb").images.astype(np.float32)
        return {"mean_abs_error": float(np.abs(real.mean(0) - self.means.mean(0)).mean())}


@dataclass
class UpscalerConfig:
    task: Literal["upscale"] = "upscale"
    factor: int = 2


class ToyUpscaler(Model, ImageRestoration, ImageScoring):
    """Nearest-neighbour upscaling, its colours scaled by a gain fitted to the data."""

    family = "toy"
    kind = "upscaler"
    description = "nearest-neighbour upscaler (a test kind)"
    config_class = UpscalerConfig
    selected_by = {"task": ("upscale",)}

    def __init__(self, gain: np.ndarray, config: UpscalerConfig) -> None:
        self.gain, self.config = gain, config

    @classmethod
    def train(cls, config: UpscalerConfig, context: TrainingContext[Any]) -> ToyUpscaler:
        images = read_images(context.data, SIZE, "rgb").images.astype(np.float32)
        means = images.mean(axis=(0, 2, 3))
        return cls((means / means.mean()).astype(np.float32), config)

    def save(self, directory: Path) -> dict[str, Any]:
        runs.save_tensors(directory / runs.TENSOR_FILE, {"gain": self.gain}, self.family)
        return {}

    @classmethod
    def load(cls, directory: Path, config: UpscalerConfig) -> ToyUpscaler:
        return cls(runs.load_tensors(directory / runs.TENSOR_FILE, cls.family)["gain"], config)

    def restore(self, images: Sequence[Any]) -> list[Any]:
        return [self.upscale(image) for image in images]

    def upscale(self, image: Any) -> Any:
        from PIL import Image

        f = self.config.factor
        large = image.convert("RGB").resize((image.width * f, image.height * f), Image.NEAREST)
        pixels = np.asarray(large, dtype=np.float32) * self.gain
        return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))

    def evaluate_images(self, paths: Sequence[Path]) -> dict[str, Any]:
        from PIL import Image

        images = read_images(list(paths), SIZE * 2, "rgb").images
        errors = []
        for pixels in images:
            clean = Image.fromarray(pixels.transpose(1, 2, 0))
            small = clean.resize((SIZE, SIZE), Image.BILINEAR)
            restored = np.asarray(self.upscale(small), dtype=np.float32)
            errors.append(float(((restored - pixels.transpose(1, 2, 0)) ** 2).mean()))
        return {"psnr": float(10 * np.log10(255**2 / max(np.mean(errors), 1e-9)))}


TOYS = [ToyPainter, ToyUpscaler, ToyTranslator]  # the painter first: the family's default


@pytest.mark.parametrize(
    ("kind", "overrides"),
    [(ToyTranslator, []), (ToyPainter, []), (ToyUpscaler, ["model.task=upscale"])],
    ids=["translator", "painter", "upscaler"],
)
def test_a_kind_of_each_task_conforms(
    kind: type[Model], overrides: list[str], tmp_path: Path
) -> None:
    with registered(*TOYS):
        report = check_model(kind, overrides=overrides, tmp_path=tmp_path)
    assert str(report).startswith(f"toy/{kind.kind_name()}: ")
    tasks = {c.name for c in CHECKS.values() if c.task is not None and issubclass(kind, c.task)}
    assert tasks and tasks <= set(report.passed)


def test_an_unconditional_image_kind_conforms(tmp_path: Path) -> None:
    """Images without class folders: --class is refused with one Error: line."""
    flat = tmp_path / "flat"
    flat.mkdir()
    for path in write_sample_images(tmp_path / "shapes", count=24).rglob("*.png"):
        shutil.copy(path, flat / path.name)
    with registered(*TOYS):
        report = check_model(ToyPainter, data=[flat], tmp_path=tmp_path)
    assert "generate-images" in report.passed


def test_parallel_data_is_given_as_parallel_paths(tmp_path: Path) -> None:
    source, target = write_sample_parallel(tmp_path / "s", tmp_path / "t", count=30, seed=4)
    with registered(*TOYS):
        report = check_model(ToyTranslator, data=ParallelPaths(source, target), tmp_path=tmp_path)
        assert "evaluate-translation" in report.passed
        with pytest.raises(ConformanceError, match="takes data=api.ParallelPaths"):
            check_model(ToyTranslator, data=[source], tmp_path=tmp_path)


# -- the kit can fail ----------------------------------------------------------------------
# Each class below breaks one promise; its family is its own (the kit finds a kind by it).


class IgnoresSeed(HelloModel):
    family = "hello_ignores_seed"

    def generate(self, request: GenerationRequest) -> Iterator[str]:
        chars = sorted(self.counts)
        for _ in range(request.num_samples):
            yield "".join(random.choice(chars) for _ in range(request.max_tokens))


class FixedSeed(HelloModel):
    family = "hello_fixed_seed"

    def generate(self, request: GenerationRequest) -> Iterator[str]:
        return super().generate(dataclasses.replace(request, seed=0))


class WrongCount(HelloModel):
    family = "hello_wrong_count"

    def generate(self, request: GenerationRequest) -> Iterator[str]:
        yield next(super().generate(request))


class ReturnsList(HelloModel):
    family = "hello_returns_list"

    def generate(self, request: GenerationRequest) -> list[str]:  # type: ignore[override]
        return list(super().generate(request))


class WritesPickle(HelloModel):
    family = "hello_pickle"

    def save(self, directory: Path) -> dict[str, int]:
        (directory / "counts.json").write_text(json.dumps(self.counts))
        (directory / "state").write_bytes(pickle.dumps(self.counts))
        return {}


class UntaggedSafetensors(HelloModel):
    family = "hello_untagged"

    def save(self, directory: Path) -> dict[str, int]:
        from safetensors.numpy import save_file

        save_file({"x": np.zeros(2)}, str(directory / "model.safetensors"))
        return super().save(directory)


class StrayFile(HelloModel):
    family = "hello_stray"

    def save(self, directory: Path) -> dict[str, int]:
        (directory.parent / "cache.json").write_text("{}")
        return super().save(directory)


class NaiveReader(HelloModel):
    family = "hello_naive_reader"

    @classmethod
    def train(cls, config: Any, context: TrainingContext[Any]) -> NaiveReader:
        text = "".join(Path(p).read_text(encoding="utf-8") for p in context.data)
        return cls({c: text.count(c) for c in set(text) - {"\n"}})


class AcceptsAnything(HelloModel):
    family = "hello_accepts_anything"

    @classmethod
    def train(cls, config: Any, context: TrainingContext[Any]) -> AcceptsAnything:
        return cls({"a": 1})


class AbsolutePath(HelloModel):
    """Loads from where the run was saved, not from where it is: the run cannot move."""

    family = "hello_absolute"

    def save(self, directory: Path) -> dict[str, int]:
        (directory / "where.json").write_text(json.dumps(str(directory.resolve())))
        return super().save(directory)

    @classmethod
    def load(cls, directory: Path, config: Any) -> Any:
        return super().load(Path(json.loads((directory / "where.json").read_text())), config)


class UnpicklesOnLoad(HelloModel):
    family = "hello_unpickles"

    def save(self, directory: Path) -> dict[str, int]:
        (directory / "counts.json").write_text(json.dumps(pickle.dumps(self.counts).hex()))
        return {}

    @classmethod
    def load(cls, directory: Path, config: Any) -> UnpicklesOnLoad:
        raw = bytes.fromhex(json.loads((directory / "counts.json").read_text()))
        return cls(pickle.loads(raw))


class BadDescribe(HelloModel):
    family = "hello_bad_describe"

    def describe(self) -> dict[str, Any]:
        return {"where": Path("/")}  # not JSON-serialisable


@dataclass
class NeedsSize:
    size: int


class NoDefaults(HelloModel):
    family = "hello_no_defaults"
    config_class = NeedsSize


class NoDescription(HelloModel):
    family = "hello_no_description"
    description = ""


class PositionalTranslator(ToyTranslator):
    """Each translation depends on its place in the batch (a padding bug's symptom)."""

    family = "toy_positional"

    def translate(self, texts: Sequence[str], request: TranslationRequest) -> list[str]:
        done = super().translate(texts, request)
        return [f"{t} {'.' * i}".strip() for i, t in enumerate(done)]


class DropsEmptyLines(ToyTranslator):
    family = "toy_drops_empty"

    def translate(self, texts: Sequence[str], request: TranslationRequest) -> list[str]:
        return super().translate([t for t in texts if t], request)


class MultiLine(ToyTranslator):
    family = "toy_multiline"

    def translate(self, texts: Sequence[str], request: TranslationRequest) -> list[str]:
        return [f"{t}\n(translated)" for t in super().translate(texts, request)]


class UnseededPainter(ToyPainter):
    family = "toy_unseeded"

    def generate_images(self, request: GenerationRequest) -> list[Any]:
        seed = random.randrange(2**31)
        return super().generate_images(dataclasses.replace(request, seed=seed))


class NoisyUpscaler(ToyUpscaler):
    family = "toy_noisy"
    selected_by = {}

    def restore(self, images: Sequence[Any]) -> list[Any]:
        from PIL import Image

        done = super().restore(images)
        noise = [np.random.default_rng().integers(0, 2, (im.height, im.width, 3)) for im in done]
        return [
            Image.fromarray((np.asarray(im) ^ n).astype(np.uint8))
            for im, n in zip(done, noise, strict=True)
        ]


class FixedSizeUpscaler(ToyUpscaler):
    family = "toy_fixed_size"
    selected_by = {}

    def restore(self, images: Sequence[Any]) -> list[Any]:
        return [image.resize((32, 32)) for image in super().restore(images)]


class UnscoredPainter(ToyPainter):
    family = "toy_unscored"

    def evaluate_images(self, paths: Sequence[Path]) -> dict[str, Any]:
        return {}


DEFECTS: list[tuple[type[Model], str, str]] = [
    (IgnoresSeed, "generate", "gave different text on two runs"),
    (FixedSeed, "generate-seed", "seeds 0-4 all gave the same text"),
    (WrongCount, "generate", "asked for 3 samples"),
    (ReturnsList, "generate", "generate returned a list; yield each sample"),
    (WritesPickle, "no-pickle", "'state' is a pickle"),
    (UntaggedSafetensors, "safetensors", "gentool.family=None"),
    (StrayFile, "run-directory", "cache.json"),
    (NaiveReader, "bad-data", "raised UnicodeDecodeError"),
    (AcceptsAnything, "bad-data", "training on a file that is not UTF-8 succeeded"),
    (AbsolutePath, "load", "with the run moved away, does not load"),
    (UnpicklesOnLoad, "load", "pickle.loads"),
    (BadDescribe, "info", "raised (a bug"),
    (NoDefaults, "class", "every field needs a default"),
    (NoDescription, "class", "`description` must be one line"),
    (PositionalTranslator, "translate", "twice in one batch"),
    (DropsEmptyLines, "translate", "(an empty text too)"),
    (MultiLine, "translate", "one single-line string per text"),
    (UnseededPainter, "generate-images", "drew different images from a copy of the run"),
    (NoisyUpscaler, "restore", "restoration must be deterministic"),
    (FixedSizeUpscaler, "restore", "one fixed factor times its input's size"),
    (UnscoredPainter, "evaluate-images", "has no metrics"),
]


@pytest.mark.parametrize(
    ("kind", "check", "message"), DEFECTS, ids=[d[0].__name__ for d in DEFECTS]
)
def test_kit_catches(kind: type[Model], check: str, message: str, tmp_path: Path) -> None:
    with registered(kind), pytest.raises(ConformanceError) as caught:
        check_model(kind, tmp_path=tmp_path)
    name = kind.family if kind.kind_name() == kind.family else f"{kind.family}/{kind.kind_name()}"
    assert f"check_model({name}) [{check}]" in str(caught.value)
    assert message in str(caught.value)
    assert isinstance(caught.value, AssertionError)  # what pytest reports as a failure


class ClaimsGenerationWithoutGenerate(Model, TextGeneration):
    family = "hello_no_generate"
    description = "claims a task without its method"
    config_class = NeedsSize

    @classmethod
    def train(cls, config: Any, context: TrainingContext[Any]) -> Any:
        raise NotImplementedError

    @classmethod
    def load(cls, directory: Path, config: Any) -> Any:
        raise NotImplementedError

    def save(self, directory: Path) -> dict[str, Any]:
        return {}


class DoesNothing(Model):
    """A Model with every method but no task interface."""

    family = "hello_nothing"
    description = "no task"
    config_class = NeedsSize

    @classmethod
    def train(cls, config: Any, context: TrainingContext[Any]) -> Any:
        raise NotImplementedError

    @classmethod
    def load(cls, directory: Path, config: Any) -> Any:
        raise NotImplementedError

    def save(self, directory: Path) -> dict[str, Any]:
        return {}


class OldFamily(Family):
    """A gentool 0.1 family."""

    name = "old"
    tasks = ("generate-text",)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        (
            ClaimsGenerationWithoutGenerate,
            "claims generate-text (TextGeneration) and needs generate() but does not implement it",
        ),  # fmt: skip
        (DoesNothing, "implements no task interface"),
        (OldFamily, "is a gentool 0.1 Family"),
    ],
    ids=["missing-method", "no-task", "0.1-family"],
)
def test_kit_catches_a_malformed_class(kind: type[Model], message: str, tmp_path: Path) -> None:
    with pytest.raises(ConformanceError, match=r"\[class\]") as caught:
        check_model(kind, tmp_path=tmp_path)
    assert message in str(caught.value)


def test_check_family_of_0_1_says_what_replaced_it() -> None:
    with pytest.raises(ConformanceError, match=r"check_model\(ModelClass\).*Migrating from Family"):
        check_family(OldFamily)


def test_kit_catches_an_unregistered_kind(tmp_path: Path) -> None:
    with pytest.raises(ConformanceError, match=r"\[registered\].*unknown"):
        check_model(IgnoresSeed, tmp_path=tmp_path)


def test_kit_catches_a_kind_its_family_does_not_route_to(tmp_path: Path) -> None:
    """Without model.task=upscale, 'gentool train toy' on images trains the painter."""
    with registered(*TOYS), pytest.raises(ConformanceError) as caught:
        check_model(ToyUpscaler, tmp_path=tmp_path)
    assert "[routed]" in str(caught.value)
    assert "trains the kind 'painter', not 'upscaler'" in str(caught.value)


def test_kit_catches_a_replacement_that_is_not_atomic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Were the core to delete the old run before building the new one (--force), a crash
    while saving would lose it: the atomic check fails."""
    from gentool import api

    real_train = api.train

    def delete_then_train(*args: Any, force: bool = False, **kwargs: Any) -> Any:
        if force:
            shutil.rmtree(kwargs["out"])
        return real_train(*args, **kwargs)

    monkeypatch.setattr(api, "train", delete_then_train)
    with pytest.raises(ConformanceError, match=r"\[atomic\].*lost the old run"):
        check_model(HelloModel, tmp_path=tmp_path)
