"""Training: ``gentool train`` and ``gentool import``, and what they share (the recipe
resolved and routed to a kind, the run directory filled and its model card)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from gentool import hub, recipes, runs
from gentool.data import sources
from gentool.errors import DataError, PluginError, RecipeError, RunError, TrainingError
from gentool.kinds import MUSIC, PARALLEL, check_keys, data_kind, own_keys, route, table_fields
from gentool.model import FromPretrained, FromRun, Importable, Model, Runtime, TrainingContext
from gentool.plugins import get_registry
from gentool.runs import is_main_process
from gentool.tasks import GenerationRequest, TextGeneration


def _no_log(message: str) -> None:
    pass


@dataclasses.dataclass(frozen=True)
class ParallelPaths:
    """Aligned parallel files (translation): line i of source translates to line i of target."""

    source: str | Path | None = None
    target: str | Path | None = None
    val_source: str | Path | None = None
    val_target: str | Path | None = None


def plan(
    family: str | None = None,
    recipe: str | Path | None = None,
    overrides: Sequence[str] = (),
    data: Sequence[str | Path] = (),
    val: str | Path | None = None,
    seed: int | None = None,
    parallel: ParallelPaths | None = None,
    init: str | Path | None = None,
) -> tuple[type[Model], recipes.Recipe]:
    """Resolve what ``train`` would do: the kind of model and the typed, complete recipe.

    ``recipe`` is a TOML file, a shipped recipe's name, or a run directory: its recorded
    recipe and data, to train it again. The kind is chosen by ``gentool.kinds.route``.
    ``init`` (``model.init``) is a pretrained model to start from: a run of the same kind,
    a Hugging Face model folder or a Hub id (``gentool.hub``)."""
    if init is not None:
        overrides = (*overrides, f"model.init={json.dumps(str(init))}")
    raw: dict[str, Any] = {}
    recipe_path = recipes.find_recipe(str(recipe)) if recipe is not None else None
    if recipe_path is not None:
        raw = recipes.read_recipe_file(recipe_path)
        if recipe_path.is_dir():
            raw = _with_kind(raw)
    name = family or raw.get("family")
    if not name:
        raise RecipeError("no family given; name one (gentool train ngram) or use --recipe FILE")
    if family and raw.get("family") and raw["family"] != family:
        raise RecipeError(
            f"recipe is for family '{raw['family']}', not '{family}'; drop one of the two"
        )
    raw["family"] = name
    _check_sides(parallel or ParallelPaths())
    raw = recipes.with_overrides(raw, overrides)
    if init is not None and hub.is_run(Path(init)):
        raw = _parent_selection(raw, Path(init))
    kind, raw = route_recipe(raw, data, parallel)
    if init is not None and not issubclass(kind, (FromPretrained, FromRun)):
        able = [k for k in get_registry().all_kinds() if issubclass(k, (FromPretrained, FromRun))]
        names = ", ".join(f"{k.family} {k.kind_name()}" for k in able) or "none installed"
        raise RecipeError(
            f"--init: the {_name(kind)} cannot start from a pretrained model; kinds that can: "
            f"{names}"
        )
    resolved = _resolve(raw, kind, data, val, seed, parallel)
    if init is not None and hub.is_run(Path(init)):
        resolved.model = _parent_model(kind, resolved.model, Path(init))
    if recipe_path is not None and recipe_path.is_dir():
        _find_run_data(recipe_path, resolved, kind)
    return kind, resolved


def _check_sides(paths: Any, kind: type[Model] | None = None) -> None:
    """Parallel data comes in pairs of files: both sides, or neither; a kind that
    ``takes_target`` (an image translator: --data A/ --target B/) takes --target alone.
    Without ``kind`` (not routed yet), only a --source without --target is refused."""
    lone_target = paths.source is None and paths.target is not None
    if lone_target and kind is not None and not kind.takes_target:
        takers = [k for k in get_registry().get_family(kind.family) if k.takes_target]
        hint = "".join(
            f"; the {k.family} {k.kind_name()} takes --data A --target B"
            f" ({', '.join(f'model.{key}={v[0]}' for key, v in k.selected_by.items())})"
            for k in takers[:1]
        )
        raise RecipeError(
            f"--target without --source: parallel data needs both files; give both{hint}"
        )
    if paths.source is not None and paths.target is None:
        raise RecipeError("parallel data needs both --source and --target files; give both")
    if (paths.val_source is None) != (paths.val_target is None):
        raise RecipeError("held-out parallel data needs both --val-source and --val-target")


def route_recipe(
    raw: dict[str, Any], data: Sequence[str | Path] = (), parallel: ParallelPaths | None = None
) -> tuple[type[Model], dict[str, Any]]:
    """The kind of model the raw recipe ``raw`` (its ``family`` set) trains on the data the
    command line gives, or else the recipe names; and the recipe, ready to resolve."""
    table: dict[str, Any] = raw["data"] if isinstance(raw.get("data"), dict) else {}
    paths = [Path(p) for p in (data or table.get("train") or [])]
    has_source = (parallel is not None and parallel.source is not None) or bool(table.get("source"))
    fields = table_fields(table)
    return route(get_registry(), str(raw["family"]), raw, data_kind(paths, has_source, fields))


def _with_kind(recorded: dict[str, Any]) -> dict[str, Any]:
    """A run's recorded recipe, to repeat or resume it. gentool 0.1 (run format 1) recorded
    no kind, and every key of the family's one config: the recipe is routed as its training
    was, and keeps its kind's keys only (as ``api.kind_of`` loads such a run)."""
    if recorded.get("kind") or not recorded.get("family"):
        return recorded
    kind, raw = route_recipe(recorded)
    return {**own_keys(kind, raw), "kind": kind.kind_name()}


