"""Command-line options shared by several commands, each defined once."""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import click
from click.shell_completion import CompletionItem

from gentool.runs import META_FILE, dumps_json

F = Callable[..., Any]

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print machine-readable JSON to stdout."
)


# -- shell completion (click's: bash, zsh, fish; see the README) ------------------------------


def _entries(incomplete: str, bases: list[str]) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """(completion, entry) for what is in each base folder ("" is the current one), or in
    the folder the user is typing in; completions keep the user's own prefix."""
    head, sep, _ = incomplete.rpartition("/")
    for base in [head + sep] if sep else bases:
        with contextlib.suppress(OSError), os.scandir(os.path.expanduser(base or ".")) as it:
            for entry in sorted(it, key=lambda e: e.name):
                if (base + entry.name).startswith(incomplete):
                    yield base + entry.name, entry


def complete_runs(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Run directories (with a gentool.json) here and in runs/; else the shell's folders."""
    found = []
    for value, entry in _entries(incomplete, ["", "runs/"]):
        meta = os.path.join(entry.path, META_FILE)
        if entry.is_dir() and os.path.isfile(meta):
            family = None
            with (
                contextlib.suppress(OSError, ValueError, AttributeError),
                open(meta, encoding="utf-8") as f,
            ):
                family = json.load(f).get("family")
            found.append(CompletionItem(value, help=f"{family} run" if family else None))
    return found or [CompletionItem(incomplete, type="dir")]


def complete_families(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """The installed families, with their descriptions."""
    from gentool.plugins import get_registry

    with contextlib.redirect_stderr(io.StringIO()):  # no plugin warnings mid-line
        families = get_registry().families
    return [
        CompletionItem(name, help=family.description)
        for name, family in sorted(families.items())
        if name.startswith(incomplete)
    ]


def complete_recipes(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Shipped recipes by name, and *.toml files; else the shell's files."""
    from gentool.recipes import shipped_recipes

    found = []
    if "/" not in incomplete:
        with contextlib.suppress(Exception):  # completion must never fail
            found += [
                CompletionItem(r.name, help=r.description)
                for r in shipped_recipes()
                if r.name.startswith(incomplete)
            ]
    for value, entry in _entries(incomplete, [""]):
        if entry.name.endswith(".toml") and entry.is_file():
            found.append(CompletionItem(value, help="recipe file"))
    return found or [CompletionItem(incomplete, type="file")]


run_argument = click.argument(
    "run",
    type=click.Path(file_okay=False, path_type=str),
    metavar="RUN",
    shell_complete=complete_runs,
)


def sampling_options(f: F) -> F:
    """The sampling flags of every generating family."""
    options = [
        click.option("--prompt", default="", help="Text to continue."),
        click.option(
            "--num-samples",
            "-n",
            default=1,
            show_default=True,
            type=click.IntRange(min=1),
            help="How many samples.",
        ),
        click.option(
            "--max-tokens",
            default=100,
            show_default=True,
            type=click.IntRange(min=1),
            help="Most new tokens per sample.",
        ),
        click.option(
            "--temperature",
            default=1.0,
            show_default=True,
            type=click.FloatRange(min=0.0),
            help="Sharpen (<1) or flatten (>1) the distribution; 0 is greedy.",
        ),
        click.option(
            "--top-k",
            type=click.IntRange(min=1),
            default=None,
            help="Sample only from the K most likely tokens.",
        ),
        click.option(
            "--top-p",
            type=click.FloatRange(min=0.0, max=1.0, min_open=True),
            default=None,
            help="Sample from the smallest set with this much mass.",
        ),
        click.option(
            "--beams",
            "num_beams",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="Beam search with this many beams (families that support it).",
        ),
        click.option(
            "--seed", type=int, default=None, help="Same seed and model give the same text."
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def print_json(obj: Any) -> None:
    click.echo(dumps_json(obj))


def print_table(rows: list[list[str]], header: list[str]) -> None:
    """Plain aligned columns; the first row is the header."""
    table = [header, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
