"""``gentool plot``: the learning curves of runs, read from their ``metrics.jsonl``.

The series come from the lines the training engine logs (docs/training.md): the training
loss, learning rate and throughput at every logged step, the validation loss at each
evaluation, and for GANs the discriminator's outputs, both losses, the gradient norms and
the diversity figure. Reading them needs nothing but the standard library (``curves``);
drawing them needs matplotlib, an optional extra (``pip install 'gentool[plot]'``), which
is imported only when a figure is drawn.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from gentool import runs
from gentool.errors import GentoolError, OutputError

# The formats a figure is written in, by the output's suffix.
FIGURE_SUFFIXES = (".png", ".svg")
# Each panel is this many inches at this many dots per inch: two panels a row, so a PNG is
# 1200 pixels wide and PANEL_HEIGHT * DPI pixels a row of panels, plus the legend's band.
DPI = 100
PANEL_WIDTH, PANEL_HEIGHT, LEGEND_HEIGHT = 6.0, 3.6, 0.6


@dataclass(frozen=True)
class Line:
    key: str  # the field of metrics.jsonl
    label: str  # what the panel's legend calls it
    style: str = "-"


@dataclass(frozen=True)
class Panel:
    """One plot of the figure: ``lines`` of every run that logged them, against ``x``."""

    title: str
    ylabel: str
    lines: tuple[Line, ...]
    x: str = "step"  # or "seconds": wall time since training began
    log_y: bool | None = None  # None: log when the values span more than a factor of 10
    reference: float | None = None  # a dotted horizontal line (D = 0.5, diversity = 1)
    gan: bool | None = None  # only for GAN runs (True), only for others (False), or both
    unit: str | None = None  # only for runs counting this unit (throughput: one panel each)


LOSS = (Line("loss", "training"), Line("val_loss", "validation", "--"))
PANELS = (
    Panel("Loss against steps", "cross-entropy (nats per {unit})", LOSS, gan=False),
    Panel("Loss against wall time", "cross-entropy (nats per {unit})", LOSS, "seconds", gan=False),
    Panel(
        "Discriminator outputs: D(x) real, D(G(z)) generated",
        "probability 'real'",
        (Line("d_real", "D(x)"), Line("d_fake", "D(G(z))", "--")),
        log_y=False,
        reference=0.5,
    ),
    Panel(
        "Adversarial losses",
        "loss (nats)",
        (
            Line("loss_d", "discriminator"),
            Line("loss_g", "generator", "--"),
            Line("val_loss_d", "discriminator, held out", ":"),
        ),
    ),
    Panel(
        "Gradient norms",
        "L2 norm (before clipping)",
        (Line("grad_norm_d", "discriminator"), Line("grad_norm_g", "generator", "--")),
        log_y=True,
    ),
    Panel(
        "Diversity (spread of generated / real images)",
        "ratio (1: as varied as the data)",
        (Line("diversity", "diversity"),),
        log_y=False,
        reference=1.0,
    ),
    Panel("Learning rate", "learning rate", (Line("lr", "learning rate"),), log_y=False),
    Panel("Throughput", "{units} per second", (Line("{unit}_per_s", "throughput"),), log_y=False),
)


# -- reading ----------------------------------------------------------------------------------


def curves(run_paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """The logged series of each run: ``{"run", "family", "kind", "unit", "series"}``, where
    ``series`` maps each field of ``metrics.jsonl`` to ``{"step": [...], "seconds": [...],
    "value": [...]}`` in step order (``seconds`` null where a run did not log wall time).
    An unfinished run (still training, or interrupted) is read as far as it has logged.
    Raises ``RunError`` for a missing or damaged run, ``DataError`` for one that logged no
    curve (ngram trains in one pass)."""
    if not run_paths:
        raise GentoolError("give at least one run directory to plot")
    found = [read_run(Path(p)) for p in run_paths]
    if not any(run["series"] for run in found):
        names = ", ".join(f"'{r['run']}' ({r['family']})" for r in found)
        raise runs.RunError(
            f"{names} logged no training curve (an ngram model is counted in one pass); "
            "plot runs of a neural family"
        )
    return found


def read_run(path: Path) -> dict[str, Any]:
    """One run's entry of ``curves`` (``series`` empty when it logged nothing)."""
    if (path / runs.TRAINING_FILE).is_file() and not (path / runs.META_FILE).is_file():
        family, kind = _training_run(path)  # unfinished: plot what it has logged so far
    else:
        run = runs.RunDirectory(path)  # raises the RunError for a missing or damaged run
        family, kind = run.family, run.kind
    series: dict[str, dict[str, list[Any]]] = {}
    unit = None
    for record in _records(path):
        step = record.get("step")
        if not isinstance(step, int):
            continue  # the summary line
        for key, value in record.items():
            if key in ("step", "seconds") or not isinstance(value, (int, float)):
                continue
            if key.endswith("_per_s"):
                unit = key.removesuffix("_per_s")
            points = series.setdefault(key, {"step": [], "seconds": [], "value": []})
            if points["step"] and points["step"][-1] >= step:  # a resumed run logs again
                _drop_from(points, step)
            points["step"].append(step)
            points["seconds"].append(record.get("seconds"))
            points["value"].append(value if math.isfinite(value) else None)
    for points in series.values():
        if any(s is None for s in points["seconds"]):
            points["seconds"] = None  # type: ignore[assignment]
    return {"run": str(path), "family": family, "kind": kind, "unit": unit, "series": series}


