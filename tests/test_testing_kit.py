"""gentool.testing: every installed family passes the conformance kit, and the kit catches
real defects (each family below breaks exactly one promise)."""

from __future__ import annotations

import dataclasses
import json
import pickle
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from gentool_hello import HelloFamily

from gentool.family import GenerationRequest, TrainingContext
from gentool.plugins import get_family
from gentool.testing import (
    CHECKS,
    ConformanceError,
    check_family,
    registered,
    sample_lines,
    write_sample_corpus,
)

# Every family gentool's tests check, with the --set values that make its run tiny.
# Adding a family is one line.
FAMILIES: dict[str, list[str]] = {
    "ngram": [],
    "hello": [],
    "rnn": [
        "train.max_steps=2",
        "train.batch_size=4",
        "train.seq_len=16",
        "train.eval_batches=1",
        "model.hidden_size=16",
        "model.embedding_size=8",
        "model.num_layers=1",
    ],
    "transformer": [
        "train.max_steps=2",
        "train.batch_size=4",
        "train.seq_len=16",
        "train.eval_batches=1",
        "model.d_model=16",
        "model.num_layers=1",
        "model.num_heads=2",
        "model.d_ff=32",
        "model.context_length=32",
    ],
    "gan": [
        "model.width=4",
        "model.latent_size=8",
        "train.max_steps=2",
        "train.batch_size=4",
        "train.sample_every=0",
        "train.eval_batches=1",
    ],
}
#: Families that do not train on the kit's text corpus: their own embedded data.
DATA = {"gan": "default"}


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_conforms(name: str, tmp_path: Path) -> None:
    family = get_family(name)
    data = [family.default_data] if DATA.get(name) == "default" else None
    report = check_family(family, data=data, overrides=FAMILIES[name], tmp_path=tmp_path)
    assert report.family == name
    assert "gentool.json" in report.files
    for check in ("class", "registered", "bad-data", "run-directory", "load", "atomic"):
        assert check in report.passed
    assert set(report.passed) | set(report.skipped) >= set(CHECKS)
    assert (tmp_path / f"check-{name}" / "runs" / "run" / "gentool.json").is_file()
    assert name in str(report)


def test_kit_works_without_tmp_path_and_with_given_data(tmp_path: Path) -> None:
    data = write_sample_corpus(tmp_path / "mine.txt", count=50, seed=3)
    report = check_family(get_family("ngram"), data=[data], overrides=["model.order=2"])
    assert not report.run.exists()  # a temporary directory, removed
    assert "evaluate" in report.passed


def test_sample_corpus_is_varied_and_repeatable() -> None:
    lines = sample_lines(300)
    assert lines == sample_lines(300) != sample_lines(300, seed=1)
    assert len(set(lines)) > 250
    assert {line[-1] for line in lines} >= {".", "?", "!"}
    assert any(not line.isascii() for line in lines)


def test_skip_names_only_skippable_checks() -> None:
    with pytest.raises(ValueError, match="skippable checks"):
        check_family(get_family("hello"), skip=["load"])


# -- the kit can fail ----------------------------------------------------------------------


class IgnoresSeed(HelloFamily):
    name = "hello_ignores_seed"

    def generate(self, request: GenerationRequest) -> list[str]:
        chars = sorted(self.counts)
        return [
            "".join(random.choice(chars) for _ in range(request.max_tokens))
            for _ in range(request.num_samples)
        ]


class FixedSeed(HelloFamily):
    name = "hello_fixed_seed"

    def generate(self, request: GenerationRequest) -> list[str]:
        return super().generate(dataclasses.replace(request, seed=0))


class WrongCount(HelloFamily):
    name = "hello_wrong_count"

    def generate(self, request: GenerationRequest) -> list[str]:
        return super().generate(request)[:1]


class WritesPickle(HelloFamily):
    name = "hello_pickle"

    def save(self, directory: Path) -> dict[str, int]:
        (directory / "counts.json").write_text(json.dumps(self.counts))
        (directory / "state").write_bytes(pickle.dumps(self.counts))
        return {}