_DATA_OPTIONS = {
    "train": "--data",
    "val": "--val",
    "source": "--source",
    "target": "--target",
    "val_source": "--val-source",
    "val_target": "--val-target",
}


def _find_run_data(run: Path, resolved: recipes.Recipe, kind: type[Model]) -> None:
    """Repeating ``run`` (``--recipe RUN``): its recorded data files, where they still are.
    The embedded sample is found by its sha256 in this installation; any other recorded
    file that is gone is a DataError naming it, its size and sha256, and the option."""
    record = recipes.read_run_record(run)
    if isinstance(record.get("imported_from"), dict):
        source = record["imported_from"].get("path", "a file")
        raise RecipeError(
            f"'{run}' was imported from '{source}', not trained: there is no training to "
            f"repeat; import it again with 'gentool import {kind.family} FILE --out DIR'"
        )
    recorded: dict[str, dict[str, Any]] = {}
    for value in (record.get("data") or {}).values():
        for fp in value if isinstance(value, list) else [value]:
            if isinstance(fp, dict) and isinstance(fp.get("path"), str):
                recorded[fp["path"]] = fp
    default = kind.default_data
    missing = []

    def find(value: str, key: str) -> str:
        fp = recorded.get(value)
        if fp is None or sources.exists(value):
            return value  # (a path from the command line is checked as always)
        if (
            default is not None
            and default.is_file()
            and fp.get("sha256") == runs.sha256_file(default)
        ):
            return str(default)  # the embedded sample, from another installation
        missing.append(
            f"'{value}' ({fp.get('bytes', '?')} bytes, sha256 {fp.get('sha256', '?')}; "
            f"give it with {_DATA_OPTIONS[key]})"
        )
        return value

    resolved.data.train = [find(p, "train") for p in resolved.data.train]
    for key in ("val", "source", "target", "val_source", "val_target"):
        value = getattr(resolved.data, key)
        if value is not None:
            setattr(resolved.data, key, find(value, key))
    if missing:
        raise DataError(
            f"'{run}' was trained on data that is not here: {'; '.join(missing)}; the "
            "sha256 identifies the files"
        )


def _resolve(
    raw: dict[str, Any],
    kind: type[Model],
    data: Sequence[str | Path],
    val: str | Path | None,
    seed: int | None,
    parallel: ParallelPaths | None = None,
) -> recipes.Recipe:
    """Type ``raw`` against the kind's configs, then apply the command line's choices."""
    check_keys(get_registry(), kind, raw)
    resolved = recipes.resolve(raw, kind.config_class, kind.train_config_class)
    resolved.kind = kind.kind_name()
    if data:
        resolved.data.train = [str(p) for p in data]
    if val is not None:
        resolved.data.val = str(val)
    for key, value in dataclasses.asdict(parallel or ParallelPaths()).items():
        if value is not None:
            setattr(resolved.data, key, str(value))
    _check_sides(resolved.data, kind)
    if seed is not None:
        resolved.seed = seed
    return resolved


