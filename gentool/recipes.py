"""Recipes: a TOML file (or just a family name) plus ``--set`` overrides -> typed configs.

A recipe has a ``family``, an optional ``seed``, and three tables: ``[model]`` (the
family's config dataclass), ``[train]`` (its training config) and ``[data]``::

    family = "ngram"
    [model]
    order = 3
    [data]
    train = ["corpus.txt"]

Every key is checked against the dataclass it fills: an unknown key or a value of the
wrong type is a RecipeError naming the key and what is valid.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tomllib
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from gentool.errors import RecipeError

SECTIONS = ("model", "train", "data")
TOP_LEVEL = ("family", "kind", "seed", *SECTIONS)
# Seeds are what numpy's legacy seeding (and so accelerate's set_seed) accepts: 0 to 2**32 - 1.
MAX_SEED = 2**32 - 1
# A run directory as a recipe: its gentool.json, or training.json while it trains (the
# names runs.py writes; recipes does not import the run machinery).
RUN_RECORDS = ("gentool.json", "training.json")


@dataclass
class DataConfig:
    """The recipe's [data] table: training files and an optional held-out file, or
    aligned parallel files (translation)."""

    train: list[str] = field(default_factory=list)
    val: str | None = None
    source: str | None = None
    target: str | None = None
    val_source: str | None = None
    val_target: str | None = None
    # Tables and datasets (gentool.data.sources): the field of each row a family reads.
    text_field: str | None = None  # default "text"
    source_field: str | None = None  # sentence pairs; default "source"
    target_field: str | None = None  # default "target"


@dataclass
class NoTrainingOptions:
    """The [train] table of a family that has no training options."""


@dataclass
class Recipe:
    family: str
    kind: str  # which of the family's kinds of model (gentool.kinds.route chose it)
    seed: int
    model: Any
    train: Any
    data: DataConfig

    def as_dict(self) -> dict[str, Any]:
        """The resolved recipe, as stored in gentool.json (and loadable by ``resolve``)."""
        return {
            "family": self.family,
            "kind": self.kind,
            "seed": self.seed,
            "model": dataclasses.asdict(self.model),
            "train": dataclasses.asdict(self.train),
            "data": dataclasses.asdict(self.data),
        }


def flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 0.1}}`` -> ``{"train.lr": 0.1}``: the keys ``--set`` names."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


MAX_RECIPE_BYTES = 1 << 20  # shipped recipes are 1-3 KB


def read_recipe_file(path: str | Path) -> dict[str, Any]:
    """The raw recipe in a TOML file, or the resolved recipe of a run directory (so
    ``gentool train --recipe runs/NAME`` repeats that run)."""
    path = Path(path)
    if path.is_dir():
        return dict(read_run_record(path)["recipe"])
    try:
        with path.open("rb") as f:
            # Read once and bounded: a recipe may come through a pipe (<(...), /dev/stdin),
            # but /dev/zero or a huge file would otherwise fill the memory.
            text = f.read(MAX_RECIPE_BYTES + 1)
        if len(text) > MAX_RECIPE_BYTES:
            raise RecipeError(
                f"recipe '{path}' is larger than {MAX_RECIPE_BYTES >> 20} MB, which no recipe "
                "is; give a .toml recipe, or a shipped recipe's name"
            )
        return tomllib.loads(text.decode("utf-8"))
    except FileNotFoundError:
        raise RecipeError(
            f"recipe '{path}' does not exist; see 'gentool recipes' for the shipped ones"
        ) from None
    except UnicodeDecodeError as err:
        raise RecipeError(
            f"recipe '{path}' is not a TOML text file (byte 0x{err.object[err.start]:02x} at "
            f"offset {err.start} is not UTF-8); give a .toml recipe, or a shipped recipe's name"
        ) from None
    except tomllib.TOMLDecodeError as err:
        raise RecipeError(f"recipe '{path}' is not valid TOML: {err}") from None
    except OSError as err:
        raise RecipeError(f"recipe '{path}' cannot be read: {err.strerror or err}") from None


def read_run_record(path: Path) -> dict[str, Any]:
    """What a run directory records (gentool.json, else training.json), with its recipe;
    RecipeError if ``path`` is a directory that holds no run."""
    for name in RUN_RECORDS:
        record_path = path / name
        if not record_path.is_file():
            continue
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:  # UnicodeDecodeError is a ValueError
            raise RecipeError(
                f"'{record_path}' cannot be read as a recipe ({err}); give a .toml recipe"
            ) from None
        if not isinstance(record, dict) or not isinstance(record.get("recipe"), dict):
            raise RecipeError(f"'{record_path}' records no recipe; give a .toml recipe")
        return record
    raise RecipeError(
        f"recipe '{path}' is a directory, and not a gentool run (no {RUN_RECORDS[0]}); give a "
        ".toml recipe, a shipped recipe's name, or a run directory to repeat its training"
    )


def parse_override(text: str) -> tuple[str, str, Any]:
    """``section.key=value`` -> (section, key, value); the value is read as TOML if it
    parses (numbers, booleans, lists, quoted strings) and as a bare string otherwise."""
    name, sep, raw = text.partition("=")
    section, dot, key = name.strip().partition(".")
    if not sep or not dot or not key:
        raise RecipeError(
            f"--set '{text}' is not of the form section.key=value (e.g. model.order=5)"
        )
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return section, key, value


def with_overrides(raw: dict[str, Any], overrides: Sequence[str] = ()) -> dict[str, Any]:
    """A copy of the raw recipe ``raw`` with its top-level keys checked and ``--set``
    overrides applied (what routing to a kind looks at, before the configs are typed)."""
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    unknown = sorted(set(raw) - set(TOP_LEVEL))
    if unknown:
        raise RecipeError(
            f"recipe key '{unknown[0]}' is unknown; valid top-level keys: {', '.join(TOP_LEVEL)}"
        )
    for text in overrides:
        section, key, value = parse_override(text)
        if section not in SECTIONS:
            raise RecipeError(
                f"--set '{text}': section '{section}' is unknown; valid: {', '.join(SECTIONS)}"
            )
        table = raw.setdefault(section, {})
        if not isinstance(table, dict):
            raise RecipeError(f"recipe '{section}' must be a table, got {table!r}")
        table[key] = value
    return raw


def resolve(
    raw: dict[str, Any],
    model_class: type,
    train_class: type = NoTrainingOptions,
    overrides: Sequence[str] = (),
) -> Recipe:
    """Check and type a raw recipe (from TOML or gentool.json), applying ``--set`` overrides."""
    raw = with_overrides(raw, overrides)
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise RecipeError(
            f"recipe key 'seed' must be an integer from 0 to {MAX_SEED}, got {seed!r}"
        )
    return Recipe(
        family=str(raw.get("family", "")),
        kind=str(raw.get("kind") or ""),
        seed=seed,
        model=build_config(model_class, raw.get("model", {}), "model"),
        train=build_config(train_class, raw.get("train", {}), "train"),
        data=build_config(DataConfig, raw.get("data", {}), "data"),
    )


def build_config(cls: type, values: Any, section: str) -> Any:
    """Instantiate the dataclass ``cls`` from ``values``, checking keys and types."""
    if not isinstance(values, dict):
        raise RecipeError(f"recipe '{section}' must be a table, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            valid = ", ".join(fields) or "(none)"
            raise RecipeError(f"recipe key '{section}.{key}' is unknown; valid keys: {valid}")
        kwargs[key] = _coerce(value, hints[key], f"{section}.{key}")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as err:
        raise RecipeError(f"recipe '{section}': {err}") from None


def _coerce(value: Any, hint: Any, name: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, name)
            except RecipeError as err:
                errors.append(str(err))
        raise RecipeError(errors[0])
    if origin is Literal:
        if value not in args:
            valid = ", ".join(str(a) for a in args)
            raise RecipeError(f"recipe key '{name}' is {value!r}; valid values: {valid}")
        return value
    if origin in (list, tuple):
        items = value if isinstance(value, list) else [value] if origin is list else None
        if items is None:
            raise RecipeError(f"recipe key '{name}' must be a list, got {value!r}")
        item_hint = args[0] if args else Any
        coerced = [_coerce(item, item_hint, name) for item in items]
        return coerced if origin is list else tuple(coerced)
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    # TOML (and so --set) reads nan and inf as floats; no setting means either, and each
    # would fail later, deep in a family's maths.
    if hint is float and isinstance(value, float) and not math.isfinite(value):
        raise RecipeError(f"recipe key '{name}' must be a finite number, got {value!r}")
    # bool is a subclass of int, but `order = true` is a mistake, not the number 1.
    if not isinstance(value, hint) or (hint is not bool and isinstance(value, bool)):
        raise RecipeError(f"recipe key '{name}' must be {hint.__name__}, got {value!r}")
    return value


# -- shipped recipes -----------------------------------------------------------------


@dataclass(frozen=True)
class RecipeFile:
    name: str
    path: Path
    family: str
    description: str


def shipped_recipes() -> list[RecipeFile]:
    """The recipes in the repository's recipes/ folder (the data package gentool_recipes)."""
    found = []
    for entry in sorted(resources.files("gentool_recipes").iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".toml"):
            continue
        path = Path(str(entry))
        text = path.read_text(encoding="utf-8")
        family = tomllib.loads(text).get("family", "")
        found.append(RecipeFile(path.stem, path, family, _description(text)))
    return found


def _description(text: str) -> str:
    """The first sentence of a recipe's opening comment paragraph (the comment lines before
    the first empty one), or the whole paragraph if no sentence ends in it."""
    paragraph: list[str] = []
    for line in text.splitlines():
        words = line.removeprefix("#").strip()
        if not line.startswith("#") or (not words and paragraph):
            break
        if words:
            paragraph.append(words)
    return re.split(r"(?<=[.!?])\s+(?=[A-Z])", " ".join(paragraph), maxsplit=1)[0]


def find_recipe(name_or_path: str) -> Path:
    """A recipe path, or the name of a shipped recipe (``ngram-shakespeare-word3``)."""
    path = Path(name_or_path)
    if path.exists() or path.suffix == ".toml" or "/" in name_or_path:
        return path
    for recipe in shipped_recipes():
        if recipe.name == name_or_path:
            return recipe.path
    return path