class UntaggedSafetensors(HelloFamily):
    name = "hello_untagged"

    def save(self, directory: Path) -> dict[str, int]:
        import numpy as np
        from safetensors.numpy import save_file

        save_file({"x": np.zeros(2)}, str(directory / "model.safetensors"))
        return super().save(directory)


class StrayFile(HelloFamily):
    name = "hello_stray"

    def save(self, directory: Path) -> dict[str, int]:
        (directory.parent / "cache.json").write_text("{}")
        return super().save(directory)


class NaiveReader(HelloFamily):
    name = "hello_naive_reader"

    @classmethod
    def train(cls, config: Any, context: TrainingContext) -> NaiveReader:
        text = "".join(Path(p).read_text(encoding="utf-8") for p in context.data)
        return cls({c: text.count(c) for c in set(text) - {"\n"}})


class AcceptsAnything(HelloFamily):
    name = "hello_accepts_anything"

    @classmethod
    def train(cls, config: Any, context: TrainingContext) -> AcceptsAnything:
        return cls({"a": 1})


class AbsolutePath(HelloFamily):
    """Loads from where the run was saved, not from where it is: the run cannot move."""

    name = "hello_absolute"

    def save(self, directory: Path) -> dict[str, int]:
        (directory / "where.json").write_text(json.dumps(str(directory.resolve())))
        return super().save(directory)

    @classmethod
    def load(cls, directory: Path, config: Any) -> Any:
        return super().load(Path(json.loads((directory / "where.json").read_text())), config)


class UnpicklesOnLoad(HelloFamily):
    name = "hello_unpickles"

    def save(self, directory: Path) -> dict[str, int]:
        (directory / "counts.json").write_text(json.dumps(pickle.dumps(self.counts).hex()))
        return {}

    @classmethod
    def load(cls, directory: Path, config: Any) -> UnpicklesOnLoad:
        raw = bytes.fromhex(json.loads((directory / "counts.json").read_text()))
        return cls(pickle.loads(raw))


class BadDescribe(HelloFamily):
    name = "hello_bad_describe"

    def describe(self) -> dict[str, Any]:
        return {"where": Path("/")}  # not JSON-serialisable


@dataclass
class NeedsSize:
    size: int


class NoDefaults(HelloFamily):
    name = "hello_no_defaults"
    config_class = NeedsSize


DEFECTS = [
    (IgnoresSeed, "generate", "gave different text on two runs"),
    (FixedSeed, "generate-seed", "seeds 0-4 all gave the same text"),
    (WrongCount, "generate", "asked for 3 samples"),
    (WritesPickle, "no-pickle", "'state' is a pickle"),
    (UntaggedSafetensors, "safetensors", "gentool.family=None"),
    (StrayFile, "run-directory", "cache.json"),
    (NaiveReader, "bad-data", "raised UnicodeDecodeError"),
    (AcceptsAnything, "bad-data", "training on a file that is not UTF-8 succeeded"),
    (AbsolutePath, "load", "with the run moved away, does not load"),
    (UnpicklesOnLoad, "load", "pickle.loads"),
    (BadDescribe, "info", "with an exception"),
    (NoDefaults, "class", "every field needs a default"),
]


@pytest.mark.parametrize(
    ("family", "check", "message"), DEFECTS, ids=[d[0].__name__ for d in DEFECTS]
)
def test_kit_catches(family: type[HelloFamily], check: str, message: str, tmp_path: Path) -> None:
    with registered(family), pytest.raises(ConformanceError) as caught:
        check_family(family, tmp_path=tmp_path)
    assert f"check_family({family.name}) [{check}]" in str(caught.value)
    assert message in str(caught.value)
    assert isinstance(caught.value, AssertionError)  # what pytest reports as a failure


def test_kit_catches_an_unregistered_family(tmp_path: Path) -> None:
    with pytest.raises(ConformanceError, match=r"\[registered\].*unknown"):
        check_family(IgnoresSeed, tmp_path=tmp_path)


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
        check_family(HelloFamily, tmp_path=tmp_path)