def train(
    family: str | None = None,
    *,
    recipe: str | Path | None = None,
    overrides: Sequence[str] = (),
    data: Sequence[str | Path] = (),
    val: str | Path | None = None,
    seed: int | None = None,
    out: str | Path | None = None,
    force: bool = False,
    resume: bool = False,
    override: bool = False,
    runtime: Runtime | None = None,
    log: Callable[[str], None] = _no_log,
    parallel: ParallelPaths | None = None,
    init: str | Path | None = None,
) -> runs.RunDirectory | None:
    """Train a model and write its run directory; return the run (None on a process that
    is not the main one, under torchrun).

    ``resume`` continues the latest checkpoint of ``out`` with its recorded recipe; changes
    to it (``recipe``, ``overrides``, ``data``, ...) are refused unless ``override``.
    ``init`` starts from a pretrained model (see ``plan``); gentool.json's ``parent``
    records it (its source, revision or sha256, and a run's own data and parent).
    """
    runtime = dataclasses.replace(runtime or Runtime(), resume=resume)
    if resume:
        if out is None and family is None:
            raise RunError("--resume needs the run to continue: pass --out RUN")
        out_path = Path(out) if out is not None else Path("runs") / str(family)
        if init is not None:  # (a change of the recorded recipe, refused without --override)
            overrides = (*overrides, f"model.init={json.dumps(str(init))}")
        kind, resolved, stored = _plan_resume(
            out_path, family, recipe, overrides, data, val, seed, override, parallel
        )
    else:
        kind, resolved = plan(family, recipe, overrides, data, val, seed, parallel, init)
        out_path = Path(out) if out is not None else Path("runs") / kind.family
        if is_main_process():  # (the others would see the directory the main one makes)
            runs.check_new_run(out_path, force)  # fail before any work, not after it
    parent = _parent(kind, resolved.model)

    train_paths = [Path(p) for p in resolved.data.train]
    pairs = {
        key: Path(value) if value is not None else None
        for key in ("source", "target", "val_source", "val_target")
        for value in [getattr(resolved.data, key)]
    }
    if not train_paths and pairs["source"] is None:
        if kind.default_data is None:
            name = (
                kind.family
                if kind.kind_name() == kind.family
                else f"{kind.family} {kind.kind_name()}"
            )
            what = (
                "sentence pairs: pass --source and --target files, or --data *.tsv"
                if kind.trains_on == PARALLEL
                else "music: pass --data FOLDER (of MIDI files)"
                if kind.trains_on == MUSIC
                else "training data: pass --data PATH"
            )
            raise DataError(f"'{name}' needs {what}")
        train_paths = [kind.default_data]
        log(f"no --data given: training on the embedded sample corpus {train_paths[0].name}")
    val_path = Path(resolved.data.val) if resolved.data.val else None
    for path in [*train_paths, val_path, *pairs.values()]:
        if path is not None and not sources.exists(path):
            raise DataError(f"data file '{path}' does not exist; check the path")
    recipe_dict = resolved.as_dict()
    recipe_dict["data"]["train"] = [str(p) for p in train_paths]
    fingerprint = runs.fingerprint
    if kind.trains_on == MUSIC:  # a list of MIDI files: the list and every file it names
        from gentool.data.music import fingerprint_music as fingerprint
    fingerprints: dict[str, Any] = {
        "train": [fingerprint(p) for p in train_paths],
        "val": fingerprint(val_path) if val_path else None,
    }
    fingerprints.update({k: runs.fingerprint(p) for k, p in pairs.items() if p is not None})
    if resume and not override:
        _check_same_data(out_path, stored.get("data", {}), fingerprints)
    meta = {"recipe": recipe_dict, "seed": resolved.seed, "data": fingerprints}
    if parent is not None:
        meta["parent"] = parent
    main = is_main_process()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # under a launcher: join its group
        from gentool.neural.devices import init_processes

        init_processes(runtime.device)

    with runs.building_run(out_path, force, resume) as work, _restored_on_failure(work, resume):
        if main:
            record = {"family": kind.family, "kind": kind.kind_name(), **meta}
            runs.write_json(work / runs.TRAINING_FILE, record)
            (work / runs.META_FILE).unlink(missing_ok=True)  # resuming a finished run
        context = TrainingContext(
            data=train_paths,
            val=val_path,
            seed=resolved.seed,
            train=resolved.train,
            log=log,
            run_dir=work,
            runtime=runtime,
            recipe=recipe_dict,
            fields=sources.Fields(
                resolved.data.text_field, resolved.data.source_field, resolved.data.target_field
            ),
            **pairs,
        )
        model = kind.train(resolved.model, context)
        if main:
            runs.finish_run(work, _fill_run(model, work, meta))
    return runs.RunDirectory(out_path) if main else None


