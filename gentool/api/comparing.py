"""``gentool compare``: several runs scored on the same held-out data, in one table.

A column holds figures of one unit only. Perplexity and cross-entropy are per token, so
two language models share those columns only when they cut the text into the same
tokens (same tokenization, same count of tokens scored): an n-gram model and an LSTM on
characters compare directly, a word model and a character model do not. BLEU and chrF
are computed on the detokenized text (sacrebleu), so translators with different
vocabularies compare; their per-token loss does not and is left out. FID compares only
in one feature space. Anything else is refused with the reason, before or after scoring.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gentool import runs
from gentool.api import plotting
from gentool.api.using import evaluate, load
from gentool.errors import ComparisonError, GentoolError
from gentool.model import Model
from gentool.tasks import ImageScoring, TextScoring, Translation

# The columns of each comparison, after run, family and kind; every figure a number.
TEXT_COLUMNS = ("tokens", "tokens_scored", "cross_entropy", "perplexity", "bits_per_token")
TRANSLATION_COLUMNS = ("bleu", "chrf")
IMAGE_COLUMNS = ("feature_space", "fid", "kid")
RUN_COLUMNS = ("parameters", "train_seconds", "size_bytes")


def compare(
    run_paths: Sequence[str | Path],
    data: Sequence[str | Path] = (),
    source: str | Path | None = None,
    target: str | Path | None = None,
    output: str | Path | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """``gentool compare``: score every run on the same held-out data and return the table
    ``{"task", "data", "columns", "rows"}`` (a row: a dict keyed by the columns). Language
    models are scored on text files in ``data``, image generators on images in ``data``,
    translators on ``source`` and ``target``. Raises ``ComparisonError`` (with the reason)
    for runs whose figures would not share a unit, and what ``evaluate`` raises. With
    ``output`` (a .png or .svg), the table is also drawn there (matplotlib), checked before
    any run is loaded."""
    if not run_paths:
        raise GentoolError("give the run directories to compare")
    if output is not None:
        plotting.check_figure_output(Path(output), force)
    loaded = [(runs.RunDirectory(p), load(p)) for p in run_paths]
    task = _common_task(loaded, translation=source is not None or target is not None)
    if task == "text":
        _same_tokenization(loaded)
    rows = []
    for run, model in loaded:
        metrics = evaluate(model, data, source, target)
        row: dict[str, Any] = {"run": str(run.path), "family": run.family, "kind": run.kind}
        row.update(_figures(task, model, metrics))
        row.update(_run_facts(run))
        rows.append(row)
    if task == "text":
        _same_counts(rows)
    if task == "images":
        _same_feature_space(rows)
    columns = {"text": TEXT_COLUMNS, "translation": TRANSLATION_COLUMNS}.get(task, IMAGE_COLUMNS)
    held_out = {"source": str(source), "target": str(target)} if task == "translation" else {}
    table = {
        "task": task,
        "data": held_out or [str(p) for p in data],
        "columns": ["run", "family", "kind", *columns, *RUN_COLUMNS],
        "rows": rows,
    }
    if output is not None:
        plotting.draw_table(table, Path(output))
    return table


def _common_task(loaded: list[tuple[runs.RunDirectory, Model]], translation: bool) -> str:
    tasks = {}
    for run, model in loaded:
        if translation and isinstance(model, Translation):
            tasks[run.path] = "translation"
        elif isinstance(model, TextScoring) and not translation:
            tasks[run.path] = "text"
        elif isinstance(model, ImageScoring) and not translation:
            tasks[run.path] = "images"
        else:
            what = "translations (--source/--target)" if translation else "--data"
            raise ComparisonError(f"'{run.path}' ({run.family}) cannot be scored on {what}")
    if len(set(tasks.values())) > 1:
        said = ", ".join(f"'{p}' scores {t}" for p, t in tasks.items())
        raise ComparisonError(
            f"the runs do different tasks ({said}); compare runs of one task at a time"
        )
    return next(iter(tasks.values()))


def _one_value(values: dict[str, Any], said: str, problem: str) -> None:
    """A ComparisonError unless every run (the keys) has the same value: ``problem`` is
    formatted with ``said``, the runs and their values listed as ``said`` shows each."""
    if len(set(values.values())) > 1:
        listed = ", ".join(said.format(run=run, value=value) for run, value in values.items())
        raise ComparisonError(problem.format(said=listed))


def _same_tokenization(loaded: list[tuple[runs.RunDirectory, Model]]) -> None:
    _one_value(
        {str(run.path): str(model.describe().get("tokens")) for run, model in loaded},
        "'{run}' ({value} tokens)",
        "cannot put the perplexities of {said} in one column: a perplexity is per token, "
        "and a word is not a character; compare runs of one tokenization (model.tokens)",
    )


def _same_counts(rows: list[dict[str, Any]]) -> None:
    _one_value(
        {row["run"]: row["tokens_scored"] for row in rows},
        "'{run}' {value:,}",
        "the runs cut the data into different numbers of tokens ({said}), so their "
        "perplexities are in different units; compare runs with the same tokenizer",
    )


def _same_feature_space(rows: list[dict[str, Any]]) -> None:
    _one_value(
        {row["run"]: row["feature_space"] for row in rows},
        "'{run}' {value}",
        "FID is comparable only in one feature space, and these were scored in "
        "different ones ({said}); compare image models of one size and data",
    )


def _figures(task: str, model: Model, metrics: dict[str, Any]) -> dict[str, Any]:
    if task == "text":
        bits = metrics["bits_per_token"]
        return {
            "tokens": str(model.describe().get("tokens")),
            "tokens_scored": metrics["tokens"],
            "cross_entropy": metrics.get("cross_entropy", bits * math.log(2)),
            "perplexity": metrics["perplexity"],
            "bits_per_token": bits,
        }
    if task == "translation":
        return {"bleu": metrics["bleu"], "chrf": metrics["chrf"]}
    space = metrics["feature_space"]
    return {
        "feature_space": space,
        "fid": metrics[f"fid_{space}"],
        "kid": metrics[f"kid_{space}"],
    }


def _run_facts(run: runs.RunDirectory) -> dict[str, Any]:
    """Parameters (the training's count; else the numbers the model file holds), training
    time, and the bytes of the run's files on disk."""
    summary = run.meta.get("metrics", {})
    parameters = summary.get("parameters")
    if not isinstance(parameters, int):
        header = runs.tensor_header(run.path / runs.TENSOR_FILE)
        parameters = sum(math.prod(shape) for _, shape in header.values())
    size = sum(int(f["bytes"]) for f in run.meta["files"].values())
    size += (run.path / runs.META_FILE).stat().st_size
    seconds = summary.get("train_seconds")
    return {
        "parameters": parameters,
        "train_seconds": seconds if isinstance(seconds, (int, float)) else None,
        "size_bytes": size,
    }
