"""The conformance kit: one call that checks a family keeps gentool's promises.

A plugin's own tests call it on each of its families::

    from gentool.testing import check_family
    from gentool_markov import MarkovFamily

    def test_markov_conforms(tmp_path):
        check_family(MarkovFamily, tmp_path=tmp_path)

It trains a tiny run on CPU through the public paths (``gentool.api`` and the ``gentool``
command line, in-process), and checks what every command and user relies on: bad data
gives a ``GentoolError``, the run directory is complete, checksummed and holds no pickle,
the run loads from safetensors and JSON alone, a crash while saving leaves the old run,
generation repeats with a seed, and every ``--json`` output is strict JSON. A failed
check raises ``AssertionError`` (``ConformanceError``) saying which promise is broken
and how to keep it. See docs/plugins.md, "Testing a plugin".
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import pickle
import random
import shutil
import sys
import tempfile
import traceback
import zipfile
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

from gentool import api, runs
from gentool.errors import GentoolError
from gentool.family import GENERATE_IMAGE, GENERATE_TEXT, SCORE_TEXT, Family, GenerationRequest
from gentool.family import check_family as check_family_class

#: Every check, in the order they run; ``check_family(skip=...)`` may skip SKIPPABLE ones.
CHECKS = (
    "class",
    "registered",
    "bad-data",
    "train",
    "run-directory",
    "no-pickle",
    "safetensors",
    "load",
    "generate",
    "generate-seed",
    "evaluate",
    "info",
    "atomic",
    "train-json",
)
SKIPPABLE = ("bad-data", "generate-seed", "atomic", "train-json")
KNOWN_TASKS = (GENERATE_TEXT, SCORE_TEXT)
#: Where training checkpoints go in a run; subdirectories are not part of the run's files.
CHECKPOINTS_DIR = "checkpoints"
#: Files that unpickle when loaded: a run must not contain them.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")


class ConformanceError(AssertionError):
    """A family broke one of gentool's promises; the message names the check and the fix."""


@dataclass
class FamilyReport:
    """What ``check_family`` checked: the run it trained, its files, and the checks."""

    family: str
    run: Path  # removed afterwards unless check_family was given tmp_path
    files: dict[str, int] = field(default_factory=dict)  # top-level file -> bytes
    passed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # check -> why

    def __str__(self) -> str:
        text = f"{self.family}: {len(self.passed)} checks passed ({', '.join(self.passed)})"
        if self.skipped:
            text += "; skipped: " + ", ".join(f"{k} ({v})" for k, v in self.skipped.items())
        return text


# -- sample data ------------------------------------------------------------------------

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


# -- registering a family for a test ------------------------------------------------------


@contextlib.contextmanager
def registered(*families: type[Family]) -> Iterator[None]:
    """Make ``families`` known to this process for the duration of the block, as if a
    distribution registered them: for testing variants of a family that no installed
    distribution provides. An installed family's own test should not need this."""
    from gentool.plugins import PluginInfo, get_registry

    registry = get_registry()
    saved = (dict(registry.families), dict(registry.owners))
    owner = PluginInfo(
        name="gentool.testing", module=__name__, distribution="(gentool.testing)", version=""
    )
    for family in families:
        check_family_class(family)
        registry.families[family.name] = family
        registry.owners[family.name] = owner
    try:
        yield
    finally:
        registry.families.clear()
        registry.families.update(saved[0])
        registry.owners.clear()
        registry.owners.update(saved[1])


# -- the kit --------------------------------------------------------------------------------


def check_family(
    family_class: type[Family],
    *,
    data: Sequence[str | Path] | None = None,
    overrides: Sequence[str] = (),
    tmp_path: str | Path | None = None,
    skip: Collection[str] = (),
) -> FamilyReport:
    """Train, save, reload and use a tiny run of ``family_class``; raise ConformanceError
    (an AssertionError) at the first broken promise, or return a FamilyReport.

    ``data``: training files (default: a few hundred lines of English written by
    ``write_sample_corpus``). ``overrides``: ``--set`` values that make training tiny
    and fast, e.g. ``["train.max_steps=2"]``. ``tmp_path``: where to work (kept); by
    default a temporary directory, removed afterwards. ``skip``: checks to leave out,
    from SKIPPABLE (``generate-seed`` for a family that is deterministic by design).
    """
    unknown = sorted(set(skip) - set(SKIPPABLE))
    if unknown:
        raise ValueError(f"cannot skip {unknown}; skippable checks: {', '.join(SKIPPABLE)}")
    if tmp_path is not None:
        work = Path(tmp_path) / f"check-{getattr(family_class, 'name', 'family')}"
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
        return _Checker(family_class, work, data, overrides, skip).run()
    with tempfile.TemporaryDirectory(prefix="gentool-check-") as tmp:
        return _Checker(family_class, Path(tmp), data, overrides, skip).run()


