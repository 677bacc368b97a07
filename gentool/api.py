"""The Python API behind the CLI: each command is a thin shell over one function here.

from gentool import api
run = api.train("ngram", overrides=["model.order=4"], out="runs/ng4")
model = api.load(run)
print(model.generate(GenerationRequest(seed=1))[0])
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from gentool import recipes, runs
from gentool.errors import DataError, PluginError, RecipeError, RunError
from gentool.family import GENERATE_TEXT, Family, GenerationRequest, TrainingContext
from gentool.plugins import get_family, get_registry
from gentool.runs import is_main_process
from gentool.training import Runtime, TrainingError, init_processes


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
) -> tuple[type[Family], recipes.Recipe]:
    """Resolve what ``train`` would do: the family class and the typed, complete recipe.

    ``recipe`` is a TOML file, a shipped recipe's name, or a run directory: its recorded
    recipe and data, to train it again."""
    raw: dict[str, Any] = {}
    recipe_path = recipes.find_recipe(str(recipe)) if recipe is not None else None
    if recipe_path is not None:
        raw = recipes.read_recipe_file(recipe_path)
    name = family or raw.get("family")
    if not name:
        raise RecipeError("no family given; name one (gentool train ngram) or use --recipe FILE")
    if family and raw.get("family") and raw["family"] != family:
        raise RecipeError(
            f"recipe is for family '{raw['family']}', not '{family}'; drop one of the two"
        )
    raw["family"] = name
    family_class = get_family(str(name))
    resolved = _resolve(raw, family_class, overrides, data, val, seed, parallel)
    if recipe_path is not None and recipe_path.is_dir():
        _find_run_data(recipe_path, resolved, family_class)
    return family_class, resolved


_DATA_OPTIONS = {
    "train": "--data",
    "val": "--val",
    "source": "--source",
    "target": "--target",
    "val_source": "--val-source",
    "val_target": "--val-target",
}


def _find_run_data(run: Path, resolved: recipes.Recipe, family_class: type[Family]) -> None:
    """Repeating ``run`` (``--recipe RUN``): its recorded data files, where they still are.
    The embedded sample is found by its sha256 in this installation; any other recorded
    file that is gone is a DataError naming it, its size and sha256, and the option."""
    record = recipes.read_run_record(run)
    if isinstance(record.get("imported_from"), dict):
        source = record["imported_from"].get("path", "a file")
        raise RecipeError(
            f"'{run}' was imported from '{source}', not trained: there is no training to "
            f"repeat; import it again with 'gentool import {family_class.name} FILE --out DIR'"
        )
    recorded: dict[str, dict[str, Any]] = {}
    for value in (record.get("data") or {}).values():
        for fp in value if isinstance(value, list) else [value]:
            if isinstance(fp, dict) and isinstance(fp.get("path"), str):
                recorded[fp["path"]] = fp
    default = family_class.default_data
    missing = []

    def find(value: str, key: str) -> str:
        fp = recorded.get(value)
        if fp is None or Path(value).exists():
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
    family_class: type[Family],
    overrides: Sequence[str],
    data: Sequence[str | Path],
    val: str | Path | None,
    seed: int | None,
    parallel: ParallelPaths | None = None,
) -> recipes.Recipe:
    """Type ``raw`` against the family's configs, then apply the command line's choices."""
    resolved = recipes.resolve(
        raw, family_class.config_class, family_class.train_config_class, overrides
    )
    if data:
        resolved.data.train = [str(p) for p in data]
    if val is not None:
        resolved.data.val = str(val)
    for key, value in dataclasses.asdict(parallel or ParallelPaths()).items():
        if value is not None:
            setattr(resolved.data, key, str(value))
    if (resolved.data.source is None) != (resolved.data.target is None):
        raise RecipeError("parallel data needs both --source and --target files; give both")
    if (resolved.data.val_source is None) != (resolved.data.val_target is None):
        raise RecipeError("held-out parallel data needs both --val-source and --val-target")
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
) -> runs.RunDirectory | None:
    """Train a model and write its run directory; return the run (None on a process that
    is not the main one, under torchrun).

    ``resume`` continues the latest checkpoint of ``out`` with its recorded recipe; changes
    to it (``recipe``, ``overrides``, ``data``, ...) are refused unless ``override``.
    """
    runtime = dataclasses.replace(runtime or Runtime(), resume=resume)
    if resume:
        if out is None and family is None:
            raise RunError("--resume needs the run to continue: pass --out RUN")
        out_path = Path(out) if out is not None else Path("runs") / str(family)
        family_class, resolved, stored = _plan_resume(
            out_path, family, recipe, overrides, data, val, seed, override, parallel
        )
    else:
        family_class, resolved = plan(family, recipe, overrides, data, val, seed, parallel)
        out_path = Path(out) if out is not None else Path("runs") / family_class.name
        if is_main_process():  # (the others would see the directory the main one makes)
            runs.check_new_run(out_path, force)  # fail before any work, not after it

    train_paths = [Path(p) for p in resolved.data.train]
    pairs = {
        key: Path(value) if value is not None else None
        for key in ("source", "target", "val_source", "val_target")
        for value in [getattr(resolved.data, key)]
    }
    if not train_paths and pairs["source"] is None:
        if family_class.default_data is None:
            raise DataError(f"family '{family_class.name}' needs training data: pass --data PATH")
        train_paths = [family_class.default_data]
        log(f"no --data given: training on the embedded sample corpus {train_paths[0].name}")
    val_path = Path(resolved.data.val) if resolved.data.val else None
    for path in [*train_paths, val_path, *pairs.values()]:
        if path is not None and not path.exists():
            raise DataError(f"data file '{path}' does not exist; check the path")
    recipe_dict = resolved.as_dict()
    recipe_dict["data"]["train"] = [str(p) for p in train_paths]
    fingerprints: dict[str, Any] = {
        "train": [runs.fingerprint(p) for p in train_paths],
        "val": runs.fingerprint(val_path) if val_path else None,
    }
    fingerprints.update({k: runs.fingerprint(p) for k, p in pairs.items() if p is not None})
    if resume and not override:
        _check_same_data(out_path, stored.get("data", {}), fingerprints)
    meta = {"recipe": recipe_dict, "seed": resolved.seed, "data": fingerprints}
    main = is_main_process()
    init_processes(runtime.device)  # under a launcher: join its process group

    with runs.building_run(out_path, force, resume) as work, _restored_on_failure(work, resume):
        if main:
            runs.write_json(work / runs.TRAINING_FILE, {"family": family_class.name, **meta})
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
            **pairs,
        )
        model = family_class.train(resolved.model, context)
        if main:
            runs.finish_run(work, _fill_run(model, work, meta))
    return runs.RunDirectory(out_path) if main else None


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
) -> tuple[type[Family], recipes.Recipe, dict[str, Any]]:
    """The family and recipe of the run being resumed, with the changes asked for, checked."""
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
    old = stored["recipe"]
    finished = stored_path.name == runs.META_FILE
    if family and family != old["family"]:
        raise RecipeError(f"'{out}' is a '{old['family']}' run, not '{family}'; drop the family")
    family_class = get_family(old["family"])
    raw = recipes.read_recipe_file(recipes.find_recipe(str(recipe))) if recipe else dict(old)
    raw["family"] = old["family"]
    resolved = _resolve(raw, family_class, overrides, data, val, seed, parallel)
    before, after = recipes.flatten(old), recipes.flatten(resolved.as_dict())
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
    return family_class, resolved, stored


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


def _fill_run(model: Family, directory: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Write the model's files, its metrics line and model card; return gentool.json's fields."""
    metrics = model.save(directory)
    runs.append_line(directory / runs.METRICS_FILE, metrics)
    full = {"family": model.name, "tasks": list(model.tasks), **meta, "metrics": metrics}
    runs.write_text(directory / "README.md", model_card(model, full))
    return full