def _drop_from(points: dict[str, list[Any]], step: int) -> None:
    keep = sum(1 for s in points["step"] if s < step)
    for values in points.values():
        del values[keep:]


def _training_run(path: Path) -> tuple[str, str | None]:
    try:
        record = json.loads((path / runs.TRAINING_FILE).read_text(encoding="utf-8"))
        recipe = record["recipe"]
        return str(record["family"]), recipe.get("kind") if isinstance(recipe, dict) else None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise runs.damaged(path, f"{runs.TRAINING_FILE} cannot be read ({err})") from None


def _records(path: Path) -> list[dict[str, Any]]:
    metrics = path / runs.METRICS_FILE
    if not metrics.is_file():
        return []
    records = []
    try:
        lines = metrics.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise runs.damaged(path, f"{runs.METRICS_FILE} cannot be read ({err})") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise runs.damaged(
                path, f"line {number} of {runs.METRICS_FILE} is not JSON", "restore it from a copy"
            ) from None
        if isinstance(record, dict):
            records.append(record)
    return records


# -- drawing ----------------------------------------------------------------------------------


def plot(
    run_paths: Sequence[str | Path],
    output: str | Path,
    force: bool = False,
    svg: bool = False,
) -> tuple[list[dict[str, Any]], list[Path]]:
    """``gentool plot``: draw the curves of the runs into ``output`` (PNG or SVG, by its
    suffix; ``svg``: also an SVG beside a PNG), runs overlaid in one colour each. Returns
    the series (as ``curves``) and the files written. Refuses, before reading any run, an
    output inside a run directory or an existing file without ``force`` (``OutputError``);
    raises ``GentoolError`` when matplotlib is not installed."""
    targets = check_figure_output(Path(output), force, svg)
    found = curves(run_paths)
    pyplot = _pyplot()
    _write(draw(found, pyplot), targets, pyplot)
    return found, targets


def check_figure_output(output: Path, force: bool, svg: bool = False) -> list[Path]:
    """The files a figure goes to (``svg``: an SVG beside a PNG), checked before any work:
    a .png or .svg name, outside every run, an existing file only with ``force``; and
    matplotlib importable."""
    targets = _targets(output, svg)
    for target in targets:
        runs.check_output_file(target, "--output", force)
    _pyplot()
    return targets


