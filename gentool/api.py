"""The Python API behind the CLI: each command is a thin shell over one function here.

from gentool import api
run = api.train("ngram", overrides=["model.order=4"], out="runs/ng4")
model = api.load(run)
print(model.generate(GenerationRequest(seed=1))[0])
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gentool import recipes, runs
from gentool.errors import DataError, PluginError, RecipeError
from gentool.family import GENERATE_TEXT, Family, GenerationRequest, TrainingContext
from gentool.plugins import get_family


def _no_log(message: str) -> None:
    pass


def plan(
    family: str | None = None,
    recipe: str | Path | None = None,
    overrides: Sequence[str] = (),
    data: Sequence[str | Path] = (),
    val: str | Path | None = None,
    seed: int | None = None,
) -> tuple[type[Family], recipes.Recipe]:
    """Resolve what ``train`` would do: the family class and the typed, complete recipe."""
    raw: dict[str, Any] = {}
    if recipe is not None:
        raw = recipes.read_recipe_file(recipes.find_recipe(str(recipe)))
    name = family or raw.get("family")
    if not name:
        raise RecipeError("no family given; name one (gentool train ngram) or use --recipe FILE")
    if family and raw.get("family") and raw["family"] != family:
        raise RecipeError(
            f"recipe is for family '{raw['family']}', not '{family}'; drop one of the two"
        )
    raw["family"] = name
    family_class = get_family(str(name))
    resolved = recipes.resolve(
        raw, family_class.config_class, family_class.train_config_class, overrides
    )
    if data:
        resolved.data.train = [str(p) for p in data]
    if val is not None:
        resolved.data.val = str(val)
    if seed is not None:
        resolved.seed = seed
    return family_class, resolved


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
    log: Callable[[str], None] = _no_log,
) -> runs.RunDirectory:
    """Train a model and write its run directory; return the run."""
    family_class, resolved = plan(family, recipe, overrides, data, val, seed)
    out_path = Path(out) if out is not None else Path("runs") / family_class.name
    runs.check_new_run(out_path, force)  # fail before any work, not after it

    train_paths = [Path(p) for p in resolved.data.train]
    if not train_paths:
        if family_class.default_data is None:
            raise DataError(f"family '{family_class.name}' needs training data: pass --data PATH")
        train_paths = [family_class.default_data]
        log(f"no --data given: training on the embedded sample corpus {train_paths[0].name}")
    for path in [*train_paths, *([Path(resolved.data.val)] if resolved.data.val else [])]:
        if not path.exists():
            raise DataError(f"data file '{path}' does not exist; check the path")

    context = TrainingContext(
        data=train_paths,
        val=Path(resolved.data.val) if resolved.data.val else None,
        seed=resolved.seed,
        train=dataclasses.asdict(resolved.train),
        log=log,
    )
    model = family_class.train(resolved.model, context)
    recipe_dict = resolved.as_dict()
    recipe_dict["data"]["train"] = [str(p) for p in train_paths]
    fingerprints = {
        "train": [runs.fingerprint(p) for p in train_paths],
        "val": runs.fingerprint(context.val) if context.val else None,
    }
    return _save_run(
        model, out_path, force, recipe=recipe_dict, seed=resolved.seed, data=fingerprints
    )


def _save_run(model: Family, out: Path, force: bool, **meta: Any) -> runs.RunDirectory:
    """Write ``model`` as a complete run directory at ``out``; ``meta`` goes to gentool.json."""

    def fill(directory: Path) -> dict[str, Any]:
        metrics = model.save(directory)
        runs.write_text(directory / runs.METRICS_FILE, runs.dumps_json(metrics, indent=None) + "\n")
        full = {"family": model.name, "tasks": list(model.tasks), **meta, "metrics": metrics}
        runs.write_text(directory / "README.md", model_card(model, full))
        return full

    return runs.RunDirectory(runs.create_run(out, force, fill))


def load(run: str | Path | runs.RunDirectory) -> Family:
    """Open a run directory, verify its files, and load its model with its family."""
    run_dir = run if isinstance(run, runs.RunDirectory) else runs.RunDirectory(run)
    family_class = get_family(run_dir.family)
    run_dir.verify()
    resolved = recipes.resolve(
        run_dir.recipe, family_class.config_class, family_class.train_config_class
    )
    return family_class.load(run_dir.path, resolved.model)


def require(model: Family, task: str, command: str) -> None:
    """Raise PluginError unless the model's family declares ``task``."""
    if task not in model.tasks:
        can = ", ".join(model.tasks) or "nothing"
        raise PluginError(f"'{model.name}' models cannot {command}; they support: {can}")


def export(run: str | Path, fmt: str, output: str | Path) -> None:
    """Write the model in ``run`` in a foreign format (e.g. ARPA) to ``output``."""
    model = load(run)
    if fmt not in model.export_formats:
        valid = ", ".join(model.export_formats) or "none"
        raise PluginError(f"'{model.name}' models cannot export '{fmt}'; they export: {valid}")
    model.export(fmt, Path(output))


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