def _parent(kind: type[Model], config: Any) -> dict[str, Any] | None:
    """What ``model.init`` names, checked to be a model ``kind`` starts from, as
    gentool.json's ``parent``: a Hub model's id and commit, a folder's weights' sha256, a
    run's kind, data and own parent too. None when the recipe starts from scratch."""
    source = getattr(config, "init", "")
    if not source:
        return None
    name = _name(kind)
    if not issubclass(kind, (FromPretrained, FromRun)):
        raise RecipeError(f"the {name} cannot start from a pretrained model; drop --init")
    if not issubclass(kind, FromPretrained) and not hub.is_run(Path(source)):
        raise RecipeError(
            f"--init '{source}' is not a gentool run: the {name} starts from a run of its "
            "own kind (a folder with gentool.json)"
        )
    pretrained = hub.resolve(source)
    parent = pretrained.lineage()
    if hub.is_run(pretrained.path):
        run = runs.RunDirectory(pretrained.path)
        run.verify()
        if (run.family, run.kind) != (kind.family, kind.kind_name()):
            raise RecipeError(
                f"--init '{source}' is a {_run_name(run)} run; a {name} starts from a "
                f"run of its own kind (or a Hugging Face model it runs)"
            )
        train = (run.meta.get("data") or {}).get("train") or []
        parent.update(
            kind=run.kind,
            data=[{"name": Path(d["path"]).name, "sha256": d["sha256"]} for d in train],
        )
        if run.meta.get("parent"):
            parent["parent"] = run.meta["parent"]
    elif issubclass(kind, FromPretrained) and not kind.accepts_pretrained(pretrained.config):
        model_type = pretrained.config.get("model_type", "unknown")
        raise RecipeError(
            f"--init '{source}' is a '{model_type}' model, which the {name} does not start "
            f"from (it takes {getattr(kind, 'auto_class', 'its own')} models)"
        )
    return parent


def _parent_model(kind: type[Model], config: Any, parent: Path) -> Any:
    """The ``[model]`` table of a run that starts from the run ``parent``: the parent's
    own (its sizes and vocabulary make its weights), with ``init`` naming the parent. A
    key set away from its default is a RecipeError: the parent fixes it."""
    free = {"init", *kind.selected_by}
    for f in dataclasses.fields(config):
        if f.name not in free and getattr(config, f.name) != f.default:
            raise RecipeError(
                f"model.{f.name} is fixed by the run it starts from (--init {parent}): drop "
                f"model.{f.name}, it is taken from that run"
            )
    run = runs.RunDirectory(parent)
    if (run.family, run.kind) != (kind.family, kind.kind_name()):
        raise RecipeError(
            f"--init '{parent}' is a {_run_name(run)} run; a {_name(kind)} starts from a run "
            "of its own kind"
        )
    from gentool.api.using import kind_of

    _, raw = kind_of(run)
    own = recipes.resolve(raw, kind.config_class, kind.train_config_class).model
    return dataclasses.replace(own, init=config.init)


def _parent_selection(raw: dict[str, Any], parent: Path) -> dict[str, Any]:
    """``raw`` with the ``[model]`` keys that select the kind of the run ``parent``
    (``model.task`` of a gan restorer) taken from its recipe where ``raw`` does not set
    them: a run started from another is of its kind unless the recipe says otherwise."""
    run = runs.RunDirectory(parent)
    if run.family != raw.get("family"):
        return raw  # (refused once routed, naming both kinds)
    from gentool.api.using import kind_of

    parent_kind, recorded = kind_of(run)
    model, theirs = dict(raw.get("model") or {}), recorded.get("model") or {}
    for key in parent_kind.selected_by:
        if key not in model and key in theirs:
            model[key] = theirs[key]
    return {**raw, "model": model}


def _run_name(run: runs.RunDirectory) -> str:
    """'rnn', 'transformer lm': a run's kind as the user knows it."""
    return run.family if run.kind in (run.family, None, "") else f"{run.family} {run.kind}"