def _write(figure: Any, targets: list[Path], pyplot: Any, tight: bool = False) -> None:
    try:
        with runs.output_files() as written:
            for target in targets:
                fmt = target.suffix.lower()[1:]
                written.write(target, partial(_save, figure, fmt=fmt, tight=tight), "--output")
    finally:
        pyplot.close(figure)


def draw_table(table: dict[str, Any], output: Path) -> None:
    """``gentool compare -o``: the table of ``api.compare`` as a figure."""
    pyplot = _pyplot()
    columns = table["columns"]
    cells = [[_cell(row[c]) for c in columns] for row in table["rows"]]
    figure, ax = pyplot.subplots(figsize=(1.3 * len(columns), 0.3 * (len(cells) + 1)), dpi=DPI)
    ax.axis("off")
    drawn = ax.table(cellText=cells, colLabels=columns, cellLoc="right", bbox=(0, 0, 1, 1))
    drawn.auto_set_font_size(False)
    drawn.set_fontsize(9)
    drawn.auto_set_column_width(list(range(len(columns))))
    ax.set_title(f"held-out data: {_data_label(table['data'])}", fontsize=10)
    _write(figure, [output], pyplot, tight=True)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return "-" if value is None else str(value)


def _data_label(data: Any) -> str:
    if isinstance(data, dict):
        return f"{data['source']} -> {data['target']}"
    return ", ".join(data)


def _targets(output: Path, svg: bool) -> list[Path]:
    if output.suffix.lower() not in FIGURE_SUFFIXES:
        raise OutputError(
            f"--output '{output}': name a .png or .svg file (the suffix names the format), "
            f"e.g. '{output.with_suffix('.png').name}'"
        )
    if svg and output.suffix.lower() == ".png":
        return [output, output.with_suffix(".svg")]
    return [output]


def _save(figure: Any, path: Path, *, fmt: str, tight: bool) -> None:
    with runs.atomic_path(path) as tmp:
        # SVG: text stays text; no date in the file, so one figure gives the same bytes.
        metadata = {"Date": None} if fmt == "svg" else {"Software": "gentool"}
        # tight (a table): cropped to what is drawn; curves keep their documented size.
        bbox = {"bbox_inches": "tight", "pad_inches": 0.15} if tight else {}
        figure.savefig(tmp, format=fmt, dpi=DPI, metadata=metadata, **bbox)


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise GentoolError(
            "gentool plot needs matplotlib: pip install 'gentool[plot]' (or pip install "
            "matplotlib); gentool plot --json prints the series without it"
        ) from None
    matplotlib.use("Agg")  # files only: never a window, works without a display
    import matplotlib.pyplot as pyplot

    return pyplot


def panels_for(found: Sequence[dict[str, Any]]) -> list[Panel]:
    """The panels that at least one run has a line for, in PANELS' order; a panel whose
    lines are per unit (throughput) once per unit, never tokens and images on one axis."""
    panels = []
    for panel in PANELS:
        if "{unit}" in panel.lines[0].key:
            units = dict.fromkeys(run["unit"] for run in found if run["unit"])
            for unit in units:
                panels.append(replace(panel, unit=unit, title=f"{panel.title} ({unit})"))
        else:
            panels.append(panel)
    return [p for p in panels if any(_lines(p, run) for run in found)]


def _lines(panel: Panel, run: dict[str, Any]) -> list[tuple[Line, dict[str, Any]]]:
    gan = "d_real" in run["series"]
    if panel.gan is not None and panel.gan != gan:
        return []
    if panel.unit is not None and run["unit"] != panel.unit:
        return []
    found = []
    for line in panel.lines:
        points = run["series"].get(line.key.format(unit=run["unit"]))
        if points and (panel.x == "step" or points["seconds"] is not None):
            found.append((line, points))
    return found