def _save_run(model: Family, out: Path, force: bool, **meta: Any) -> runs.RunDirectory:
    """Write ``model`` as a complete run directory at ``out``; ``meta`` goes to gentool.json."""
    return runs.RunDirectory(
        runs.create_run(out, force, lambda directory: _fill_run(model, directory, meta))
    )


def load(run: str | Path | runs.RunDirectory) -> Family:
    """Open a run directory, verify its files, and load its model with its family."""
    path = run.path if isinstance(run, runs.RunDirectory) else Path(run)
    try:
        run_dir = run if isinstance(run, runs.RunDirectory) else runs.RunDirectory(run)
        family_class = get_family(run_dir.family)
        run_dir.verify()
        try:
            resolved = recipes.resolve(
                run_dir.recipe, family_class.config_class, family_class.train_config_class
            )
        except RecipeError as err:
            raise _recipe_mismatch(run_dir, err) from None
        return family_class.load(run_dir.path, resolved.model)
    except PermissionError as err:  # a run of another user, not shared with this one
        raise runs.unreadable(Path(err.filename or path), path, err) from None


def _recipe_mismatch(run: runs.RunDirectory, err: RecipeError) -> RunError:
    """A run whose recorded recipe does not fit its family: say so, and whether it fits
    another family (gentool.json's family was changed: a family mismatch)."""
    for name, other in sorted(get_registry().families.items()):
        if name == run.family:
            continue
        with contextlib.suppress(RecipeError):
            recipes.resolve(run.recipe, other.config_class, other.train_config_class)
            return runs.damaged(
                run.path,
                f"{runs.META_FILE} says family '{run.family}' but its recipe is for family "
                f"'{name}' (a family mismatch)",
            )
    return runs.damaged(
        run.path, f"the recipe in its {runs.META_FILE} does not fit family '{run.family}' ({err})"
    )