def _name(kind: type[Model]) -> str:
    """'ngram', 'transformer lm': a kind as the user knows it."""
    return kind.family if kind.kind_name() == kind.family else f"{kind.family} {kind.kind_name()}"


@contextlib.contextmanager
def _restored_on_failure(run: Path, resume: bool) -> Iterator[None]:
    """When resuming, put the run's records back if it fails before a new checkpoint (and
    drop the one it made: a finished run refused on resume stays a finished run)."""
    saved = {
        name: (run / name).read_bytes() if (run / name).is_file() else None
        for name in (runs.TRAINING_FILE, runs.META_FILE)
        if resume and is_main_process()
    }
    before = runs.checkpoints(run)[-1:] if saved else []
    try:
        yield
    except BaseException:
        if saved and runs.checkpoints(run)[-1:] == before:
            for name, content in saved.items():
                if content is None:
                    (run / name).unlink(missing_ok=True)
                    continue
                with runs.atomic_path(run / name) as tmp:
                    tmp.write_bytes(content)
        raise


def _plan_resume(
    out: Path,
    family: str | None,
    recipe: str | Path | None,
    overrides: Sequence[str],
    data: Sequence[str | Path],
    val: str | Path | None,
    seed: int | None,
    override: bool,
    parallel: ParallelPaths | None,
) -> tuple[type[Model], recipes.Recipe, dict[str, Any]]:
    """The kind and recipe of the run being resumed, with the changes asked for, checked."""
    stored_path = out / runs.TRAINING_FILE
    if not stored_path.is_file():
        stored_path = out / runs.META_FILE
    if not out.is_dir() or not stored_path.is_file():
        raise RunError(f"'{out}' is not a training run to resume; train it without --resume")
    if not runs.has_checkpoint(out):
        raise RunError(
            f"'{out}' has no checkpoint to resume from; train it again with --force "
            "(neural families write one every train.checkpoint_every steps; ngram trains in "
            "one pass and writes none)"
        )
    stored = _read_record(stored_path)
    old = _with_kind(stored["recipe"])
    finished = stored_path.name == runs.META_FILE
    if family and family != old["family"]:
        raise RecipeError(f"'{out}' is a '{old['family']}' run, not '{family}'; drop the family")
    raw = recipes.read_recipe_file(recipes.find_recipe(str(recipe))) if recipe else dict(old)
    raw["family"] = old["family"]
    raw["kind"] = old.get("kind") or raw.get("kind")  # the run's kind stays
    _check_sides(parallel or ParallelPaths())
    kind, raw = route_recipe(recipes.with_overrides(raw, overrides), data, parallel)
    resolved = _resolve(raw, kind, data, val, seed, parallel)
    before = recipes.flatten(old)
    after = recipes.flatten(resolved.as_dict())
    changed = [k for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
    if changed and not override:
        listed = ", ".join(f"{k} ({before.get(k)!r} -> {after.get(k)!r})" for k in changed)
        raise RecipeError(
            f"'{out}' was trained with a different recipe: {listed}; resume with the recorded "
            "recipe (drop those changes), or pass --override to continue with the new values"
        )
    # A finished run trains longer only when asked to. (An unfinished one whose checkpoint
    # is at the last step, a save that failed on a full disk say, is finished by resuming.)
    step, max_steps = runs.checkpoints(out)[-1][0], getattr(resolved.train, "max_steps", None)
    if finished and max_steps is not None and step >= max_steps:
        raise TrainingError(
            f"the checkpoint is at step {step}, already train.max_steps={max_steps}; "
            "raise it with --set train.max_steps=N --override to train longer"
        )
    return kind, resolved, stored


def _read_record(path: Path) -> dict[str, Any]:
    """training.json (or a finished run's gentool.json): the recipe a resume continues."""
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        problem = f"is not valid JSON ({err})"
    except OSError as err:
        problem = f"cannot be read ({err.strerror})"
    else:
        recipe = stored.get("recipe") if isinstance(stored, dict) else None
        data = stored.get("data", {}) if isinstance(stored, dict) else None
        if isinstance(recipe, dict) and isinstance(recipe.get("family"), str):
            if isinstance(data, dict):
                return stored
            problem = "has a 'data' that is not an object"
        else:
            problem = "holds no recipe with a family"
    raise RunError(
        f"'{path}' {problem}: the run's recorded recipe is lost; restore the file from a copy, "
        "or train the run again with --force"
    )


def _check_same_data(out: Path, old: dict[str, Any], new: dict[str, Any]) -> None:
    def sha256(fingerprint: Any) -> Any:  # (a damaged record's odd entry differs too)
        return fingerprint.get("sha256") if isinstance(fingerprint, dict) else fingerprint

    def digests(record: dict[str, Any]) -> dict[str, Any]:
        return {
            key: [sha256(d) for d in value] if isinstance(value, list) else sha256(value)
            for key, value in record.items()
            if value
        }

    if digests(old) != digests(new):
        raise DataError(
            f"the training data of '{out}' changed since it started (sha256 differs); resume "
            "with the same files, or pass --override to continue on the new data"
        )


def _fill_run(model: Model, directory: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Write the model's files, its metrics line and model card; return gentool.json's fields."""
    metrics = model.save(directory)
    runs.append_line(directory / runs.METRICS_FILE, metrics)
    full = {
        "family": model.family,
        "kind": model.kind_name(),
        "tasks": list(model.tasks()),
        **meta,
        "metrics": metrics,
    }
    runs.write_text(directory / "README.md", model_card(model, full))
    return full


def import_model(
    family: str,
    path: str | Path,
    fmt: str,
    out: str | Path,
    force: bool = False,
) -> runs.RunDirectory:
    """Make a run directory from a model file in a foreign format (e.g. an ARPA file)."""
    kinds = [k for k in get_registry().get_family(family) if issubclass(k, Importable)]
    kind = next((k for k in kinds if fmt in k.import_formats), None)
    if kind is None:
        valid = ", ".join(f for k in kinds for f in k.import_formats) or "none"
        raise PluginError(f"family '{family}' cannot import '{fmt}'; it imports: {valid}")
    path = Path(path)
    if not path.is_file():
        raise DataError(f"model file '{path}' does not exist; check the path")
    out_path = Path(out)
    runs.check_new_run(out_path, force)
    model, config = kind.import_model(fmt, path)
    recipe = {
        "family": kind.family,
        "kind": kind.kind_name(),
        "seed": 0,
        "model": dataclasses.asdict(config),
        "train": dataclasses.asdict(kind.train_config_class()),
        "data": {"train": [], "val": None},
    }
    imported_from = {"format": fmt, **runs.fingerprint(path)}
    meta = {"recipe": recipe, "imported_from": imported_from}
    built = runs.create_run(out_path, force, lambda directory: _fill_run(model, directory, meta))
    return runs.RunDirectory(built)


def _card_source(d: dict[str, Any]) -> str:
    if "dataset" in d:  # an hf: dataset (gentool.data.sources.fingerprint)
        return (
            f"- `{d['path']}`: Hugging Face dataset `{d['dataset']}`, config `{d['config']}`, "
            f"split `{d['split']}`, {d['rows']} rows, revision `{d['revision']}`, "
            f"fingerprint `{d['fingerprint']}`"
        )
    return f"- `{d['path']}` ({d['bytes']} bytes, sha256 `{d['sha256']}`)"


def model_card(model: Model, meta: dict[str, Any]) -> str:
    """README.md of a run: what it is, what it was trained on, its metrics and samples."""
    kind = model.kind_name()
    title = model.family if kind == model.family else f"{model.family} {kind}"
    lines = [f"# {title} model", "", model.description, ""]
    if meta.get("data", {}).get("train"):
        lines += ["## Data", ""]
        lines += [_card_source(d) for d in meta["data"]["train"]]
        lines.append("")
    if "imported_from" in meta:
        source = meta["imported_from"]
        lines += ["## Source", "", f"Imported from `{source['path']}` ({source['format']}).", ""]
    lines += ["## Recipe", "", "```json", json.dumps(meta["recipe"], indent=2), "```", ""]
    if meta.get("metrics"):
        lines += ["## Metrics", ""]
        lines += [f"- {k}: {v}" for k, v in meta["metrics"].items()]
        lines.append("")
    if isinstance(model, TextGeneration):
        request = GenerationRequest(num_samples=3, max_tokens=40, seed=0)
        lines += ["## Samples (seed 0)", ""]
        lines += [f"> {s}" for s in model.generate(request)]
        lines.append("")
    lines += ["Written by `gentool train`; reproduce it from the recipe in gentool.json.", ""]
    return "\n".join(lines)