def draw(found: Sequence[dict[str, Any]], pyplot: Any) -> Any:
    """The figure of ``curves``' series: two panels a row, a colour per run."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter

    panels = panels_for(found)
    rows = math.ceil(len(panels) / 2)
    figure, axes = pyplot.subplots(
        rows,
        2,
        figsize=(2 * PANEL_WIDTH, rows * PANEL_HEIGHT + LEGEND_HEIGHT),
        dpi=DPI,
        squeeze=False,
        layout="constrained",
    )
    colours = pyplot.rcParams["axes.prop_cycle"].by_key()["color"]
    for panel, ax in zip(panels, axes.flat, strict=False):
        units = {run["unit"] for run in found if run["unit"] and _lines(panel, run)}
        unit = units.pop() if len(units) == 1 else "items"
        values: list[float] = []
        styles: dict[str, Line] = {}
        for i, run in enumerate(found):
            for line, points in _lines(panel, run):
                xs = points["step"] if panel.x == "step" else points["seconds"]
                ax.plot(
                    xs,
                    points["value"],
                    line.style,
                    color=colours[i % len(colours)],
                    marker="o" if len(xs) < 12 else None,
                    markersize=3,
                )
                values += [v for v in points["value"] if v is not None]
                styles.setdefault(line.label, line)
        if panel.reference is not None:
            ax.axhline(panel.reference, color="grey", linestyle=":", linewidth=1)
        ax.set_title(panel.title, fontsize=11)
        ax.set_xlabel("training step" if panel.x == "step" else "wall time (seconds)")
        ax.set_ylabel(panel.ylabel.format(unit=unit.removesuffix("s"), units=unit))
        if _log_scale(panel, values):
            ax.set_yscale("log")
            if max(values) / min(values) < 30:  # within a decade or so: label the minor ticks
                ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
                ax.tick_params(axis="y", which="minor", labelsize=8)
        elif values and min(values) == max(values) > 0:
            ax.set_ylim(0, 2 * values[0])  # a constant (a GAN's learning rate): no 1e-9 ticks
        ax.grid(True, alpha=0.3)
        if len(styles) > 1:  # which line is which: the styles, in black
            handles = [Line2D([], [], color="black", ls=s.style) for s in styles.values()]
            ax.legend(handles, list(styles), fontsize=8, loc="best")
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    figure.legend(
        [Line2D([], [], color=colours[i % len(colours)], linewidth=2) for i in range(len(found))],
        [_label(run) for run in found],
        loc="outside upper center",
        ncols=min(len(found), 4),
        fontsize=10,
        frameon=False,
    )
    return figure


def _log_scale(panel: Panel, values: list[float]) -> bool:
    if panel.log_y is not None:
        return panel.log_y and bool(values) and min(values) > 0
    return bool(values) and min(values) > 0 and max(values) / min(values) > 10


def _label(run: dict[str, Any]) -> str:
    kind = run["kind"] if run["kind"] and run["kind"] != run["family"] else None
    return f"{run['run']} ({run['family']}{' ' + kind if kind else ''})"


# -- gradient flow (gentool evaluate --gradient-flow) -----------------------------------------

CELL_NAMES = {"rnn": "tanh RNN", "lstm": "LSTM", "gru": "GRU"}


def plot_gradient_flow(
    results: Sequence[dict[str, Any]], output: str | Path, force: bool = False
) -> Path:
    """Draw the curves of ``api.gradient_flow`` results (one or several runs, overlaid)
    into ``output`` (.png or .svg): the gradient norm against the distance k, and the same
    relative to k = 0, both on a log scale."""
    (target,) = check_figure_output(Path(output), force)
    pyplot = _pyplot()
    figure, axes = pyplot.subplots(
        1, 2, figsize=(2 * PANEL_WIDTH, PANEL_HEIGHT + LEGEND_HEIGHT), dpi=DPI, layout="constrained"
    )
    panels = (
        ("gradient_norm", "Gradient of the loss at t w.r.t. the input at t-k", "mean L2 norm"),
        ("relative", "The same, relative to k = 0", "norm / norm at k = 0"),
    )
    for ax, (key, title, ylabel) in zip(axes, panels, strict=True):
        for result in results:
            values = [v if v > 0 else None for v in result[key]]
            ax.plot(result["distance"], values, marker="o" if len(values) < 12 else None, ms=3)
        ax.set_yscale("log")
        ax.set_title(title, fontsize=11)
        ax.set_xlabel("distance k (tokens back from the predicting position)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    figure.legend(
        axes[0].get_lines(),
        [_flow_label(r) for r in results],
        loc="outside upper center",
        ncols=min(len(results), 4),
        fontsize=10,
        frameon=False,
    )
    _write(figure, [target], pyplot)
    return target


def _flow_label(result: dict[str, Any]) -> str:
    what = CELL_NAMES.get(result.get("cell") or "", result["family"])
    name = result["run"] or result["family"]
    return f"{name} ({what})"


# -- n-gram growth (gentool info --plot) ------------------------------------------------------


def plot_ngram_growth(found: dict[str, Any], output: str | Path, force: bool = False) -> Path:
    """Draw an ngram run's growth from ``api.info``'s result into ``output``: the distinct
    n-grams of each order against the V^n possible (log scale); with held-out data
    (``found["heldout"]``), beside it the share of held-out n-grams never seen."""
    (target,) = check_figure_output(Path(output), force)
    seen = found["model"]["ngrams"]
    heldout = found.get("heldout", {}).get("ngrams")
    pyplot = _pyplot()
    columns = 2 if heldout else 1
    figure, axes = pyplot.subplots(
        1,
        columns,
        figsize=(columns * PANEL_WIDTH, PANEL_HEIGHT + LEGEND_HEIGHT),
        dpi=DPI,
        squeeze=False,
        layout="constrained",
    )
    orders = [o["order"] for o in seen]
    vocab = found["model"]["vocab_size"]
    ax = axes[0][0]
    ax.plot(
        orders, [o["possible"] for o in seen], "--", marker="o", ms=4, label=f"V^n (V = {vocab:,})"
    )
    ax.plot(orders, [o["distinct"] for o in seen], marker="o", ms=4, label="distinct n-grams seen")
    for o in seen:
        ax.annotate(f"{o['distinct']:,}", (o["order"], o["distinct"]), textcoords="offset points",
                    xytext=(0, -13), ha="center", fontsize=8)  # fmt: skip
    ax.set_yscale("log")
    ax.set_ylim(bottom=min(o["distinct"] for o in seen) / 5)  # room for the lowest label
    ax.set_title("Distinct n-grams in training against the V^n possible", fontsize=11)
    ax.set_xlabel("order n")
    ax.set_ylabel("n-grams (log scale)")
    ax.set_xticks(orders)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=9, loc="upper left")
    if heldout:
        ax = axes[0][1]
        shares = [100 * (o["unseen_fraction"] or 0.0) for o in heldout]
        ax.bar([o["order"] for o in heldout], shares, color="tab:red", alpha=0.8)
        for o, share in zip(heldout, shares, strict=True):
            ax.annotate(f"{share:.1f}%", (o["order"], share), textcoords="offset points",
                        xytext=(0, 3), ha="center", fontsize=9)  # fmt: skip
        ax.set_title("Held-out n-grams never seen in training", fontsize=11)
        ax.set_xlabel("order n")
        ax.set_ylabel("unseen share (%)")
        ax.set_xticks([o["order"] for o in heldout])
        ax.set_ylim(0, max(max(shares) * 1.15, 1.0))
        ax.grid(True, axis="y", alpha=0.3)
    tokens = found["model"].get("tokens", "")
    figure.suptitle(
        f"{found['run']}: order-{found['model']['order']} {tokens} n-gram model", fontsize=11
    )
    _write(figure, [target], pyplot)
    return target