def require(model: Family, task: str, command: str) -> None:
    """Raise PluginError unless the model's family declares ``task``."""
    if task not in model.tasks:
        can = ", ".join(model.tasks) or "nothing"
        raise PluginError(f"'{model.name}' models cannot {command}; they support: {can}")


def export(run: str | Path, fmt: str, output: str | Path, force: bool = False) -> None:
    """Write the model in ``run`` in a foreign format (e.g. ARPA) to ``output``: never into
    a run directory, an existing file only with ``force``, atomically (a failure leaves
    the old file, or none)."""
    output = Path(output)
    runs.check_output_file(output, "--output", force)  # before loading: fail at once
    model = load(run)
    if fmt not in model.export_formats:
        valid = ", ".join(model.export_formats) or "none"
        raise PluginError(f"'{model.name}' models cannot export '{fmt}'; they export: {valid}")
    with runs.output_files() as written:
        written.write(output, lambda path: model.export(fmt, path), "--output")


def import_model(
    family: str,
    path: str | Path,
    fmt: str,
    out: str | Path,
    force: bool = False,
) -> runs.RunDirectory:
    """Make a run directory from a model file in a foreign format (e.g. an ARPA file)."""
    family_class = get_family(family)
    if fmt not in family_class.import_formats:
        valid = ", ".join(family_class.import_formats) or "none"
        raise PluginError(f"family '{family}' cannot import '{fmt}'; it imports: {valid}")
    path = Path(path)
    if not path.is_file():
        raise DataError(f"model file '{path}' does not exist; check the path")
    out_path = Path(out)
    runs.check_new_run(out_path, force)
    model, config = family_class.import_model(fmt, path)
    recipe = {
        "family": family_class.name,
        "seed": 0,
        "model": dataclasses.asdict(config),
        "train": dataclasses.asdict(family_class.train_config_class()),
        "data": {"train": [], "val": None},
    }
    imported_from = {"format": fmt, **runs.fingerprint(path)}
    return _save_run(model, out_path, force, recipe=recipe, imported_from=imported_from)


def model_card(model: Family, meta: dict[str, Any]) -> str:
    """README.md of a run: what it is, what it was trained on, its metrics and samples."""
    lines = [f"# {model.name} model", "", model.description, ""]
    if meta.get("data", {}).get("train"):
        lines += ["## Data", ""]
        lines += [
            f"- `{d['path']}` ({d['bytes']} bytes, sha256 `{d['sha256']}`)"
            for d in meta["data"]["train"]
        ]
        lines.append("")
    if "imported_from" in meta:
        source = meta["imported_from"]
        lines += ["## Source", "", f"Imported from `{source['path']}` ({source['format']}).", ""]
    lines += ["## Recipe", "", "```json", json.dumps(meta["recipe"], indent=2), "```", ""]
    if meta.get("metrics"):
        lines += ["## Metrics", ""]
        lines += [f"- {k}: {v}" for k, v in meta["metrics"].items()]
        lines.append("")
    if GENERATE_TEXT in model.tasks:
        samples = model.generate(GenerationRequest(num_samples=3, max_tokens=40, seed=0))
        lines += ["## Samples (seed 0)", ""]
        lines += [f"> {s}" for s in samples]
        lines.append("")
    lines += ["Written by `gentool train`; reproduce it from the recipe in gentool.json.", ""]
    return "\n".join(lines)
