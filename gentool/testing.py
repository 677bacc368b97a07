"""The conformance kit: one call that checks a kind of model keeps gentool's promises.

A plugin's own tests call it on each kind the plugin registers::

    from gentool.testing import check_model
    from gentool_markov import MarkovModel

    def test_markov_conforms(tmp_path):
        check_model(MarkovModel, tmp_path=tmp_path)

It trains a tiny run on CPU through the public paths (``gentool.api`` and the ``gentool``
command line, in-process) on sample data of the sort the kind trains on (text, parallel
text, or images; written by the kit), and checks what every command and user relies on:
the kind is well formed and found, bad data gives one ``Error:`` line, the run directory
is complete, checksummed and holds no pickle, the run loads from safetensors and JSON
alone, a crash while saving leaves the old run, every task the kind implements
(``gentool.tasks``) answers as its command promises and repeats with a seed or the same
input, and every ``--json`` output is strict JSON. The checks are listed once, in
``CHECKS``. A failed check raises ``ConformanceError`` (an ``AssertionError``) saying
which promise is broken and how to keep it. See docs/plugins.md, "Testing a plugin".

The module also holds the helpers gentool's own tests and a plugin's share: ``invoke``
(the CLI in-process), ``run_gentool`` (in a subprocess), ``assert_error``,
``strict_json``, the sample data writers, and ``fuzz_run`` for damaged runs.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import pickle
import random
import shutil
import subprocess
import sys
import tempfile
import traceback
import zipfile
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from unittest import mock

from gentool import api, runs
from gentool.api import ParallelPaths
from gentool.errors import GentoolError
from gentool.kinds import MUSIC, PARALLEL, check_kind
from gentool.model import Model
from gentool.tasks import (
    Capability,
    GenerationRequest,
    ImageGeneration,
    ImageRestoration,
    ImageScoring,
    ImageTranslation,
    MusicGeneration,
    MusicRequest,
    MusicScoring,
    TextGeneration,
    TextScoring,
    Translation,
    TranslationRequest,
)

if TYPE_CHECKING:
    from click.testing import Result

#: Where training checkpoints go in a run; subdirectories are not part of the run's files.
CHECKPOINTS_DIR = runs.CHECKPOINTS
#: Files that unpickle when loaded: a run must not contain them.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")


class ConformanceError(AssertionError):
    """A kind broke one of gentool's promises; the message names the check and the fix."""


# -- driving gentool as a user does -------------------------------------------------------------


def invoke(*args: str | Path, ok: bool = True, input: str | bytes | None = None) -> Result:
    """Run ``gentool ARGS`` in-process (click's CliRunner; stdout and stderr apart, ``input``
    as stdin). An exception the command line did not turn into an ``Error:`` line (a bug)
    propagates with its traceback; with ``ok=True``, an exit code other than 0 raises
    ConformanceError with what the command printed."""
    from click.testing import CliRunner

    from gentool.cli import cli

    argv = [str(a) for a in args]
    result = CliRunner().invoke(cli, argv, input=input, catch_exceptions=False)
    if ok and result.exit_code != 0:
        raise ConformanceError(
            f"'gentool {' '.join(argv)}' exited {result.exit_code}\n{result.output}{result.stderr}"
        )
    return result


def invoke_json(*args: str | Path) -> Any:
    """``invoke(*args, "--json")``, its stdout parsed with ``strict_json``."""
    return strict_json(invoke(*args, "--json").stdout)


