"""Command-line options shared by several commands, each defined once."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
import sys
import textwrap
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import click
from click.shell_completion import CompletionItem

from gentool.errors import OutputError
from gentool.output import files
from gentool.recipes import MAX_SEED
from gentool.runs import META_FILE, dumps_json

F = Callable[..., Any]

# -- sizes: --memory 2G -------------------------------------------------------------------------
SIZE_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_size(text: str) -> int:
    """Bytes from '2G', '512M', '100K' (powers of 1024; 'GB', 'GiB' too) or a plain number."""
    clean = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = clean[-1:] if clean[-1:].isalpha() else ""
    number = clean.removesuffix(unit)
    try:
        value = float(number) * SIZE_UNITS[unit]
    except (ValueError, KeyError):
        raise ValueError(f"'{text}' is not a size; write e.g. 2G, 512M or 100K") from None
    if not 1 <= value < 2**63:
        raise ValueError(f"'{text}' is not a positive size; write e.g. 2G, 512M or 100K")
    return int(value)


def format_size(size: int) -> str:
    """The shortest exact spelling: 2147483648 -> '2G'."""
    for unit in ("T", "G", "M", "K"):
        if size >= SIZE_UNITS[unit] and size % SIZE_UNITS[unit] == 0:
            return f"{size // SIZE_UNITS[unit]}{unit}"
    return str(size)


class ByteSize(click.ParamType):
    """A size in bytes, written with K, M, G or T (powers of 1024)."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value))
        except ValueError as err:
            self.fail(str(err), param, ctx)


engine_option = click.option(
    "--engine",
    type=click.Choice(["run", "ct2"]),
    default="run",
    show_default=True,
    help="run: the model of RUN; ct2: RUN is a CTranslate2 export (gentool export --format ct2).",
)

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print machine-readable JSON to stdout."
)


class FiniteFloatRange(click.FloatRange):
    """click's FloatRange, refusing nan and inf (which pass its bounds: nan compares false
    with everything). A usage error names the option, before any model is loaded."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


# Every seed (--seed of train and generate, a recipe's seed) is one of numpy's: 0 to 2**32 - 1.
SEED = click.IntRange(0, MAX_SEED)


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
        families = get_registry().kinds
    return [
        CompletionItem(name, help=kinds[0].description)
        for name, kinds in sorted(families.items())
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


def _set_threads(ctx: click.Context, param: click.Parameter, value: int | None) -> None:
    from gentool import threads

    threads.set_threads(value)  # None: GENTOOL_THREADS, if set


# Every command that computes takes it; applied where torch is imported (gentool.threads).
threads_option = click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    expose_value=False,
    callback=_set_threads,
    metavar="N",
    help="Threads torch, numpy's BLAS and the tokenizers compute with [default: "
    "$GENTOOL_THREADS, else theirs: one per core, or $OMP_NUM_THREADS]. On a busy machine, "
    "1 is often fastest for small models; gentool info --system shows what is used.",
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
            type=FiniteFloatRange(min=0.0),
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
            type=FiniteFloatRange(min=0.0, max=1.0, min_open=True),
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
            "--seed", type=SEED, default=None, help="Same seed and model give the same text."
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def print_json(obj: Any) -> None:
    click.echo(dumps_json(obj))


def print_json_list(record: dict[str, Any], key: str, items: Iterable[Any]) -> None:
    """``print_json({**record, key: list(items)})`` to the byte, but each item (a string or
    a number) printed as soon as it is made: a reader of the pipe sees the first at once,
    and one that has gone (``| head``) stops the command at the next item, not at the end."""
    marker = "\0"  # json writes it as "\u0000": it cannot be in a real value's text
    head, _, tail = dumps_json({**record, key: [marker]}).partition(json.dumps(marker))
    separator = "," + head[head.rindex("\n") :]  # a comma, then the line break and indent
    empty = True
    for item in items:
        click.echo((head if empty else separator) + json.dumps(item, ensure_ascii=False), nl=False)
        empty = False
    click.echo(tail if not empty else dumps_json({**record, key: []}))


class _CheckedStdout:
    """sys.stdout while a command runs: a write that fails is an OutputError, one Error:
    line, instead of a traceback from deep in click.echo. A closed pipe stays a
    BrokenPipeError: the reader has gone (``| head``), which is no error."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def _checked(self, method: Callable[..., Any], *args: Any) -> Any:
        try:
            return method(*args)
        except BrokenPipeError:
            raise
        except OSError as err:
            raise OutputError(
                f"cannot write the output to stdout: {files.reason(err)}; free space where "
                "stdout goes, or redirect it elsewhere"
            ) from err

    def write(self, text: Any) -> Any:
        return self._checked(self._stream.write, text)

    def flush(self) -> None:
        self._checked(self._stream.flush)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def checked_stdout() -> Iterator[None]:
    """Run a command with stdout checked (see _CheckedStdout), flushed at the end. After a
    failed write, stdout is pointed at /dev/null: what is still buffered cannot be written,
    and Python would say so at exit ("Exception ignored ...") after the one Error: line."""
    original = sys.stdout
    sys.stdout = _CheckedStdout(original)
    try:
        yield
        sys.stdout.flush()
    except (BrokenPipeError, OutputError):
        _discard_output(original)
        raise
    finally:
        sys.stdout = original


def _discard_output(stream: Any) -> None:
    with contextlib.suppress(OSError, ValueError):  # an in-memory stream has no descriptor
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)


def print_table(rows: list[list[str]], header: list[str]) -> None:
    """Plain aligned columns; the first row is the header. On a terminal, the last column
    (a description) wraps at word boundaries under itself; into a pipe, a row is one line."""
    table = [header, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    indent = " " * (sum(widths[:-1]) + 2 * (len(widths) - 1))
    room = shutil.get_terminal_size().columns - len(indent) if sys.stdout.isatty() else 0
    for row in table:
        lead = "".join(cell.ljust(w) + "  " for cell, w in zip(row[:-1], widths, strict=False))
        lines = (textwrap.wrap(row[-1], room) if room >= 30 else []) or [row[-1]]
        click.echo((lead + "\n".join([lines[0], *(indent + ln for ln in lines[1:])])).rstrip())