class _PickleUsed(BaseException):
    """Raised by the stand-ins for pickle.load and torch.load while a run loads (a
    BaseException, so that a family's own ``except Exception`` cannot hide it)."""


def _with_subclasses(cls: type[Family]) -> list[type[Family]]:
    found = [cls]
    sub: type[Family]
    for sub in cls.__subclasses__():
        found += _with_subclasses(sub)
    return found


class _SimulatedCrash(Exception):
    """Raised by the stand-in for Family.save in the atomic check."""


class _Checker:
    def __init__(
        self,
        family_class: type[Family],
        work: Path,
        data: Sequence[str | Path] | None,
        overrides: Sequence[str],
        skip: Collection[str],
    ) -> None:
        self.family = family_class
        self.name = str(getattr(family_class, "name", family_class.__qualname__))
        self.work = work.resolve()
        self.overrides = list(overrides)
        self.skip = set(skip)
        self.data_dir = self.work / "data"
        self.data_dir.mkdir()
        if data:
            self.train_files = [Path(p).resolve() for p in data]
            self.heldout = self.train_files[0]
        else:
            self.train_files = [write_sample_corpus(self.data_dir / "corpus.txt")]
            self.heldout = write_sample_corpus(self.data_dir / "heldout.txt", 40, seed=1)
        self.runs_dir = self.work / "runs"
        self.run_dir = self.runs_dir / "run"
        self.report = FamilyReport(family=self.name, run=self.run_dir)

    # -- plumbing ---------------------------------------------------------------------------
    def fail(self, check: str, message: str) -> ConformanceError:
        return ConformanceError(f"check_family({self.name}) [{check}]: {message}")

    def passed(self, check: str) -> None:
        self.report.passed.append(check)

    def wanted(self, check: str, why: str = "skipped by the caller") -> bool:
        if check in self.skip:
            self.report.skipped[check] = why
            return False
        return True

    def cli(self, check: str, *args: str | Path, ok: bool = True) -> Any:
        """Run ``gentool ARGS`` in-process; with ok=True, fail ``check`` unless it exits 0."""
        from click.testing import CliRunner

        from gentool.cli import cli

        argv = [str(a) for a in args]
        options: dict[str, Any] = {}
        if "mix_stderr" in inspect.signature(CliRunner).parameters:  # click < 8.2
            options["mix_stderr"] = False
        result = CliRunner(**options).invoke(cli, argv, catch_exceptions=True)
        crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
        if crashed or (ok and result.exit_code != 0):
            detail = result.stderr.strip()
            if crashed and result.exc_info is not None:
                detail = "".join(traceback.format_exception(*result.exc_info)).strip()
            raise self.fail(
                check,
                f"'gentool {' '.join(argv)}' exited {result.exit_code}"
                + (" with an exception (a bug: raise a GentoolError)" if crashed else "")
                + f":\n{detail}",
            )
        return result

    def cli_error(self, check: str, what: str, *args: str | Path) -> None:
        """``gentool ARGS`` must fail as the CLI promises: exit 1, one 'Error:' line."""
        result = self.cli(check, *args, ok=False)
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
        if result.exit_code != 1 or len(errors) != 1:
            raise self.fail(
                check,
                f"{what} must exit 1 with one 'Error:' line (raise a GentoolError); it exited "
                f"{result.exit_code}:\n{result.stderr}",
            )

    def cli_json(self, check: str, *args: str | Path) -> Any:
        result = self.cli(check, *args, "--json")
        try:
            return _strict_json(result.stdout)
        except ValueError as err:
            raise self.fail(
                check,
                f"'gentool {' '.join(map(str, args))} --json' printed what is not strict "
                f"JSON ({err}): {result.stdout[:300]!r}",
            ) from None

    def train(self, out: Path, data: Sequence[Path], force: bool = False) -> runs.RunDirectory:
        run = api.train(
            self.name,
            data=list(data),
            overrides=self.overrides,
            out=out,
            force=force,
            seed=0,
            log=lambda message: None,
        )
        if run is None:
            raise self.fail("train", "api.train returned no run on the main process")
        return run

    def set_args(self) -> list[str]:
        return [arg for value in self.overrides for arg in ("--set", value)]

    # -- the checks -------------------------------------------------------------------------
    def run(self) -> FamilyReport:
        cwd = self.work / "cwd"
        cwd.mkdir()
        with contextlib.chdir(cwd):
            self.check_class()
            self.check_registered()
            if self.wanted("bad-data"):
                self.check_bad_data()
            self.check_train()
            self.check_run_directory()
            self.check_no_pickle()
            self.check_safetensors()
            copy = self.check_load()
            self.check_tasks(copy)
            self.check_info()
            if self.wanted("atomic"):
                self.check_atomic()
            if self.wanted("train-json"):
                self.check_train_json()
        stray = sorted(p.name for p in cwd.iterdir())
        if stray:
            raise self.fail(
                "run-directory",
                f"files were written to the current directory: {stray}; write only into the "
                "directory save() is given",
            )
        return self.report

    def check_class(self) -> None:
        try:
            check_family_class(self.family)
        except GentoolError as err:
            raise self.fail("class", str(err)) from None
        family = self.family
        if not isinstance(family.tasks, tuple) or not all(isinstance(t, str) for t in family.tasks):
            raise self.fail("class", f"`tasks` must be a tuple of task names, got {family.tasks!r}")
        if not isinstance(family.description, str) or not family.description.strip():
            raise self.fail("class", "`description` must be one line for 'gentool models'")
        if "\n" in family.description:
            raise self.fail("class", "`description` must be a single line")
        for attribute in ("config_class", "train_config_class"):
            try:
                getattr(family, attribute)()
            except Exception as err:
                raise self.fail(
                    "class",
                    f"`{attribute}()` fails ({type(err).__name__}: {err}); every field needs a "
                    "default, so that 'gentool train NAME' works without --set",
                ) from None
        if family.default_data is not None and not Path(family.default_data).is_file():
            raise self.fail("class", f"`default_data` {family.default_data} is not a file")
        for task in family.tasks:
            if task not in KNOWN_TASKS:
                self.report.skipped[f"task {task}"] = "not known to this version of the kit"
        self.passed("class")

    def check_registered(self) -> None:
        from gentool.plugins import get_family

        try:
            found = get_family(self.name)
        except GentoolError as err:
            raise self.fail(
                "registered",
                f"{err}. Install the distribution (pip install -e .) and check its "
                "[project.entry-points.gentool] and its register_models hook",
            ) from None
        if found is not self.family:
            raise self.fail(
                "registered",
                f"the family registered as '{self.name}' is {found.__module__}."
                f"{found.__qualname__}, not {self.family.__module__}.{self.family.__qualname__}",
            )
        listed = {m["name"]: m for m in self.cli_json("registered", "models")}
        if listed.get(self.name, {}).get("tasks") != list(self.family.tasks):
            raise self.fail("registered", f"'gentool models --json' does not list '{self.name}'")
        self.passed("registered")

    def check_bad_data(self) -> None:
        empty = self.data_dir / "empty.txt"
        empty.write_bytes(b"")
        latin1 = self.data_dir / "latin1.txt"
        latin1.write_bytes("Größer als gestern, sagte der Bäcker.\n".encode("latin-1") * 20)
        out = self.runs_dir / "bad"
        for path, what in ((latin1, "a file that is not UTF-8"), (empty, "an empty file")):
            try:
                self.train(out, [path])
            except GentoolError:
                pass
            except Exception as err:
                raise self.fail(
                    "bad-data",
                    f"training on {what} raised {type(err).__name__}: {err}; raise a "
                    "gentool.errors.DataError (gentool.data.read_text does)",
                ) from None
            else:
                raise self.fail("bad-data", f"training on {what} succeeded; it must fail")
            args: list[str | Path] = ["train", self.name, "--data", path, "--out", out]
            args += self.set_args()
            self.cli_error("bad-data", f"'gentool train' on {what}", *args)
            self.check_nothing_left("bad-data", expected=())
        self.passed("bad-data")

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

    def check_train(self) -> None:
        try:
            self.train(self.run_dir, self.train_files)
        except GentoolError as err:
            raise self.fail("train", f"training a tiny run failed: {err}") from None
        self.passed("train")

    def top_level_files(self, run: Path) -> list[Path]:
        return sorted(p for p in run.iterdir() if p.is_file())

    def check_run_directory(self, record: bool = True) -> None:
        run, check = self.run_dir, "run-directory"
        try:
            run_dir = runs.RunDirectory(run)
            run_dir.verify()
        except GentoolError as err:
            raise self.fail(check, f"the run does not verify: {err}") from None
        meta = run_dir.meta
        tasks = meta.get("tasks")
        if (
            meta.get("family") != self.name
            or not isinstance(tasks, list)
            or not set(tasks) <= set(self.family.tasks)
        ):
            raise self.fail(
                check,
                f"{runs.META_FILE} names the wrong family or tasks (a model's tasks must be "
                f"among the family's {list(self.family.tasks)})",
            )
        files = {p.name: p for p in self.top_level_files(run)}
        listed = set(meta.get("files", {}))
        unlisted = sorted(set(files) - listed - {runs.META_FILE})
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
                            _strict_json(line)
                except ValueError as err:
                    raise self.fail(check, f"'{name}' is not strict JSON: {err}") from None
        self.check_nothing_left(check, expected=(run.name,))
        self.report.files = {name: path.stat().st_size for name, path in files.items()}
        if record:
            self.passed(check)

    def check_no_pickle(self) -> None:
        for path in self.top_level_files(self.run_dir):
            if path.suffix in PICKLE_SUFFIXES or (
                path.suffix != ".safetensors" and _is_pickle(path)
            ):
                raise self.fail(
                    "no-pickle",
                    f"'{path.name}' is a pickle (loading it can run code); save tensors with "
                    "gentool.runs.save_tensors (safetensors) and the rest as JSON",
                )
        self.passed("no-pickle")

    def check_safetensors(self) -> None:
        from safetensors import safe_open

        # The framework the family itself uses: numpy has no bfloat16.
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
            if family != self.name and not (family is None and hf_model):
                raise self.fail(
                    "safetensors",
                    f"'{path.name}' has metadata gentool.family={family!r}, not '{self.name}'; "
                    "write it with gentool.runs.save_tensors(path, tensors, family.name) (or "
                    "as a Hugging Face model with its config.json)",
                )
        self.passed("safetensors")

    def check_load(self) -> Path:
        """Load the run, then a copy of its top-level files alone with the run moved away,
        with pickle disabled; return the copy."""
        copy = self.work / "copy"
        copy.mkdir()
        for path in self.top_level_files(self.run_dir):
            shutil.copy2(path, copy / path.name)
        self.load(self.run_dir, "the run")
        away = self.work / "moved-away"
        os.rename(self.run_dir, away)
        try:
            self.load(copy, "a copy of the run's files, with the run moved away,")
        finally:
            os.rename(away, self.run_dir)
        self.passed("load")
        return copy

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
        if not isinstance(model, self.family):
            raise self.fail("load", f"api.load returned {type(model).__name__}")

    def check_tasks(self, copy: Path) -> None:
        tasks = runs.RunDirectory(self.run_dir).meta.get("tasks", [])  # this model's own
        if GENERATE_TEXT in tasks:
            self.check_generate(copy)
            if self.wanted("generate-seed"):
                self.check_generate_seed(copy)
        elif GENERATE_IMAGE in tasks:
            self.check_generate_images(copy)
        else:
            for check in ("generate", "generate-seed"):
                self.report.skipped[check] = f"no task {GENERATE_TEXT} or {GENERATE_IMAGE}"
        if SCORE_TEXT in tasks:
            self.check_evaluate()
        else:
            self.report.skipped["evaluate"] = f"no task {SCORE_TEXT}"

    def check_generate(self, copy: Path) -> None:
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
        again = api.load(copy).generate(request)
        if again != samples:
            raise self.fail(
                check,
                f"a copy of the run, loaded with api.load, gave {again!r} for the request the "
                f"command line answered with {samples!r}",
            )
        self.passed(check)

    def check_generate_seed(self, copy: Path) -> None:
        model = api.load(copy)
        seen = {
            tuple(model.generate(GenerationRequest(num_samples=2, max_tokens=20, seed=seed)))
            for seed in range(5)
        }
        if len(seen) == 1:
            raise self.fail(
                "generate-seed",
                "seeds 0-4 all gave the same text: generate ignores request.seed (pass "
                "skip=['generate-seed'] if the family is deterministic by design)",
            )
        self.passed("generate-seed")

    def check_generate_images(self, copy: Path) -> None:
        """Image families: --out-dir writes -n PNGs; a seed repeats them, another differs."""
        check = "generate"

        def images(run: Path, seed: int, name: str) -> list[bytes]:
            out = self.data_dir / name
            found = self.cli_json(
                check, "generate", run, "--seed", str(seed), "-n", "3", "--out-dir", out
            )
            files = sorted(out.glob("*.png"))
            if len(files) != 3 or not isinstance(found, dict) or found.get("images") != 3:
                raise self.fail(check, f"asked for 3 images (-n 3), got {len(files)}: {found!r}")
            return [f.read_bytes() for f in files]

        first = images(self.run_dir, 1, "images-1")
        if images(copy, 1, "images-1-again") != first:
            raise self.fail(
                check,
                "'gentool generate --seed 1' drew different images from a copy of the run; "
                "draw every random number from a generator seeded with request.seed",
            )
        self.passed(check)
        if self.wanted("generate-seed"):
            if images(self.run_dir, 2, "images-2") == first:
                raise self.fail("generate-seed", "seeds 1 and 2 drew the same images")
            self.passed("generate-seed")

    def check_evaluate(self) -> None:
        check = "evaluate"
        found = self.cli_json(check, "evaluate", self.run_dir, "--data", self.heldout)
        metrics = found.get("metrics") if isinstance(found, dict) else None
        if not isinstance(metrics, dict) or not metrics:
            raise self.fail(check, f"'evaluate --json' has no metrics: {found!r}")
        empty = self.data_dir / "empty-heldout.txt"
        empty.write_bytes(b"")
        args = ("evaluate", self.run_dir, "--data", empty)
        self.cli_error(check, "'gentool evaluate' on an empty file", *args)
        self.passed(check)

    def check_info(self) -> None:
        found = self.cli_json("info", "info", self.run_dir)
        if not isinstance(found, dict) or found.get("family") != self.name:
            raise self.fail("info", f"'info --json' does not name the family: {found!r}")
        if not isinstance(found.get("model"), dict):
            raise self.fail("info", "describe() must return a dict")
        self.passed("info")

    def check_atomic(self) -> None:
        """Retrain over the run (--force), crashing inside save(): the old run must survive."""
        check = "atomic"
        meta_before = (self.run_dir / runs.META_FILE).read_bytes()

        def crashing(original: Callable[..., Any]) -> Callable[..., Any]:
            def crashing_save(model: Family, directory: Path) -> Any:
                original(model, directory)
                written = [p for p in directory.iterdir() if p.is_file()]
                if written:  # and a half-written file, as a crash mid-write leaves
                    biggest = max(written, key=lambda p: p.stat().st_size)
                    biggest.write_bytes(biggest.read_bytes()[: biggest.stat().st_size // 2])
                raise _SimulatedCrash("simulated crash in save()")

            return crashing_save

        # train() may return a subclass with its own save (one per kind of model): patch all
        classes = [c for c in _with_subclasses(self.family) if "save" in vars(c)]
        try:
            with contextlib.ExitStack() as patches:
                for cls in classes or [self.family]:
                    patches.enter_context(mock.patch.object(cls, "save", crashing(cls.save)))
                self.train(self.run_dir, self.train_files, force=True)
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
            self.check_run_directory(record=False)
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
        self.passed(check)

    def check_train_json(self) -> None:
        """The command line's own training, replacing the run (--force), with --json."""
        check = "train-json"
        args: list[str | Path] = ["train", self.name, "--out", self.run_dir, "--force"]
        args += ["--seed", "0"]
        args += [a for path in self.train_files for a in ("--data", str(path))]
        found = self.cli_json(check, *args, *self.set_args())
        if not isinstance(found, dict) or found.get("family") != self.name:
            raise self.fail(check, f"'train --json' does not name the family: {found!r}")
        if Path(found.get("run", "")).resolve() != self.run_dir:
            raise self.fail(check, f"'train --json' names run {found.get('run')!r}")
        self.check_run_directory(record=False)
        self.passed(check)


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
    from click.testing import CliRunner

    from gentool.cli import cli

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
                result = CliRunner().invoke(cli, args)
                errors = [x for x in result.stderr.splitlines() if x.startswith("Error: ")]
                where = f"damage {i} ({what}), 'gentool {' '.join(map(str, command))}'"
                if result.exception is not None and not isinstance(result.exception, SystemExit):
                    trace = "".join(traceback.format_exception(result.exception))
                    raise ConformanceError(f"{where} raised:\n{trace}")
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


def _strict_json(text: str) -> Any:
    """Parse JSON as a strict parser does: NaN and Infinity are not JSON."""

    def reject(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=reject)


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
    "SKIPPABLE",
    "ConformanceError",
    "FamilyReport",
    "check_family",
    "damage_run",
    "fuzz_run",
    "registered",
    "sample_lines",
    "write_sample_corpus",
]