def run_gentool(
    *args: str | Path, env: dict[str, str] | None = None, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m gentool ARGS`` in a real subprocess (``env`` added to this one's),
    as a shell would: the installed entry points, a fresh interpreter, real signals."""
    return subprocess.run(
        [sys.executable, "-m", "gentool", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        **kwargs,
    )


def strict_json(text: str) -> Any:
    """Parse JSON as any strict parser would: NaN and Infinity are not JSON."""

    def reject(constant: str) -> NoReturn:
        raise ValueError(f"{constant} is not valid JSON")

    return json.loads(text, parse_constant=reject)


def assert_error(result: Result | subprocess.CompletedProcess[str], *fragments: str) -> str:
    """The command failed as gentool promises: exit code 1, exactly one ``Error: ...`` line
    on stderr, containing every fragment, and no traceback. Returns that line; raises
    ConformanceError otherwise. ``result`` is what ``invoke`` or ``run_gentool`` returned."""
    code = (
        result.returncode if isinstance(result, subprocess.CompletedProcess) else result.exit_code
    )
    stderr = result.stderr
    errors = [line for line in stderr.splitlines() if line.startswith("Error: ")]
    if code != 1 or len(errors) != 1 or "Traceback" in stderr:
        raise ConformanceError(
            f"expected exit code 1 and one 'Error:' line without a traceback; got exit code "
            f"{code} and {len(errors)} 'Error:' lines; stderr:\n{stderr}"
        )
    missing = [f for f in fragments if f not in errors[0]]
    if missing:
        raise ConformanceError(f"the error does not say {missing}: {errors[0]}")
    return errors[0]


# -- sample data ------------------------------------------------------------------------------

_SUBJECTS = [
    "the old fisherman", "a young teacher", "my neighbour", "the small dog", "our captain",
    "the baker's daughter", "a tired traveller", "every child", "the quiet engineer",
    "her brother", "the mayor of Zürich", "a naïve student", "the night nurse", "grandmother",
]  # fmt: skip
_VERBS = [
    "watched", "followed", "painted", "carried", "remembered", "found", "opened", "closed",
    "described", "mended", "counted", "visited", "sold", "borrowed", "lost", "measured",
]  # fmt: skip
_OBJECTS = [
    "the wooden boat", "a letter from home", "the northern road", "three green apples",
    "an empty house", "the morning train", "a broken clock", "the garden gate",
    "the last lantern", "a map of the hills", "twelve silver coins", "the red umbrella",
    "a jar of honey", "the station bell",
]  # fmt: skip
_ENDINGS = [
    "before dawn", "in the rain", "after supper", "near the harbour", "without a word",
    "for the second time", "on a cold morning", "at the café", "with great care",
    "while the bells rang", "in 1887", "at half past nine", "during the storm", "",
]  # fmt: skip
_OPENERS = ["Yesterday, ", "Once again, ", "Quietly, ", "Later that week, ", "Of course ", ""]
_ADJECTIVES = ["strange", "bright", "long", "quiet", "wonderful", "bitter", "curious", "busy"]
_NOUNS = ["day", "journey", "summer", "evening", "idea", "winter", "market", "song"]
_SAYINGS = [
    "Come back tomorrow", "I have never seen it", "Nobody knows why", "It is late",
    "Look at the sky", "We should leave now", "That is not mine", "Tell me again",
]  # fmt: skip


def sample_lines(count: int = 300, seed: int = 0) -> list[str]:
    """``count`` lines of varied, grammatical English (statements, questions, exclamations,
    dialogue; punctuation, digits, a few accented letters), the same for the same seed."""
    rng = random.Random(seed)
    lines = []
    for _ in range(count):
        subject, verb, obj = rng.choice(_SUBJECTS), rng.choice(_VERBS), rng.choice(_OBJECTS)
        ending = rng.choice(_ENDINGS)
        ending = f" {ending}" if ending else ""
        kind = rng.random()
        if kind < 0.55:
            line = f"{rng.choice(_OPENERS)}{subject} {verb} {obj}{ending}."
        elif kind < 0.7:
            line = f"Why had {subject} {verb} {obj}{ending}?"
        elif kind < 0.8:
            line = f"What a {rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)} it was!"
        elif kind < 0.92:
            line = f'"{rng.choice(_SAYINGS)}," said {subject}.'
        else:
            other = rng.choice(_SUBJECTS)
            line = f"{subject} {verb} {obj}, and {other} {rng.choice(_VERBS)} it too."
        lines.append(line[0].upper() + line[1:])
    return lines


def write_sample_corpus(path: str | Path, count: int = 300, seed: int = 0) -> Path:
    """Write ``sample_lines(count, seed)`` to ``path`` as UTF-8, one line each; return it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(sample_lines(count, seed)) + "\n", encoding="utf-8")
    return path


# The target language of the sample parallel corpus: a few function words from a lexicon,
# every other word with its vowels shifted. Regular enough for a tiny model to learn from.
_LEXICON = {
    "the": "de", "a": "en", "an": "en", "and": "og", "of": "af", "in": "i", "at": "ved",
    "on": "paa", "with": "med", "for": "for", "it": "det", "is": "er", "was": "var",
    "my": "min", "her": "hendes", "our": "vores", "every": "hver", "why": "hvorfor",
    "had": "havde", "what": "hvilken", "said": "sagde", "too": "ogsaa",
}  # fmt: skip
_VOWEL_SHIFT = str.maketrans("aeiouAEIOU", "eiouaEIOUA")


def _translated_word(word: str) -> str:
    core = word.strip('.,!?"')
    if not core:
        return word
    lead, trail = word[: word.index(core)], word[word.index(core) + len(core) :]
    known = _LEXICON.get(core.lower())
    new = known if known is not None else core.translate(_VOWEL_SHIFT)
    if core[0].isupper():
        new = new[0].upper() + new[1:]
    return lead + new + trail


def sample_pairs(count: int = 300, seed: int = 0) -> list[tuple[str, str]]:
    """``count`` (source, target) sentence pairs: ``sample_lines`` and their translation
    into a small made-up language (a lexicon and a vowel shift), the same for the same seed."""
    return [
        (line, " ".join(_translated_word(w) for w in line.split()))
        for line in sample_lines(count, seed)
    ]


def write_sample_parallel(
    source: str | Path, target: str | Path, count: int = 300, seed: int = 0
) -> tuple[Path, Path]:
    """Write ``sample_pairs(count, seed)`` as two aligned UTF-8 files (line i of ``target``
    translates line i of ``source``), as ``--source``/``--target`` take; return them."""
    pairs = sample_pairs(count, seed)
    paths = (Path(source), Path(target))
    for path, side in zip(paths, zip(*pairs, strict=True), strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(side) + "\n", encoding="utf-8")
    return paths


def write_sample_music(folder: str | Path, count: int = 12, bars: int = 8, seed: int = 0) -> Path:
    """Write ``count`` small MIDI files into ``folder`` (one in a sub-folder, as real
    collections nest them): ``bars`` bars of 4/4 in C major, a melody in quarter notes over
    a bass note per bar, written with symusic (the music extra). The same for the same seed."""
    symusic: Any = importlib.import_module("symusic")
    rng = random.Random(seed)
    folder = Path(folder)
    (folder / "more").mkdir(parents=True, exist_ok=True)
    tpq, scale, roots = 480, [60, 62, 64, 65, 67, 69, 71, 72], [48, 53, 55, 48, 45, 50, 55, 48]
    for i in range(count):
        score = symusic.Score(tpq)
        score.time_signatures.append(symusic.TimeSignature(0, 4, 4))
        score.tempos.append(symusic.Tempo(0, qpm=100.0))
        melody = symusic.Track(name="Melody", program=0)
        bass = symusic.Track(name="Bass", program=32)
        step = rng.randrange(len(scale))
        for bar in range(bars):
            bass.notes.append(symusic.Note(bar * 4 * tpq, 4 * tpq, roots[bar % len(roots)], 70))
            for beat in range(4):
                step = min(max(step + rng.choice((-2, -1, 1, 2)), 0), len(scale) - 1)
                start = (bar * 4 + beat) * tpq
                melody.notes.append(symusic.Note(start, tpq, scale[step], 90))
        score.tracks.extend([melody, bass])
        name = folder / ("more" if i == 0 else "") / f"piece{i:02d}.mid"
        score.dump_midi(str(name))
    return folder


SAMPLE_SHAPES = ("circle", "square", "triangle")


def write_sample_images(folder: str | Path, count: int = 48, size: int = 32, seed: int = 0) -> Path:
    """Write ``count`` small RGB PNGs (``size`` pixels square) of coloured shapes on
    coloured backgrounds into ``folder``, one sub-folder per shape (the class labels of
    ``SAMPLE_SHAPES``), drawn with pillow: no download. The same for the same seed."""
    from PIL import Image, ImageDraw

    folder = Path(folder)
    rng = random.Random(seed)
    for i in range(count):
        shape = SAMPLE_SHAPES[i % len(SAMPLE_SHAPES)]
        background = tuple(rng.randrange(0, 120) for _ in range(3))
        colour = tuple(rng.randrange(120, 256) for _ in range(3))
        image = Image.new("RGB", (size, size), background)
        draw = ImageDraw.Draw(image)
        half = rng.uniform(0.2, 0.4) * size
        cx, cy = (rng.uniform(half, size - half) for _ in range(2))
        box = (cx - half, cy - half, cx + half, cy + half)
        if shape == "circle":
            draw.ellipse(box, fill=colour)
        elif shape == "square":
            draw.rectangle(box, fill=colour)
        else:
            corners = [(cx, cy - half), (cx - half, cy + half), (cx + half, cy + half)]
            draw.polygon(corners, fill=colour)
        (folder / shape).mkdir(parents=True, exist_ok=True)
        image.save(folder / shape / f"{i:04d}.png")
    return folder


# -- registering a kind for a test --------------------------------------------------------------


@contextlib.contextmanager
def registered(*kinds: type[Model]) -> Iterator[None]:
    """Make ``kinds`` known to this process for the duration of the block, as if a
    distribution registered them: for testing variants of a kind that no installed
    distribution provides. An installed kind's own test should not need this."""
    from gentool.plugins import PluginInfo, get_registry

    registry = get_registry()
    saved = (
        {family: list(k) for family, k in registry.kinds.items()},
        dict(registry.owners),
        {family: list(p) for family, p in registry.conflicts.items()},
    )
    owner = PluginInfo(
        name="gentool.testing", module=__name__, distribution="(gentool.testing)", version=""
    )
    for kind in kinds:
        check_kind(kind)
        family = registry.kinds.setdefault(kind.family, [])
        family[:] = [k for k in family if k.kind_name() != kind.kind_name()] + [kind]
        registry.owners.setdefault(kind.family, owner)
    try:
        yield
    finally:
        registry.kinds.clear()
        registry.kinds.update(saved[0])
        registry.owners.clear()
        registry.owners.update(saved[1])
        registry.conflicts.clear()
        registry.conflicts.update(saved[2])


# -- the checks -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One promise the kit checks: its name (what ``ModelReport`` and failures say), the
    task interface it applies to (None: every kind), whether ``check_model(skip=...)``
    may leave it out, and what it asserts (the first line of its docstring)."""

    name: str
    function: Callable[[_Checker], None]
    task: type[Capability] | None
    skippable: bool

    @property
    def summary(self) -> str:
        return " ".join((self.function.__doc__ or "").split("\n\n")[0].split())


#: Every check, by name, in the order they run. Adding a check is one decorated method of
#: ``_Checker``; the docs' table (docs/plugins.md) lists the same names.
CHECKS: dict[str, Check] = {}


def _check(
    name: str, task: type[Capability] | None = None, skippable: bool = False
) -> Callable[[Callable[[_Checker], None]], Callable[[_Checker], None]]:
    def add(function: Callable[[_Checker], None]) -> Callable[[_Checker], None]:
        if name in CHECKS:
            raise ValueError(f"check {name!r} is defined twice")
        CHECKS[name] = Check(name, function, task, skippable)
        return function

    return add


def skippable_checks() -> list[str]:
    """The names ``check_model(skip=...)`` accepts."""
    return [c.name for c in CHECKS.values() if c.skippable]


@dataclass
class ModelReport:
    """What ``check_model`` checked: the kind, the run it trained, its files, the checks."""

    family: str
    kind: str
    run: Path  # removed afterwards unless check_model was given tmp_path
    files: dict[str, int] = field(default_factory=dict)  # top-level file -> bytes
    passed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # check -> why

    def __str__(self) -> str:
        name = self.family if self.kind == self.family else f"{self.family}/{self.kind}"
        text = f"{name}: {len(self.passed)} checks passed ({', '.join(self.passed)})"
        if self.skipped:
            text += "; skipped: " + ", ".join(f"{k} ({v})" for k, v in self.skipped.items())
        return text


def check_model(
    model_class: type[Model],
    *,
    data: Sequence[str | Path] | ParallelPaths | None = None,
    overrides: Sequence[str] = (),
    tmp_path: str | Path | None = None,
    skip: Collection[str] = (),
) -> ModelReport:
    """Train, save, reload and use a tiny run of the kind ``model_class``; raise
    ConformanceError (an AssertionError) at the first broken promise, or return a
    ModelReport.

    ``data``: training data. Default: sample data of the sort the kind trains on, written
    by the kit: ``write_sample_parallel`` for a kind that ``trains_on`` parallel data,
    ``write_sample_images`` for an image kind (one that generates, scores or restores
    images), else ``write_sample_corpus``. Give files (or image folders), or an
    ``api.ParallelPaths`` for parallel data (``val_source``/``val_target`` are then the
    held-out pair). ``overrides``: ``--set`` values that make training tiny and fast, and
    pick this kind among its family's (``model.arch=encoder-decoder``). ``tmp_path``:
    where to work (kept); by default a temporary directory, removed afterwards. ``skip``:
    checks to leave out, from ``skippable_checks()`` (``generate-seed`` for a kind that is
    deterministic by design).
    """
    unknown = sorted(set(skip) - set(skippable_checks()))
    if unknown:
        raise ValueError(
            f"cannot skip {unknown}; skippable checks: {', '.join(skippable_checks())}"
        )
    if tmp_path is not None:
        label = getattr(model_class, "kind_name", lambda: model_class.__name__)()
        work = Path(tmp_path) / f"check-{getattr(model_class, 'family', 'model')}-{label}"
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
        return _Checker(model_class, work, data, overrides, skip).run()
    with tempfile.TemporaryDirectory(prefix="gentool-check-") as tmp:
        return _Checker(model_class, Path(tmp), data, overrides, skip).run()


def check_family(*args: Any, **kwargs: Any) -> NoReturn:
    """gentool 0.1's kit took a ``Family`` class. Since 0.2 a plugin registers kinds of
    model: call ``check_model(ModelClass)`` on each. This name stays only to say so."""
    raise ConformanceError(
        "gentool.testing.check_family checked a gentool 0.1 Family; since gentool 0.2 call "
        "check_model(ModelClass) on each kind of model the plugin registers (see "
        "docs/plugins.md, 'Migrating from Family')"
    )


def _write_image_pairs(path: Path, folder: Path, count: int, seed: int) -> Path:
    """``write_sample_images`` (into ``folder``) as one ``.npz`` of two domains for an
    image translator: ``a`` the gray version of each picture, ``b`` the picture (RGB)."""
    import numpy as np

    from gentool.data.images import read_images

    pictures = read_images([write_sample_images(folder, count, seed=seed)], 32, "rgb").images
    colour = pictures.transpose(0, 2, 3, 1)  # N x H x W x 3
    gray = (colour.astype(np.float64) @ np.array([0.299, 0.587, 0.114])).round()
    np.savez(path, a=gray.astype(np.uint8), b=colour)
    return path


class _PickleUsed(BaseException):
    """Raised by the stand-ins for pickle.load and torch.load while a run loads (a
    BaseException, so that a kind's own ``except Exception`` cannot hide it)."""


class _SimulatedCrash(Exception):
    """Raised by the stand-in for Model.save in the atomic check."""


TEXT, IMAGES = "text", "images"
_IMAGE_TASKS = (ImageGeneration, ImageScoring, ImageRestoration, ImageTranslation)


def data_sort(model_class: type[Model]) -> str:
    """The sort of data the kit trains ``model_class`` on: its ``trains_on`` (``parallel``),
    else ``images`` for a kind with an image task, else ``text``."""
    if model_class.trains_on is not None:
        return model_class.trains_on
    return IMAGES if issubclass(model_class, _IMAGE_TASKS) else TEXT


@dataclass
class _Data:
    """The data one run of the kit uses: for training, for scoring, and bad data."""

    sort: str
    train: list[Path] = field(default_factory=list)  # --data (text files, image folders)
    heldout: list[Path] = field(default_factory=list)
    parallel: ParallelPaths | None = None  # --source/--target
    heldout_pair: tuple[Path, Path] | None = None

    def train_args(self) -> list[str | Path]:
        """The ``gentool train`` options that give this data."""
        if self.parallel is not None:
            return ["--source", str(self.parallel.source), "--target", str(self.parallel.target)]
        return [a for path in self.train for a in ("--data", path)]


class _Checker:
    def __init__(
        self,
        model_class: type[Model],
        work: Path,
        data: Sequence[str | Path] | ParallelPaths | None,
        overrides: Sequence[str],
        skip: Collection[str],
    ) -> None:
        self.model = model_class
        self.family = str(getattr(model_class, "family", model_class.__qualname__))
        kind_name = getattr(model_class, "kind_name", None)
        self.kind = kind_name() if callable(kind_name) else self.family
        self.label = self.family if self.kind == self.family else f"{self.family}/{self.kind}"
        self.work = work.resolve()
        self.overrides = list(overrides)
        self.skip = set(skip)
        self.data_dir = self.work / "data"
        self.data_dir.mkdir()
        self.given = data
        self.runs_dir = self.work / "runs"
        self.run_dir = self.runs_dir / "run"
        self.copy = self.work / "copy"
        self.report = ModelReport(family=self.family, kind=self.kind, run=self.run_dir)
        self.data = _Data(TEXT)  # the sample data, chosen by the class check

    # -- plumbing ---------------------------------------------------------------------------
    def fail(self, check: str, message: str) -> ConformanceError:
        return ConformanceError(f"check_model({self.label}) [{check}]: {message}")

    def cli(
        self, check: str, *args: str | Path, ok: bool = True, input: str | None = None
    ) -> Result:
        """Run ``gentool ARGS`` in-process; fail ``check`` on a traceback, and (ok=True)
        unless it exits 0."""
        argv = " ".join(map(str, args))
        try:
            result = invoke(*args, ok=False, input=input)
        except Exception:
            raise self.fail(
                check,
                f"'gentool {argv}' raised (a bug: raise a GentoolError):\n{traceback.format_exc()}",
            ) from None
        if ok and result.exit_code != 0:
            raise self.fail(check, f"'gentool {argv}' exited {result.exit_code}:\n{result.stderr}")
        return result

    def cli_error(self, check: str, what: str, *args: str | Path, input: str | None = None) -> None:
        """``gentool ARGS`` must fail as the CLI promises: exit 1, one 'Error:' line."""
        result = self.cli(check, *args, ok=False, input=input)
        try:
            assert_error(result)
        except ConformanceError as err:
            raise self.fail(
                check, f"{what} must exit 1 with one 'Error:' line (raise a GentoolError): {err}"
            ) from None

    def cli_json(self, check: str, *args: str | Path) -> Any:
        result = self.cli(check, *args, "--json")
        try:
            return strict_json(result.stdout)
        except ValueError as err:
            raise self.fail(
                check,
                f"'gentool {' '.join(map(str, args))} --json' printed what is not strict "
                f"JSON ({err}): {result.stdout[:300]!r}",
            ) from None

    def train(self, out: Path, force: bool = False, **data: Any) -> runs.RunDirectory:
        """``api.train`` of this kind's family on the kit's data (or ``data``)."""
        if not data:
            data = {"data": self.data.train, "parallel": self.data.parallel}
        run = api.train(self.family, overrides=self.overrides, out=out, force=force, seed=0, **data)
        if run is None:
            raise self.fail("train", "api.train returned no run on the main process")
        return run

    def set_args(self) -> list[str]:
        return [arg for value in self.overrides for arg in ("--set", value)]

    def top_level_files(self, run: Path) -> list[Path]:
        return sorted(p for p in run.iterdir() if p.is_file())

    def check_nothing_left(self, check: str, expected: Collection[str]) -> None:
        if not self.runs_dir.exists():
            return
        left = sorted(p.name for p in self.runs_dir.iterdir() if p.name not in expected)
        if left:
            raise self.fail(
                check,
                f"left {left} beside the run directories {sorted(expected)}: a failed or "
                "finished training must leave no partial or temporary directory",
            )

    def loaded(self, where: Path) -> Any:
        """The model of the run at ``where``, loaded as every command does."""
        return api.load(where)

    # -- the run ----------------------------------------------------------------------------
    def run(self) -> ModelReport:
        cwd = self.work / "cwd"
        cwd.mkdir()
        with contextlib.chdir(cwd):
            for check in CHECKS.values():
                if check.task is not None and not (
                    isinstance(self.model, type) and issubclass(self.model, check.task)
                ):
                    why = f"not a {check.task.__name__} ({check.task.task})"
                    self.report.skipped[check.name] = why
                elif check.name in self.skip:
                    self.report.skipped[check.name] = "skipped by the caller"
                else:
                    check.function(self)
                    self.report.passed.append(check.name)
        stray = sorted(p.name for p in cwd.iterdir())
        if stray:
            raise self.fail(
                "run-directory",
                f"files were written to the current directory: {stray}; write only into the "
                "directory save() is given, and where a command is told to",
            )
        return self.report

    # -- the kind itself ------------------------------------------------------------------------
    @_check("class")
    def check_class(self) -> None:
        """The class is a well-formed kind (``gentool.kinds.check_kind``: a ``Model`` with a
        family, config dataclasses, every method of the task interfaces it claims); it
        does at least one task; its one-line ``description``; ``config_class()`` and
        ``train_config_class()`` work without arguments; ``default_data`` exists."""
        try:
            check_kind(self.model)
        except GentoolError as err:
            raise self.fail("class", str(err)) from None
        model = self.model
        if not model.tasks():
            raise self.fail(
                "class", "it implements no task interface of gentool.tasks (TextGeneration, ...)"
            )
        description = model.description
        if not isinstance(description, str) or not description.strip() or "\n" in description:
            raise self.fail("class", "`description` must be one line, for 'gentool models'")
        for attribute in ("config_class", "train_config_class"):
            try:
                getattr(model, attribute)()
            except Exception as err:
                raise self.fail(
                    "class",
                    f"`{attribute}()` fails ({type(err).__name__}: {err}); every field needs a "
                    "default, so that 'gentool train NAME' works without --set",
                ) from None
        if model.default_data is not None and not Path(model.default_data).exists():
            raise self.fail("class", f"`default_data` {model.default_data} does not exist")
        self.data = self.sample_data()

    def sample_data(self) -> _Data:
        sort = data_sort(self.model)
        given, folder = self.given, self.data_dir
        if isinstance(given, ParallelPaths) or sort == PARALLEL:
            if given is None:
                source, target = write_sample_parallel(folder / "train.src", folder / "train.tgt")
                held = write_sample_parallel(folder / "held.src", folder / "held.tgt", 40, 1)
                return _Data(PARALLEL, parallel=ParallelPaths(source, target), heldout_pair=held)
            if not isinstance(given, ParallelPaths) or given.source is None:
                raise self.fail(
                    "class", "a kind that trains on parallel data takes data=api.ParallelPaths(...)"
                )
            train = ParallelPaths(Path(given.source).resolve(), Path(str(given.target)).resolve())
            if given.val_source is not None and given.val_target is not None:
                pair = (Path(given.val_source).resolve(), Path(given.val_target).resolve())
            else:
                pair = (Path(str(train.source)), Path(str(train.target)))
            return _Data(PARALLEL, parallel=train, heldout_pair=pair)
        if given:
            paths = [Path(p).resolve() for p in given]
            return _Data(sort, train=paths, heldout=paths[:1])
        if sort == IMAGES and self.model.takes_target:  # two domains: gray A, colour B
            pairs = _write_image_pairs(folder / "pairs.npz", folder / "pair-images", 48, 0)
            held_pairs = _write_image_pairs(folder / "held.npz", folder / "held", 12, 1)
            return _Data(IMAGES, [pairs], [held_pairs])
        if sort == IMAGES:
            train_images = write_sample_images(folder / "images", 48, seed=0)
            return _Data(IMAGES, [train_images], [write_sample_images(folder / "held", 12, seed=1)])
        if sort == MUSIC:
            music = write_sample_music(folder / "music", 12, seed=0)
            return _Data(MUSIC, [music], [write_sample_music(folder / "held", 3, seed=1)])
        if sort == TEXT:
            corpus = write_sample_corpus(folder / "corpus.txt")
            return _Data(TEXT, [corpus], [write_sample_corpus(folder / "heldout.txt", 40, seed=1)])
        raise self.fail(
            "class",
            f"the kit has no sample data for trains_on={sort!r}: pass data=[...] to check_model",
        )

    @_check("registered")
    def check_registered(self) -> None:
        """The kind gentool finds as ``family``/``kind`` is this class (the entry point and
        ``register_models`` work), and ``gentool models --json`` lists it with its tasks."""
        from gentool.plugins import get_registry

        try:
            found = get_registry().get(self.family, self.kind)
        except GentoolError as err:
            raise self.fail(
                "registered",
                f"{err}. Install the distribution (pip install -e .) and check its "
                "[project.entry-points.gentool] and its register_models hook",
            ) from None
        if found is not self.model:
            raise self.fail(
                "registered",
                f"the kind registered as '{self.label}' is {found.__module__}."
                f"{found.__qualname__}, not {self.model.__module__}.{self.model.__qualname__}",
            )
        listed = {(m["family"], m["kind"]): m for m in self.cli_json("registered", "models")}
        row = listed.get((self.family, self.kind))
        if row is None or row.get("tasks") != list(self.model.tasks()):
            raise self.fail(
                "registered",
                f"'gentool models --json' does not list '{self.label}' with its tasks: {row!r}",
            )

    @_check("routed")
    def check_routed(self) -> None:
        """``gentool train FAMILY`` with the kit's data and overrides trains this kind
        (``gentool.kinds.route``: the recipe's ``kind``, the ``selected_by`` keys, what it
        ``trains_on``)."""
        try:
            kind, _ = api.plan(
                self.family, overrides=self.overrides, data=self.data.train,
                parallel=self.data.parallel,
            )  # fmt: skip
        except GentoolError as err:
            raise self.fail("routed", f"the kit's data and overrides are refused: {err}") from None
        if kind is not self.model:
            raise self.fail(
                "routed",
                f"'gentool train {self.family}' on {self.data.sort} data with overrides "
                f"{self.overrides} trains the kind '{kind.kind_name()}', not '{self.kind}'; "
                "pass overrides that select it (a selected_by key, e.g. model.arch=...), or "
                "set its selected_by / trains_on",
            )

    @_check("bad-data", skippable=True)
    def check_bad_data(self) -> None:
        """Training on bad data of the kind's sort (text: not UTF-8, empty; parallel:
        misaligned, not UTF-8; images: a folder of none, of an unreadable one) raises a
        ``GentoolError`` (in the CLI: exit 1, one ``Error:`` line) and leaves no run behind."""
        out = self.runs_dir / "bad"
        for what, data, args in self.bad_data():
            try:
                self.train(out, **data)
            except GentoolError:
                pass
            except Exception as err:
                raise self.fail(
                    "bad-data",
                    f"training on {what} raised {type(err).__name__}: {err}; raise a "
                    "gentool.errors.DataError (gentool.data's readers do)",
                ) from None
            else:
                raise self.fail("bad-data", f"training on {what} succeeded; it must fail")
            argv: list[str | Path] = ["train", self.family, *args, "--out", out]
            self.cli_error("bad-data", f"'gentool train' on {what}", *argv, *self.set_args())
            self.check_nothing_left("bad-data", expected=())

    def bad_data(self) -> list[tuple[str, dict[str, Any], list[str | Path]]]:
        """(what, api.train's data arguments, gentool train's options) for each bad input."""
        bad = self.data_dir / "bad"
        bad.mkdir()
        latin1 = bad / "latin1.txt"
        latin1.write_bytes("Größer als gestern, sagte der Bäcker.\n".encode("latin-1") * 20)
        empty = bad / "empty.txt"
        empty.write_bytes(b"")
        if self.data.sort == PARALLEL:
            three, two = bad / "three.txt", bad / "two.txt"
            three.write_text("one\ntwo\nthree\n", encoding="utf-8")
            two.write_text("eins\nzwei\n", encoding="utf-8")
            return [
                (what, {"parallel": ParallelPaths(s, t)}, ["--source", s, "--target", t])
                for what, s, t in (
                    ("parallel files of 3 and 2 lines", three, two),
                    ("a source file that is not UTF-8", latin1, latin1),
                    ("empty parallel files", empty, empty),
                )
            ]
        if self.data.sort == MUSIC:
            broken, silent = bad / "broken", bad / "silent"
            broken.mkdir()
            (broken / "broken.mid").write_bytes(b"MThd\0\0\0\6" + b"\0" * 10)
            silent.mkdir()
            empty_score = self.data_dir / "silent.mid"
            write_sample_music(self.data_dir / "one", 1, bars=1)
            shutil.copy(self.data_dir / "one" / "more" / "piece00.mid", empty_score)
            symusic: Any = importlib.import_module("symusic")
            score = symusic.Score(str(empty_score))
            for track in score.tracks:
                track.notes.clear()
            score.dump_midi(str(silent / "silent.mid"))
            pairs = [
                ("a folder of an unreadable MIDI file", broken),
                ("a MIDI with no notes", silent),
            ]
        elif self.data.sort == IMAGES:
            nothing, unreadable = bad / "no-images", bad / "unreadable"
            nothing.mkdir()
            (nothing / "notes.txt").write_text("not an image\n", encoding="utf-8")
            unreadable.mkdir()
            (unreadable / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
            pairs = [("a folder with no image", nothing), ("an unreadable image", unreadable)]
        else:
            pairs = [("a file that is not UTF-8", latin1), ("an empty file", empty)]
        return [(what, {"data": [path]}, ["--data", path]) for what, path in pairs]

    @_check("train")
    def check_train(self) -> None:
        """``api.train(family, data=..., overrides=...)`` writes a run."""
        try:
            self.train(self.run_dir)
        except GentoolError as err:
            raise self.fail("train", f"training a tiny run failed: {err}") from None

    # -- the run directory ----------------------------------------------------------------------
    @_check("run-directory")
    def check_run_directory(self) -> None:
        """The run verifies (every file's sha256); ``gentool.json`` names the family, the
        kind and its tasks; every top-level file is listed; no temporary files; the JSON
        files are strict JSON; nothing was written beside the run or in the current
        directory."""
        run, check = self.run_dir, "run-directory"
        try:
            run_dir = runs.RunDirectory(run)
            run_dir.verify()
        except GentoolError as err:
            raise self.fail(check, f"the run does not verify: {err}") from None
        meta = run_dir.meta
        named = (meta.get("family"), meta.get("kind"), meta.get("tasks"))
        expected = (self.family, self.kind, list(self.model.tasks()))
        if named != expected:
            raise self.fail(
                check,
                f"{runs.META_FILE} names family, kind and tasks {named}, not {expected}",
            )
        files = {p.name: p for p in self.top_level_files(run)}
        unlisted = sorted(set(files) - set(meta.get("files", {})) - {runs.META_FILE})
        if unlisted:
            raise self.fail(
                check,
                f"{unlisted} in the run are not listed (with their sha256) in {runs.META_FILE}: "
                "files written after the run was completed, or temporary files left behind",
            )
        leftovers = sorted(
            str(p.relative_to(run))
            for p in run.rglob("*")
            if p.name.endswith(".tmp") or (p.parent == run and p.name.startswith("."))
        )
        if leftovers:
            raise self.fail(check, f"temporary files left in the run: {leftovers}")
        for name, path in files.items():
            if path.suffix in (".json", ".jsonl"):
                text = path.read_text(encoding="utf-8")
                try:
                    for line in text.splitlines() if path.suffix == ".jsonl" else [text]:
                        if line.strip():
                            strict_json(line)
                except ValueError as err:
                    raise self.fail(check, f"'{name}' is not strict JSON: {err}") from None
        self.check_nothing_left(check, expected=(run.name,))
        self.report.files = {name: path.stat().st_size for name, path in files.items()}

    @_check("no-pickle")
    def check_no_pickle(self) -> None:
        """No pickle among the run's files, by name or by content."""
        for path in self.top_level_files(self.run_dir):
            if path.suffix in PICKLE_SUFFIXES or (
                path.suffix != ".safetensors" and _is_pickle(path)
            ):
                raise self.fail(
                    "no-pickle",
                    f"'{path.name}' is a pickle (loading it can run code); save tensors with "
                    "gentool.runs.save_tensors (safetensors) and the rest as JSON",
                )

    @_check("safetensors")
    def check_safetensors(self) -> None:
        """Every ``*.safetensors`` opens with safetensors and is tagged ``gentool.family``
        (or is a Hugging Face model with its ``config.json``)."""
        from safetensors import safe_open

        # The framework the kind itself uses: numpy has no bfloat16.
        framework = "pt" if "torch" in sys.modules else "numpy"
        names = {p.name for p in self.top_level_files(self.run_dir)}
        for path in self.top_level_files(self.run_dir):
            if path.suffix != ".safetensors":
                continue
            try:
                with safe_open(str(path), framework=framework) as f:
                    metadata = f.metadata() or {}
                    for key in f.keys():  # noqa: SIM118 (not a dict)
                        f.get_tensor(key)
            except Exception as err:
                raise self.fail("safetensors", f"'{path.name}' does not open: {err}") from None
            family = metadata.get("gentool.family")
            hf_model = "format" in metadata and "config.json" in names
            if family != self.family and not (family is None and hf_model):
                raise self.fail(
                    "safetensors",
                    f"'{path.name}' has metadata gentool.family={family!r}, not "
                    f"'{self.family}'; write it with gentool.runs.save_tensors(path, tensors, "
                    "cls.family) (or as a Hugging Face model with its config.json)",
                )

    @_check("load")
    def check_load(self) -> None:
        """``api.load`` returns an instance of the class, with ``pickle.load(s)`` and
        ``torch.load`` disabled, and also from a copy of the run's top-level files with the
        original moved away (the copy serves the task checks that follow)."""
        self.copy.mkdir()
        for path in self.top_level_files(self.run_dir):
            shutil.copy2(path, self.copy / path.name)
        self.load(self.run_dir, "the run")
        away = self.work / "moved-away"
        os.rename(self.run_dir, away)
        try:
            self.load(self.copy, "a copy of the run's files, with the run moved away,")
        finally:
            os.rename(away, self.run_dir)

    def load(self, where: Path, what: str) -> None:
        try:
            with _no_pickle():
                model = api.load(where)
        except _PickleUsed as err:
            raise self.fail(
                "load", f"loading the run called {err}: runs load from safetensors and JSON only"
            ) from None
        except Exception as err:
            raise self.fail(
                "load",
                f"{what} does not load ({type(err).__name__}: {err}); a run must be "
                "self-contained: no absolute paths, nothing needed from checkpoints/",
            ) from None
        if not isinstance(model, self.model):
            raise self.fail("load", f"api.load returned {type(model).__name__}")

    # -- text generation and scoring ------------------------------------------------------------
    @_check("generate", task=TextGeneration)
    def check_generate(self) -> None:
        """``gentool generate RUN --seed 1 -n 3 --json`` twice gives the same 3 strings;
        ``generate`` yields them (an iterator, each as it is made), and a copy of the run,
        loaded with ``api.load``, gives the same again."""
        check = "generate"
        args = ("generate", self.run_dir, "--seed", "1", "-n", "3", "--max-tokens", "20")
        first = self.cli_json(check, *args)
        second = self.cli_json(check, *args)
        samples = first.get("samples") if isinstance(first, dict) else None
        if not isinstance(samples, list) or not all(isinstance(s, str) for s in samples):
            raise self.fail(check, f"'generate --json' has no list of strings: {first!r}")
        if len(samples) != 3:
            raise self.fail(check, f"asked for 3 samples (-n 3), got {len(samples)}")
        if first != second:
            raise self.fail(
                check,
                "'gentool generate --seed 1' gave different text on two runs: "
                f"{samples!r} then {second.get('samples')!r}; draw every random number from "
                "a generator seeded with request.seed",
            )
        request = GenerationRequest(num_samples=3, max_tokens=20, seed=1)
        random.random()  # disturb the global generators: the seed alone must decide
        made = self.loaded(self.copy).generate(request)
        if not isinstance(made, Iterator):
            raise self.fail(
                check,
                f"generate returned a {type(made).__name__}; yield each sample as it is made "
                "(TextGeneration.generate is a generator), so that the first prints at once",
            )
        again = list(made)
        if again != samples:
            raise self.fail(
                check,
                f"a copy of the run, loaded with api.load, gave {again!r} for the request the "
                f"command line answered with {samples!r}",
            )

    @_check("generate-seed", task=TextGeneration, skippable=True)
    def check_generate_seed(self) -> None:
        """Different seeds give different text (skip it for a kind deterministic by design)."""
        model = self.loaded(self.copy)
        seen = {
            tuple(model.generate(GenerationRequest(num_samples=2, max_tokens=20, seed=seed)))
            for seed in range(5)
        }
        if len(seen) == 1:
            raise self.fail(
                "generate-seed",
                "seeds 0-4 all gave the same text: generate ignores request.seed (pass "
                "skip=['generate-seed'] if the kind is deterministic by design)",
            )

    @_check("evaluate", task=TextScoring)
    def check_evaluate(self) -> None:
        """``gentool evaluate RUN --data HELDOUT --json`` prints metrics; an empty file gives
        one ``Error:`` line."""
        check = "evaluate"
        self.evaluate(check, "--data", *self.data.heldout)
        empty = self.data_dir / "empty-heldout.txt"
        empty.write_bytes(b"")
        args = ("evaluate", self.run_dir, "--data", empty)
        self.cli_error(check, "'gentool evaluate' on an empty file", *args)

    def evaluate(self, check: str, *args: str | Path) -> None:
        found = self.cli_json(check, "evaluate", self.run_dir, *args)
        metrics = found.get("metrics") if isinstance(found, dict) else None
        if not isinstance(metrics, dict) or not metrics:
            raise self.fail(check, f"'evaluate --json' has no metrics: {found!r}")

    # -- music ----------------------------------------------------------------------------------
    @_check("generate-music", task=MusicGeneration)
    def check_generate_music(self) -> None:
        """``gentool generate RUN -o a.mid --seed 1`` twice writes the same bytes, a MIDI file
        that reads back with notes; ``-n 2 --out-dir`` writes two; ``--pianoroll`` a PNG;
        ``generate_music`` yields usable pieces (``Decoded``) on a copy of the run."""
        symusic: Any = importlib.import_module("symusic")
        check, out = "generate-music", self.work / "music-out"
        args = ("--seed", "1", "--max-tokens", "200")
        one, two = out / "a.mid", out / "b.mid"
        self.cli(check, "generate", self.run_dir, "-o", one, *args, "--pianoroll", out / "a.png")
        self.cli(check, "generate", self.run_dir, "-o", two, *args)
        if not one.is_file() or one.read_bytes() != two.read_bytes():
            raise self.fail(check, "'generate -o FILE --seed 1' twice gave different files")
        if symusic.Score(str(one)).note_num() == 0:
            raise self.fail(check, f"'{one}' has no notes")
        if not (out / "a.png").is_file():
            raise self.fail(check, "'--pianoroll a.png' wrote no file")
        self.cli(check, "generate", self.run_dir, "-n", "2", "--out-dir", out / "many", *args)
        written = sorted((out / "many").glob("*.mid"))
        if len(written) != 2:
            raise self.fail(check, f"-n 2 --out-dir wrote {len(written)} MIDI files")
        model = self.loaded(self.copy)
        pieces = list(model.generate_music(MusicRequest(num_samples=2, max_tokens=200, seed=1)))
        if len(pieces) != 2 or not all(p.usable for p in pieces):
            raise self.fail(check, "generate_music must yield request.num_samples usable pieces")

    @_check("evaluate-music", task=MusicScoring)
    def check_evaluate_music(self) -> None:
        """``gentool evaluate RUN --data HELDOUT --json`` gives the tokens' perplexity and
        the statistics of generated pieces."""
        found = self.cli_json("evaluate-music", "evaluate", self.run_dir, "--data",
                              *self.data.heldout, "-n", "2")  # fmt: skip
        metrics = found.get("metrics") if isinstance(found, dict) else None
        if not isinstance(metrics, dict) or not {"perplexity", "pitch_class_distance"} <= set(
            metrics
        ):
            raise self.fail("evaluate-music", f"'evaluate --json' lacks metrics: {found!r}")

    # -- translation ----------------------------------------------------------------------------
    @_check("translate", task=Translation)
    def check_translate(self) -> None:
        """``gentool translate RUN TEXT... --json`` gives one translation (one line) per
        text, in order, the same on a second call, the same for the same text twice in a
        batch, the same from stdin, and the same from a copy of the run through
        ``api.translate``; an empty stdin line is answered by a line too."""
        check = "translate"
        source = self.data.heldout_pair[0] if self.data.heldout_pair else None
        lines = source.read_text(encoding="utf-8").splitlines() if source else []
        first, second = (lines + sample_lines(2, seed=5))[:2]
        texts = [first, second, "A dog.", first]  # the first twice: same input, same output
        request, options = TranslationRequest(max_tokens=12), ["--max-tokens", "12"]
        model = self.loaded(self.copy)
        for batch in (texts, [first, "", "A dog."]):
            done = model.translate(batch, request)
            if not (
                isinstance(done, list)
                and len(done) == len(batch)
                and all(isinstance(t, str) and "\n" not in t for t in done)
            ):
                raise self.fail(
                    check,
                    f"translate() of {batch!r} returned {done!r}; return one single-line "
                    "string per text, in order (an empty text too)",
                )
        translations = self.translations(check, [*texts, *options], texts)
        if self.translations(check, [*texts, *options], texts) != translations:
            raise self.fail(
                check, "two calls of 'gentool translate' with the same texts translate differently"
            )
        if translations[0] != translations[3]:
            raise self.fail(
                check,
                f"the same text, twice in one batch, was translated as {translations[0]!r} and "
                f"{translations[3]!r}; each sentence's translation must not depend on the "
                "others in its batch (check the padding masks)",
            )
        stdin = "".join(f"{t}\n" for t in texts)
        if self.translations(check, options, texts, stdin) != translations:
            raise self.fail(
                check, "texts on stdin are translated differently from the same texts as arguments"
            )
        blank = self.cli(check, "translate", self.run_dir, *options, input=f"{first}\n\nA dog.\n")
        if len(blank.stdout.splitlines()) != 3:
            raise self.fail(
                check,
                f"3 stdin lines, the second empty, gave {len(blank.stdout.splitlines())} "
                f"lines: {blank.stdout!r}; answer every line (an empty one too) with one line",
            )
        again = api.translate(model, texts, request)
        if again != translations:
            raise self.fail(
                check,
                f"a copy of the run, through api.translate, gave {again!r}, not {translations!r}",
            )

    def translations(
        self, check: str, args: list[str], texts: list[str], stdin: str | None = None
    ) -> list[str]:
        result = self.cli(check, "translate", self.run_dir, *args, "--json", input=stdin)
        records = []
        for line in result.stdout.splitlines():
            try:
                records.append(strict_json(line))
            except ValueError as err:
                raise self.fail(check, f"'translate --json' printed {line!r} ({err})") from None
        sources = [r.get("source") if isinstance(r, dict) else None for r in records]
        outputs = [r.get("translation") if isinstance(r, dict) else None for r in records]
        if sources != texts or not all(isinstance(t, str) and "\n" not in t for t in outputs):
            raise self.fail(
                check,
                f"'translate --json' on {len(texts)} texts printed {records!r}; translate() "
                "must return one single-line string per text, in order",
            )
        return outputs  # type: ignore[return-value]

    @_check("evaluate-translation", task=Translation)
    def check_evaluate_translation(self) -> None:
        """``gentool evaluate RUN --source S --target T --json`` prints metrics; files of
        different lengths give one ``Error:`` line."""
        check = "evaluate-translation"
        if self.data.heldout_pair is None:
            (source, target) = write_sample_parallel(
                self.data_dir / "held.src", self.data_dir / "held.tgt", 40, 1
            )
        else:
            source, target = self.data.heldout_pair
        self.evaluate(check, "--source", source, "--target", target)
        short = self.data_dir / "short.tgt"
        short.write_text("eins\n", encoding="utf-8")
        args = ("evaluate", self.run_dir, "--source", source, "--target", short)
        self.cli_error(check, "'gentool evaluate' on misaligned files", *args)

    # -- images ---------------------------------------------------------------------------------
    @_check("generate-images", task=ImageGeneration)
    def check_generate_images(self) -> None:
        """``gentool generate RUN --seed 1 -n 3 --out-dir DIR --json`` writes 3 PNGs, the
        same bytes from a copy of the run; ``--grid`` writes one image; ``api.generate_images``
        gives 3 images of one size; ``--class`` takes a class of a conditional model, and is
        one ``Error:`` line for an unknown class or an unconditional model."""
        check = "generate-images"
        first = self.images(self.run_dir, 1, "images-1")
        if self.images(self.copy, 1, "images-1-again") != first:
            raise self.fail(
                check,
                "'gentool generate --seed 1' drew different images from a copy of the run; "
                "draw every random number from a generator seeded with request.seed",
            )
        grid = self.data_dir / "grid.png"
        self.cli(check, "generate", self.run_dir, "--seed", "1", "-n", "3", "--grid", grid)
        _open(grid)
        model = self.loaded(self.copy)
        images = model.generate_images(GenerationRequest(num_samples=3, seed=1))
        if len(images) != 3 or len({getattr(im, "size", None) for im in images}) != 1:
            raise self.fail(check, f"generate_images(-n 3) gave {images!r}: 3 PIL images of a size")
        classes = model.classes()
        if classes:
            out = self.data_dir / "class-0"
            self.cli(check, "generate", self.run_dir, "--class", classes[0], "-n", "2",
                     "--out-dir", out)  # fmt: skip
            if len(list(out.glob("*.png"))) != 2:
                raise self.fail(check, f"'--class {classes[0]} -n 2' did not write 2 images")
            label = "no-such-class"
        else:
            label = "0"
        out = self.data_dir / "class-bad"
        args = ("generate", self.run_dir, "--class", label, "--out-dir", out)
        self.cli_error(check, f"'gentool generate --class {label}'", *args)

    def images(self, run: Path, seed: int, name: str) -> list[bytes]:
        out = self.data_dir / name
        found = self.cli_json(
            "generate-images", "generate", run, "--seed", str(seed), "-n", "3", "--out-dir", out
        )
        files = sorted(out.glob("*.png"))
        if len(files) != 3 or not isinstance(found, dict) or found.get("images") != 3:
            raise self.fail(
                "generate-images", f"asked for 3 images (-n 3), got {len(files)}: {found!r}"
            )
        return [f.read_bytes() for f in files]

    @_check("generate-images-seed", task=ImageGeneration, skippable=True)
    def check_generate_images_seed(self) -> None:
        """Seeds 1 and 2 draw different images."""
        if self.images(self.run_dir, 2, "images-2") == self.images(self.run_dir, 1, "images-1b"):
            raise self.fail("generate-images-seed", "seeds 1 and 2 drew the same images")

    @_check("evaluate-images", task=ImageScoring)
    def check_evaluate_images(self) -> None:
        """``gentool evaluate RUN --data IMAGES --json`` prints metrics; a folder with no
        image gives one ``Error:`` line."""
        check = "evaluate-images"
        self.evaluate(check, "--data", *self.data.heldout)
        nothing = self.data_dir / "no-images"
        nothing.mkdir(exist_ok=True)
        (nothing / "notes.txt").write_text("not an image\n", encoding="utf-8")
        args = ("evaluate", self.run_dir, "--data", nothing)
        self.cli_error(check, "'gentool evaluate' on a folder without images", *args)

    @_check("restore", task=ImageRestoration)
    def check_restore(self) -> None:
        """``gentool restore RUN IMAGE -o OUT.png`` writes an image, the same bytes again and
        from a copy of the run; a folder (gray and RGB images of several sizes, a
        sub-folder, a JPEG) gives a folder with the same relative names as PNG, each as the
        file alone gives it; every output is one fixed factor times its input's size;
        ``restore`` returns one image per input; a file that is not an image gives one
        ``Error:`` line."""
        check = "restore"
        inputs = self.restore_inputs()
        single = inputs / "a.png"
        outputs = []
        for run, name in (
            (self.run_dir, "a1.png"),
            (self.run_dir, "a2.png"),
            (self.copy, "a3.png"),
        ):
            out = self.data_dir / name
            found = self.cli_json(check, "restore", run, single, "-o", out)
            if not isinstance(found, dict) or found.get("files") != [str(out)]:
                raise self.fail(check, f"'restore --json' does not list {out}: {found!r}")
            outputs.append(out.read_bytes())
        if len(set(outputs)) != 1:
            raise self.fail(
                check,
                "restoring one image three times (twice with the run, once with a copy) gave "
                "different images; restoration must be deterministic",
            )
        folder = self.data_dir / "restored"
        found = self.cli_json(check, "restore", self.run_dir, inputs, "-o", folder)
        expected = ["a.png", "b.png", "c.png", "sub/d.png"]
        written = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        listed = sorted(str(Path(p).relative_to(folder)) for p in found.get("files", []))
        if written != expected or listed != expected:
            raise self.fail(
                check,
                f"restoring a folder wrote {written} (listed {listed}), not {expected}: the "
                "same relative names, as PNG",
            )
        if (folder / "a.png").read_bytes() != outputs[0]:
            raise self.fail(check, "an image restored in a folder differs from it restored alone")
        sources = ["a.png", "b.png", "c.jpg", "sub/d.png"]
        sizes = [
            (_open(inputs / s).size, _open(folder / o).size)
            for s, o in zip(sources, expected, strict=True)
        ]
        (w0, h0), (ow0, _) = sizes[0]
        factor = ow0 / w0
        if not all(
            (ow, oh) == (round(w * factor), round(h * factor)) for (w, h), (ow, oh) in sizes
        ):
            raise self.fail(
                check,
                f"input and output sizes {sizes}: an output must be one fixed factor times its "
                "input's size (1 to keep it)",
            )
        restored = self.loaded(self.copy).restore(
            [_open(inputs / "a.png"), _open(inputs / "b.png")]
        )
        if len(restored) != 2:
            raise self.fail(check, f"restore() of 2 images returned {len(restored)}")
        notes = self.data_dir / "notes.txt"
        notes.write_text("not an image\n", encoding="utf-8")
        out = self.data_dir / "notes.png"
        args = ("restore", self.run_dir, notes, "-o", out)
        self.cli_error(check, "'gentool restore' of a text file", *args)
        if out.exists():
            raise self.fail(check, "a failed restore left its output file")

    @_check("transform", task=ImageTranslation)
    def check_transform(self) -> None:
        """``gentool transform RUN IMAGE -o OUT.png`` writes an image of the input's size,
        the same bytes again and from a copy of the run; a folder gives a folder with the
        same relative names as PNG, each as the file alone gives it; ``--grid`` puts input
        and output side by side; ``transform`` returns one image per input; a file that is
        not an image gives one ``Error:`` line and leaves no output."""
        check = "transform"
        inputs = self.restore_inputs()
        single = inputs / "a.png"
        outputs = []
        for run, name in (
            (self.run_dir, "t1.png"),
            (self.run_dir, "t2.png"),
            (self.copy, "t3.png"),
        ):
            out = self.data_dir / name
            found = self.cli_json(check, "transform", run, single, "-o", out)
            if not isinstance(found, dict) or found.get("files") != [str(out)]:
                raise self.fail(check, f"'transform --json' does not list {out}: {found!r}")
            outputs.append(out.read_bytes())
        if len(set(outputs)) != 1:
            raise self.fail(check, "translating one image three times gave different images")
        if _open(self.data_dir / "t1.png").size != _open(single).size:
            raise self.fail(check, "a translated image does not keep its input's size")
        folder = self.data_dir / "transformed"
        found = self.cli_json(check, "transform", self.run_dir, inputs, "-o", folder)
        expected = ["a.png", "b.png", "c.png", "sub/d.png"]
        written = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        if written != expected:
            raise self.fail(check, f"translating a folder wrote {written}, not {expected}")
        if (folder / "a.png").read_bytes() != outputs[0]:
            raise self.fail(check, "an image translated in a folder differs from it alone")
        grid = self.data_dir / "grid.png"
        self.cli_json(check, "transform", self.run_dir, single, "-o", grid, "--grid")
        (w, h), (gw, gh) = _open(single).size, _open(grid).size
        if gw < 2 * w or gh < h:
            raise self.fail(check, f"--grid of a {w}x{h} image is {gw}x{gh}: not side by side")
        made = self.loaded(self.copy).transform([_open(inputs / "a.png"), _open(inputs / "b.png")])
        if len(made) != 2:
            raise self.fail(check, f"transform() of 2 images returned {len(made)}")
        notes = self.data_dir / "notes.txt"
        notes.write_text("not an image\n", encoding="utf-8")
        out = self.data_dir / "notes.png"
        self.cli_error(check, "'gentool transform' of a text file", "transform", self.run_dir,
                       notes, "-o", out)  # fmt: skip
        if out.exists():
            raise self.fail(check, "a failed transform left its output file")

    def restore_inputs(self) -> Path:
        """Images to restore: RGB and gray, square and not, odd sizes, a JPEG, a sub-folder."""
        from PIL import Image

        folder = self.data_dir / "to-restore"
        (folder / "sub").mkdir(parents=True, exist_ok=True)
        source = next(iter(sorted((self.data_dir / "held").rglob("*.png"))), None)
        base = _open(source).convert("RGB") if source else Image.new("RGB", (32, 32), (90, 40, 20))
        base.resize((32, 32)).save(folder / "a.png")
        base.resize((24, 40)).save(folder / "b.png")
        base.resize((27, 19)).save(folder / "c.jpg")
        base.convert("L").resize((33, 33)).save(folder / "sub" / "d.png")
        return folder

    # -- every kind -----------------------------------------------------------------------------
    @_check("info")
    def check_info(self) -> None:
        """``gentool info RUN --json`` is strict JSON naming the family and kind
        (``describe()`` is serialisable)."""
        found = self.cli_json("info", "info", self.run_dir)
        if not isinstance(found, dict) or (found.get("family"), found.get("kind")) != (
            self.family,
            self.kind,
        ):
            raise self.fail("info", f"'info --json' does not name the family and kind: {found!r}")
        if not isinstance(found.get("model"), dict):
            raise self.fail("info", "describe() must return a dict")

    @_check("atomic", skippable=True)
    def check_atomic(self) -> None:
        """Retraining over the run with ``--force`` while ``save()`` crashes half-way leaves
        the old run complete and verifying (or, if training wrote a checkpoint, an
        unfinished run that ``--resume`` continues and no reader accepts), and nothing else."""
        check = "atomic"
        meta_before = (self.run_dir / runs.META_FILE).read_bytes()
        original = self.model.save

        def crashing_save(model: Model, directory: Path) -> Any:
            original(model, directory)
            written = [p for p in directory.iterdir() if p.is_file()]
            if written:  # and a half-written file, as a crash mid-write leaves
                biggest = max(written, key=lambda p: p.stat().st_size)
                biggest.write_bytes(biggest.read_bytes()[: biggest.stat().st_size // 2])
            raise _SimulatedCrash("simulated crash in save()")

        try:
            with mock.patch.object(self.model, "save", crashing_save):
                self.train(self.run_dir, force=True)
        except _SimulatedCrash:
            pass
        except GentoolError as err:
            raise self.fail(check, f"retraining with force=True failed: {err}") from None
        else:
            raise self.fail(check, "save() was not called by api.train")
        meta_path = self.run_dir / runs.META_FILE
        if meta_path.is_file():
            if meta_path.read_bytes() != meta_before:
                raise self.fail(
                    check,
                    f"a crash in save() left a different {runs.META_FILE}: the run is written "
                    "in place, not completed last",
                )
            self.check_run_directory()
        elif not (self.run_dir / CHECKPOINTS_DIR).is_dir():
            left = sorted(p.name for p in self.run_dir.iterdir()) if self.run_dir.is_dir() else []
            raise self.fail(
                check,
                "a crash in save() while replacing a run (--force) lost the old run, and left "
                f"no resumable one in its place (left: {left})",
            )
        else:
            # Training wrote a checkpoint: the unfinished run is kept, to be resumed. It must
            # not pass for a complete run.
            try:
                runs.RunDirectory(self.run_dir)
            except GentoolError:
                pass
            else:
                raise self.fail(check, "an unfinished run is accepted as a complete run")
        self.check_nothing_left(check, expected=(self.run_dir.name,))

    @_check("train-json", skippable=True)
    def check_train_json(self) -> None:
        """The command line's own training: ``gentool train FAMILY ... --force --json``
        replaces the run, prints strict JSON naming it, and the run verifies."""
        check = "train-json"
        args: list[str | Path] = ["train", self.family, "--out", self.run_dir, "--force"]
        args += ["--seed", "0", *self.data.train_args(), *self.set_args()]
        found = self.cli_json(check, *args)
        if not isinstance(found, dict) or found.get("family") != self.family:
            raise self.fail(check, f"'train --json' does not name the family: {found!r}")
        if Path(found.get("run", "")).resolve() != self.run_dir:
            raise self.fail(check, f"'train --json' names run {found.get('run')!r}")
        self.check_run_directory()


def _open(path: Path) -> Any:
    """A PIL image, fully read."""
    from gentool.data.images import open_image

    return open_image(path)


# -- damaged runs --------------------------------------------------------------------------

#: The kinds of damage ``damage_run`` picks from. "rehashed": gentool.json's size and sha256
#: are updated to match the damaged file, as a deliberate edit would.
DAMAGES = (
    "truncate",
    "flip",
    "flip-rehashed",
    "edit-json",
    "edit-json-rehashed",
    "add-entry",
    "add-file",
    "remove",
    "link-out",
)
_ODD_VALUES: tuple[Any, ...] = (
    None, True, -1, 0, 1, 2**31, 10**30, 1e308, -1e308, 0.5, float("nan"), float("inf"),
    "", "x", "ngram", "rnn", [], {}, [1, 2], {"a": 1},
)  # fmt: skip
_ADDED_FILES = ("pytorch_model.bin", "model.bin", "extra.safetensors", "notes.txt", ".hidden")


def damage_run(run: Path, copy: Path, rng: random.Random, outside: Path) -> str:
    """Copy the run directory ``run`` to ``copy`` and damage the copy in one way picked by
    ``rng`` from ``DAMAGES``, as a disk, a sync tool, a careless edit or a hostile download
    might: truncate a file, flip a byte, change a JSON value (gentool.json, config.json, a
    safetensors header ...), list a path outside the run, add a file, remove one, or make
    one a link out of the run. ``outside`` is a file outside the run that added entries
    and links point at. Returns what was done, for a failure message."""
    shutil.copytree(run, copy, symlinks=True)
    meta_path = copy / runs.META_FILE
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    files = sorted(p.name for p in copy.iterdir() if p.is_file())
    damage = rng.choice(DAMAGES)
    name = rng.choice(files)
    path = copy / name
    rehash = damage.endswith("-rehashed")

    if damage == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[: rng.randrange(len(data) + 1)])
        what = f"{name} truncated"
    elif damage.startswith("flip"):
        flipped = bytearray(path.read_bytes())
        if flipped:
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(flipped))
        what = f"a bit of {name} flipped"
    elif damage.startswith("edit-json"):
        json_files = [f for f in files if f.endswith((".json", ".safetensors"))]
        name = rng.choice(json_files)
        path = copy / name
        what = _edit_json(path, rng)
    elif damage == "add-entry":
        entry = rng.choice(
            [f"../{outside.name}", str(outside), f"sub/{name}", "..", ".", "", "a\\b"]
        )
        meta["files"][entry] = {
            "bytes": outside.stat().st_size,
            "sha256": runs.sha256_file(outside),
        }
        what = f"gentool.json lists {entry!r}"
    elif damage == "add-file":
        name = rng.choice(_ADDED_FILES)
        path = copy / name
        path.write_bytes(outside.read_bytes())
        rehash = rng.random() < 0.5
        what = f"{name} added" + (", and listed" if rehash else "")
    elif damage == "remove":
        path.unlink()
        what = f"{name} removed"
    else:  # link-out
        path.unlink()
        path.symlink_to(outside.resolve())
        rehash = rng.random() < 0.5
        what = f"{name} made a link out of the run" + (", rehashed" if rehash else "")
    if rehash and name != runs.META_FILE:
        meta["files"][name] = {"bytes": path.stat().st_size, "sha256": runs.sha256_file(path)}
        what += " (gentool.json updated to match)"
    if name != runs.META_FILE or damage == "add-entry":
        meta_path.write_text(json.dumps(meta), encoding="utf-8")
    return f"{damage}: {what}"


def _edit_json(path: Path, rng: random.Random) -> str:
    """Change one value of the JSON in ``path`` (a safetensors file: of its header), or
    drop it; return what was done."""
    raw = path.read_bytes()
    header = path.suffix == ".safetensors"
    if header:
        size = int.from_bytes(raw[:8], "little")
        text, rest = raw[8 : 8 + size], raw[8 + size :]
    else:
        text, rest = raw, b""
    try:
        doc = json.loads(text)
    except ValueError:
        return f"{path.name} left alone (not JSON)"
    places: list[tuple[Any, Any]] = []  # (container, key) of every value

    def walk(node: Any) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            places.append((node, key))
            if isinstance(value, (dict, list)):
                walk(value)

    if isinstance(doc, (dict, list)):
        walk(doc)
    if not places:
        return f"{path.name} left alone (no values)"
    container, key = rng.choice(places)
    if rng.random() < 0.2:
        del container[key]
        what = f"{path.name}: {key!r} removed"
    else:
        container[key] = rng.choice(_ODD_VALUES)
        what = f"{path.name}: {key!r} set to {container[key]!r}"
    data = json.dumps(doc).encode()
    path.write_bytes(len(data).to_bytes(8, "little") + data + rest if header else data)
    return what


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` (links not followed): a file's size and modification time
    (a folder's change with what is made and removed in it)."""
    found = {}
    for path in root.rglob("*"):
        stat = path.lstat()
        found[str(path.relative_to(root))] = (
            (0, 0) if path.is_dir() else (stat.st_size, stat.st_mtime_ns)
        )
    return found


def fuzz_run(
    run: Path,
    commands: Sequence[Sequence[str | Path]],
    work: Path,
    count: int = 300,
    seed: int = 0,
    outputs: Sequence[str] = (),
) -> dict[str, int]:
    """Damage copies of the run ``run`` ``count`` times (``damage_run``, seeded) and run each
    of ``commands`` (gentool arguments; ``"RUN"`` stands for the damaged copy) on every copy,
    in-process, in ``work`` (a fresh directory). Each must exit 0, or 1 with exactly one
    ``Error:`` line; none may raise (a traceback) or write anything, anywhere under
    ``work``, but the files named in ``outputs`` (a command's ``--grid grid.png``, say;
    removed after each command). Raises ConformanceError on the first that does not;
    returns how many ended in each exit code."""
    rng = random.Random(seed)
    work.mkdir(parents=True, exist_ok=True)
    outside = work / "secret.txt"
    outside.write_text("a file outside the run\n", encoding="utf-8")
    outcomes = {"0": 0, "1": 0}
    with contextlib.chdir(work):
        for i in range(count):
            copy = work / f"run-{i}"
            what = damage_run(run, copy, rng, outside)
            for command in commands:
                args = [str(copy) if a == "RUN" else str(a) for a in command]
                before = _tree(work)
                where = f"damage {i} ({what}), 'gentool {' '.join(map(str, command))}'"
                try:
                    result = invoke(*args, ok=False)
                except Exception:
                    raise ConformanceError(f"{where} raised:\n{traceback.format_exc()}") from None
                errors = [x for x in result.stderr.splitlines() if x.startswith("Error: ")]
                if result.exit_code not in (0, 1) or (result.exit_code == 1) != (len(errors) == 1):
                    raise ConformanceError(
                        f"{where} exited {result.exit_code} with {len(errors)} Error: lines:\n"
                        f"{result.stderr}"
                    )
                for output in outputs:
                    (work / output).unlink(missing_ok=True)
                if _tree(work) != before:
                    raise ConformanceError(f"{where} wrote or changed files under {work}")
                outcomes[str(result.exit_code)] += 1
            shutil.rmtree(copy)
    return outcomes


# -- helpers ------------------------------------------------------------------------------


def _is_pickle(path: Path) -> bool:
    """A raw pickle (protocol 2-5: PROTO opcode ... STOP), or a zip holding one (what
    torch.save writes)."""
    with path.open("rb") as f:
        head = f.read(2)
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
    if len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5 and last == b".":
        return True
    if zipfile.is_zipfile(path):
        with contextlib.suppress(zipfile.BadZipFile), zipfile.ZipFile(path) as archive:
            return any(name.endswith((".pkl", ".pickle")) for name in archive.namelist())
    return False


@contextlib.contextmanager
def _no_pickle() -> Iterator[None]:
    """Make pickle.load(s), and torch.load if torch is imported, raise _PickleUsed."""

    def refuse(name: str) -> Any:
        def stand_in(*args: Any, **kwargs: Any) -> Any:
            raise _PickleUsed(name)

        return stand_in

    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(pickle, "load", refuse("pickle.load")))
        stack.enter_context(mock.patch.object(pickle, "loads", refuse("pickle.loads")))
        torch = sys.modules.get("torch")
        if torch is not None:
            stack.enter_context(mock.patch.object(torch, "load", refuse("torch.load")))
        yield


__all__ = [
    "CHECKS",
    "DAMAGES",
    "SAMPLE_SHAPES",
    "Check",
    "ConformanceError",
    "ModelReport",
    "assert_error",
    "check_family",
    "check_model",
    "damage_run",
    "data_sort",
    "fuzz_run",
    "invoke",
    "invoke_json",
    "registered",
    "run_gentool",
    "sample_lines",
    "sample_pairs",
    "skippable_checks",
    "strict_json",
    "write_sample_corpus",
    "write_sample_images",
    "write_sample_music",
    "write_sample_parallel",
]
