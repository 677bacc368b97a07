"""Command-line options shared by several commands, each defined once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from gentool.runs import dumps_json

F = Callable[..., Any]

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print machine-readable JSON to stdout."
)

run_argument = click.argument("run", type=click.Path(file_okay=False, path_type=str), metavar="RUN")


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
