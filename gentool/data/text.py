"""Reading text corpora: UTF-8 (optionally gzip), with errors that say where and how to fix."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from importlib import resources
from pathlib import Path

from gentool.data.files import read_data_blocks, read_data_bytes
from gentool.errors import DataError

DEFAULT_TEXT = "shakespeare.txt"
# Longer than any sentence or paragraph: a file with no line breaks, or minified data.
LONG_LINE = 100_000
# Places where cutting a text changes no tokenizer's output: after a newline that sits between
# two non-space characters (a byte-level BPE pre-token never crosses it, nor depends on it).
SAFE_CUT = re.compile(r"(?<=\S)\n(?=\S)")
BLOCK_BYTES = 1 << 22  # read at a time by corpus_texts


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
    return "".join(corpus_texts(paths, field))


def corpus_texts(paths: Sequence[str | Path], field: str | None = None) -> Iterator[str]:
    """``read_corpus``'s text in pieces (cut at line ends) that join to it, read as they
    are needed: a corpus larger than memory streams. The same checks and errors."""
    from gentool.data import sources

    for path in paths:
        if sources.is_table(path, sources.Fields(field)):
            for rows in sources.text_rows(path, field):
                yield "".join(row + "\n" for row in rows)
        else:
            yield from _file_texts(Path(path))


def _file_texts(path: Path) -> Iterator[str]:
    """A text file's pieces, as ``read_text`` would check and decode it whole, ending
    with a newline."""
    if not path.exists():
        raise DataError(f"data file '{path}' does not exist; check the path")
    if path.is_dir():
        raise DataError(f"data path '{path}' is a directory; give a text file")
    offset, carry, text = 0, b"", False
    try:
        for block in read_data_blocks(path, path.suffix == ".gz", BLOCK_BYTES):
            text = text or bool(block.strip())
            raw = carry + block
            end = raw.rfind(b"\n") + 1  # a newline byte never sits inside a UTF-8 character
            if end:
                yield decode_text(path, raw[:end], offset)
                offset += end
            carry = raw[end:]
    except (OSError, EOFError) as err:
        raise DataError(f"data file '{path}' cannot be read: {err}") from err
    if not text:
        raise DataError(f"data file '{path}' is empty; give a file with some text")
    if carry:  # the last line, without its newline
        yield decode_text(path, carry, offset) + "\n"


def safe_pieces(texts: Iterable[str], size: int = 1 << 22) -> Iterator[str]:
    """The text of ``texts`` again, in pieces of about ``size`` characters cut only at
    ``SAFE_CUT``: every tokenizer encodes the pieces one by one exactly as the whole."""
    held: list[str] = []  # text since the last cut, none of it holding a cut past ``size``
    length = 0
    for text in texts:
        held.append(text)
        length += len(text)
        if length <= size:
            continue
        buffer = "".join(held)
        start = 0
        while len(buffer) - start > size and (cut := SAFE_CUT.search(buffer, start + size)):
            yield buffer[start : cut.end()]
            start = cut.end()
        held, length = [buffer[start:]], len(buffer) - start
    if length:
        yield "".join(held)


def stream_lines(path: str | Path) -> Iterator[str]:
    """``read_lines``'s lines, read as they are needed (``corpus_texts``), with its checks."""
    for piece in _file_texts(Path(path)):
        for line in piece.split("\n")[:-1]:  # (each piece ends with a newline)
            yield line.removesuffix("\r")


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
