"""Reading text corpora: UTF-8 (optionally gzip), with errors that say where and how to fix."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path

from gentool.data.files import read_data_bytes
from gentool.errors import DataError

DEFAULT_TEXT = "shakespeare.txt"
# Longer than any sentence or paragraph: a file with no line breaks, or minified data.
LONG_LINE = 100_000


def default_text_path() -> Path:
    """The small public-domain corpus shipped in the package (gentool/embedded/README.md)."""
    return Path(str(resources.files("gentool.embedded").joinpath(DEFAULT_TEXT)))


def read_text(path: str | Path) -> str:
    """Return the whole file as text, or raise DataError naming the file and the fix.

    Files ending in ``.gz`` are decompressed. A NUL byte or invalid UTF-8 is reported
    with its byte offset, so the user can find it (``cmp``, ``xxd -s OFFSET``).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file '{path}' does not exist; check the path")
    if path.is_dir():
        raise DataError(f"data path '{path}' is a directory; give a text file")
    try:
        raw = read_data_bytes(path, gzipped=path.suffix == ".gz")
    except (OSError, EOFError) as err:
        raise DataError(f"data file '{path}' cannot be read: {err}") from err
    if not raw.strip():
        raise DataError(f"data file '{path}' is empty; give a file with some text")
    return decode_text(path, raw)


def decode_text(path: str | Path, raw: bytes, offset: int = 0) -> str:
    """``raw`` as UTF-8, or DataError naming the NUL byte or invalid byte and its offset in
    the file (``raw`` starts ``offset`` bytes into it: readers that stream)."""
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise DataError(
            f"data file '{path}' is binary, not text (NUL byte at offset {offset + nul}); "
            "give a UTF-8 text file"
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(
            f"data file '{path}' is not UTF-8 text (byte 0x{raw[err.start]:02x} at offset "
            f"{offset + err.start}); convert it, e.g. iconv -f latin1 -t utf-8"
        ) from err


def read_corpus(paths: Sequence[str | Path], field: str | None = None) -> str:
    """The files' text as one string (what stream models train on), each file ending with
    a newline. A table or dataset (``gentool.data.sources``) gives its rows' ``field``
    (default ``text``), a row per line."""
    from gentool.data import sources

    parts = [
        sources.table_text(p, field) if sources.is_table(p, sources.Fields(field)) else read_text(p)
        for p in paths
    ]
    return "".join(p if p.endswith("\n") else p + "\n" for p in parts)


def read_lines(path: str | Path) -> list[str]:
    """The file's lines, without line endings; a trailing newline adds no empty line.

    Lines end at "\n" (and "\r\n") only, as KenLM reads them: str.splitlines() would
    also break at form feeds and U+2028, which Gutenberg texts contain.
    """
    lines = read_text(path).split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def warn_long_lines(path: str | Path, lines: Sequence[str], log: Callable[[str], None]) -> None:
    """Warn (through ``log``) when a file read as one sentence per line has a line no
    sentence is as long as: the model would learn one sentence start and end from it."""
    longest = max(range(len(lines)), key=lambda i: len(lines[i]), default=None)
    if longest is not None and len(lines[longest]) > LONG_LINE:
        log(long_line_warning(path, longest + 1, len(lines[longest])))


def long_line_warning(path: str | Path, number: int, length: int) -> str:
    """What ``warn_long_lines`` says of line ``number`` (from 1), ``length`` characters."""
    return (
        f"warning: line {number} of '{path}' is {length:,} characters "
        "long; models that read one sentence per line learn where sentences start and "
        "end from line breaks: put one sentence (or paragraph) per line"
    )
