"""The registry of model kinds, and the one place that picks a kind for a family.

Plugins register ``Model`` subclasses (``gentool.model``); ``check_kind`` refuses a
malformed one (with the reason, naming the missing method of a claimed task). ``route``
turns what the user typed (a family name, a recipe, the data) into one kind:

1. the recipe's ``kind`` key, if given;
2. else the ``[model]`` keys a kind is ``selected_by`` (``model.arch=encoder-decoder``,
   ``model.task=upscale``); the value ``auto`` leaves the choice to the data;
3. else the data: parallel files (``--source/--target``, ``--data *.tsv``) and music
   (``--data`` folders of MIDI files) go to the kind that ``trains_on`` them, other data
   to the kinds that take ordinary data (no data at all: those too, unless the recipe
   chose another kind, which then asks for its data);
4. else the family's first registered kind.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gentool.data.sources import NO_FIELDS, Fields
from gentool.errors import PluginError, RecipeError
from gentool.model import Model
from gentool.tasks import CAPABILITIES

if TYPE_CHECKING:
    from gentool.plugins import PluginInfo  # (a type only: plugins imports this module)

PARALLEL = "parallel"
MUSIC = "music"  # MIDI files: a folder of them, a .mid file, or a .txt list of MIDI files
NO_DATA = "none"  # data_kind: none given (the kind's default_data, or an error naming what)


def check_kind(obj: object) -> type[Model]:
    """Validate what a plugin passed to ``register``; raise PluginError saying what is wrong."""
    if isinstance(obj, type) and hasattr(obj, "tasks") and not issubclass(obj, Model):
        name = getattr(obj, "name", obj.__qualname__)
        raise PluginError(
            f"'{name}' ({obj.__qualname__}) is a gentool 0.1 Family; since gentool 0.2 a "
            "plugin registers gentool.model.Model subclasses that implement the task "
            "interfaces of gentool.tasks (see docs/plugins.md, 'Migrating from Family')"
        )
    if not (isinstance(obj, type) and issubclass(obj, Model)):
        raise PluginError(f"register() takes a gentool.model.Model subclass, got {obj!r}")
    family = getattr(obj, "family", None)
    if not isinstance(family, str) or not family.isidentifier():
        raise PluginError(f"model {obj.__qualname__} needs a `family` that is an identifier")
    kind = obj.kind_name()
    if not kind.replace("-", "_").isidentifier():
        raise PluginError(f"model {obj.__qualname__}: kind '{kind}' must be an identifier")
    label = f"'{family}/{kind}'" if kind != family else f"'{family}'"
    for attribute in ("config_class", "train_config_class"):
        if not dataclasses.is_dataclass(getattr(obj, attribute, None)):
            raise PluginError(f"model {label} needs a dataclass `{attribute}`")
    missing = sorted(getattr(obj, "__abstractmethods__", ()))
    if missing:
        raise PluginError(f"model {label} {_claims(obj, missing[0])} but does not implement it")
    fields = {f.name for f in dataclasses.fields(obj.config_class)}
    for key in obj.selected_by:
        if key not in fields:
            raise PluginError(
                f"model {label}: selected_by names model.{key}, which its config_class lacks"
            )
    return obj


def _claims(cls: type, method: str) -> str:
    """'claims generate-text (TextGeneration.generate)', or 'needs save()' for the base."""
    for base in cls.__mro__:
        if method in vars(base) and getattr(vars(base)[method], "__isabstractmethod__", False):
            if base in CAPABILITIES:
                return f"claims {base.task} ({base.__name__}) and needs {method}()"
            return f"needs {method}() (from {base.__name__})"
    return f"needs {method}()"


@dataclass
class Registry:
    """Kinds registered by the loaded plugins, by family, in registration order."""

    kinds: dict[str, list[type[Model]]] = field(default_factory=dict)
    owners: dict[str, PluginInfo] = field(default_factory=dict)  # family -> its plugin
    conflicts: dict[str, list[PluginInfo]] = field(default_factory=dict)

    def add(self, model: type[Model], owner: PluginInfo) -> str | None:
        """Register ``model`` for ``owner``; return a warning when that is not possible.

        A family belongs to the plugin that registers it first. Another distribution that
        registers kinds of it makes it unusable (both are named), except that gentool's own
        families cannot be replaced: the other registration is refused and they keep working.
        """
        family, kind = model.family, model.kind_name()
        current = self.owners.get(family)
        if current is not None and current.name != owner.name:
            if current.builtin != owner.builtin:
                builtin, other = (current, owner) if current.builtin else (owner, current)
                if owner.builtin:  # (the other loaded first: the built-in takes the name back)
                    self.kinds[family], self.owners[family] = [model], owner
                    self.conflicts.pop(family, None)
                return (
                    f"family '{family}' of '{other.distribution}' has the name of a family built "
                    f"into gentool ('{builtin.distribution}'); gentool's is kept: rename the "
                    f"family in {other.distribution}"
                )
            self.conflicts.setdefault(family, [current]).append(owner)
            names = " and ".join(f"'{p.distribution}'" for p in self.conflicts[family])
            return (
                f"family '{family}' is registered by both {names}; it cannot be used until one "
                "is uninstalled"
            )
        kinds = self.kinds.setdefault(family, [])
        if any(k.kind_name() == kind for k in kinds):
            return f"'{family}' registers the kind '{kind}' twice; the first is kept"
        kinds.append(model)
        self.owners[family] = owner
        return None

    def drop_failed(self) -> None:
        """Forget the families of plugins that failed (a plugin that failed half-way is
        skipped whole) and the contested ones."""
        for family, owner in list(self.owners.items()):
            if family in self.conflicts or owner.error is not None:
                self.kinds.pop(family, None)

    def families(self) -> list[str]:
        return sorted(self.kinds)

    def all_kinds(self) -> list[type[Model]]:
        return [k for family in self.families() for k in self.kinds[family]]

    def get_family(self, name: str) -> list[type[Model]]:
        """The kinds of family ``name``; PluginError when it is unknown or contested."""
        if name in self.conflicts:
            owners = " and ".join(
                f"'{p.distribution}' (entry point '{p.name}')" for p in self.conflicts[name]
            )
            raise PluginError(
                f"family '{name}' is registered by both {owners}; uninstall one, or choose "
                "with GENTOOL_LOAD_PLUGINS"
            )
        if name not in self.kinds:
            known = ", ".join(self.families()) or "none (see 'gentool plugins')"
            raise PluginError(f"family '{name}' is unknown; installed families: {known}")
        return self.kinds[name]

    def get(self, family: str, kind: str | None = None) -> type[Model]:
        """One kind of ``family`` by name (the family's first when ``kind`` is None)."""
        kinds = self.get_family(family)
        if kind is None:
            return kinds[0]
        for k in kinds:
            if k.kind_name() == kind:
                return k
        valid = ", ".join(k.kind_name() for k in kinds)
        raise PluginError(f"family '{family}' has no kind '{kind}'; its kinds: {valid}")


def data_kind(data: Sequence[Path], parallel: bool, fields: Fields = NO_FIELDS) -> str | None:
    """What sort of training data was given, as kinds' ``trains_on`` names it: parallel
    files (``--source/--target``, ``--data`` files that are all TSV without a field named,
    or tables whose source and target fields are named), music (every path a folder
    holding MIDI files, a MIDI file or a .txt list of them), else None; NO_DATA when there
    are none."""
    from gentool.data.music import is_music_source  # (torch-free; reads no MIDI)

    tsv = data and not fields.text and all(p.name.endswith((".tsv", ".tsv.gz")) for p in data)
    if parallel or tsv or (data and fields.parallel):
        return PARALLEL
    if data and all(is_music_source(p) for p in data):
        return MUSIC
    return None if data else NO_DATA


_DATA_WORDS = {
    PARALLEL: "parallel data (--source/--target or --data *.tsv)",
    MUSIC: "music (--data a folder of MIDI files)",
    None: "text",
}


def route(
    registry: Registry, family: str, raw: dict[str, Any], data: str | None
) -> tuple[type[Model], dict[str, Any]]:
    """Pick the kind of ``family`` that trains on the recipe ``raw`` and data of sort ``data``
    (see ``data_kind``); return it and the recipe with ``auto`` selector values dropped."""
    kinds = registry.get_family(family)
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    model = raw.get("model")
    model = model if isinstance(model, dict) else {}
    selectors = {key for k in kinds for key in k.selected_by}
    for key in selectors:
        if model.get(key) == "auto":
            del model[key]
    if "model" in raw:
        raw["model"] = model
    if raw.get("kind") is not None:
        return registry.get(family, str(raw["kind"])), raw
    chosen = list(kinds)
    for key in sorted(selectors & set(model)):
        value = model[key]
        chosen = [k for k in chosen if value in k.selected_by.get(key, ())]
        if not chosen:
            valid = sorted({v for k in kinds for v in k.selected_by.get(key, ())})
            listed = ", ".join(["auto", *valid])
            raise RecipeError(f"recipe key 'model.{key}' is {value!r}; valid values: {listed}")
    if data == NO_DATA:  # a kind the recipe chose says what data it needs, when it trains
        fitting = [k for k in chosen if k.trains_on is None] or chosen
    else:
        fitting = [k for k in chosen if k.trains_on == data]
    if not fitting:
        kind = chosen[0]
        picked = ", ".join(f"model.{key}={model[key]}" for key in sorted(selectors & set(model)))
        trains = _DATA_WORDS.get(kind.trains_on, kind.trains_on)
        given = _DATA_WORDS.get(data, data)
        if not picked:
            words = dict.fromkeys(_DATA_WORDS.get(k.trains_on, k.trains_on) for k in chosen)
            trains = " or ".join(str(w) for w in words)
            raise RecipeError(f"{family} trains on {trains}, not on {given}; give other data")
        raise RecipeError(
            f"{picked or family} trains a {family} {kind.kind_name()}, which trains on "
            f"{trains}, not on {given}; drop {picked or 'that setting'} or give other data"
        )
    return fitting[0], raw


def route_record(registry: Registry, record: dict[str, Any]) -> tuple[type[Model], dict[str, Any]]:
    """The kind of model of a run, from its record (gentool.json, or training.json while it
    trains), and its recorded recipe ready to resolve. A record of gentool 0.1 (format 1)
    names no kind: the run is routed as its training was, and the keys its kind's configs
    lack (those of another kind of its family) are dropped."""
    raw = dict(record.get("recipe") or {})
    raw["family"] = record["family"]
    if record.get("kind"):
        raw["kind"] = record["kind"]
    parallel = bool((record.get("data") or {}).get("source"))
    table = raw.get("data")
    trained_on = [
        Path(str(p)) for p in (table.get("train") or [] if isinstance(table, dict) else [])
    ]
    fields = table_fields(table if isinstance(table, dict) else {})
    kind, raw = route(registry, raw["family"], raw, data_kind(trained_on, parallel, fields))
    return kind, (raw if record.get("kind") else own_keys(kind, raw))


def table_fields(table: dict[str, Any]) -> Fields:
    """The fields a recipe's raw ``[data]`` table names (``text_field``, ...)."""

    def text(key: str) -> str | None:
        value = table.get(key)
        return value if isinstance(value, str) and value else None

    return Fields(text("text_field"), text("source_field"), text("target_field"))


def check_keys(registry: Registry, kind: type[Model], raw: dict[str, Any]) -> None:
    """Refuse a ``[model]`` or ``[train]`` key that ``kind`` lacks but another kind of its
    family has (``model.conditional`` for a gan restorer), saying which kind it belongs to:
    "unknown key" would hide that it is the other kind's setting."""
    kinds = registry.get_family(kind.family)
    for section, attribute in (("model", "config_class"), ("train", "train_config_class")):
        table = raw.get(section)
        if not isinstance(table, dict):
            continue
        for key in table:
            if key in _field_names(getattr(kind, attribute)):
                continue
            owner = next((k for k in kinds if key in _field_names(getattr(k, attribute))), None)
            if owner is not None:
                raise RecipeError(
                    f"{section}.{key} applies to the {kind.family} "
                    f"{owner.kind_name()}{_selection(owner)}, not to the {kind.family} "
                    f"{kind.kind_name()} this recipe trains{_selection(kind, raw)}; drop it"
                )


def own_keys(kind: type[Model], raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` with only the ``[model]`` and ``[train]`` keys ``kind``'s configs have. A run
    of format 1 (gentool 0.1) recorded every key of its family's one config: those of the
    family's other kinds are dropped when it is loaded or repeated."""
    raw = dict(raw)
    for section, attribute in (("model", "config_class"), ("train", "train_config_class")):
        table = raw.get(section)
        if isinstance(table, dict):
            names = _field_names(getattr(kind, attribute))
            raw[section] = {k: v for k, v in table.items() if k in names}
    return raw


def _field_names(config_class: type) -> set[str]:
    return {f.name for f in dataclasses.fields(config_class)}


def _selection(kind: type[Model], raw: dict[str, Any] | None = None) -> str:
    """' (model.task=inpaint)': the selector values that choose ``kind`` (those of ``raw``
    when given), or '' for a kind chosen otherwise."""
    model = raw.get("model") if raw is not None else None
    chosen = []
    for key, values in kind.selected_by.items():
        value = model.get(key) if isinstance(model, dict) else None
        if raw is None or value is not None:
            shown = value if value is not None else "|".join(values)
            chosen.append(f"model.{key}={shown}")
    return f" ({', '.join(chosen)})" if chosen else ""


def describe_kind(model: type[Model]) -> dict[str, Any]:
    """A kind as ``gentool models --json`` lists it."""
    return {
        "family": model.family,
        "kind": model.kind_name(),
        "description": model.description or inspect.getdoc(model) or "",
        "tasks": list(model.tasks()),
        "selected_by": {k: list(v) for k, v in model.selected_by.items()},
        "trains_on": model.trains_on or "default",
        "options": {
            "model": [f.name for f in dataclasses.fields(model.config_class)],
            "train": [f.name for f in dataclasses.fields(model.train_config_class)],
        },
        "export_formats": list(getattr(model, "export_formats", ())),
        "import_formats": list(getattr(model, "import_formats", ())),
    }
