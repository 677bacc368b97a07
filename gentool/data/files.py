"""Reading a data file the user named: a regular file only, and gzip with a bound.

gentool reads every data file at least twice (its sha256 for gentool.json, then its
contents), and whole. A stream (a FIFO, /dev/zero, /dev/stdin) cannot be read twice and
may never end, so it is refused up front. A gzip file is decompressed in pieces, stopping
at a size no real corpus reaches from that many compressed bytes (a "gzip bomb"), and at
half the memory available.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from gentool.errors import DataError

# Text and images compress 2-5x under gzip (Multi30k 3x, MNIST 4.7x); only a file built to
# be repetitive, or to explode, expands more than 100x. Small files may expand freely.
GZIP_MAX_RATIO = 100
GZIP_FREE_BYTES = 64 << 20

_KINDS = {
    stat.S_ISDIR: "a directory",
    stat.S_ISFIFO: "a pipe (FIFO)",
    stat.S_ISCHR: "a character device",
    stat.S_ISBLK: "a block device",
    stat.S_ISSOCK: "a socket",
}


def files_under(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """Files under ``folder`` whose names end with one of ``suffixes`` (any case),
    recursively and in a stable order; hidden files and folders are skipped."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [
            Path(root) / f
            for f in sorted(files)
            if not f.startswith(".") and f.lower().endswith(suffixes)
        ]
    return found


def check_regular(path: Path, what: str = "data file") -> None:
    """DataError unless ``path`` is a regular file (after symlinks). ``path`` exists."""
    mode = path.stat().st_mode
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _KINDS.items() if test(mode)), "a special file")
    raise DataError(
        f"{what} '{path}' is {kind}, not a regular file, and gentool reads a data file "
        "whole and more than once (to fingerprint it, then to use it); save the stream to a "
        "file first (e.g. 'command > data.txt') and give that"
    )


def read_data_bytes(path: Path, gzipped: bool, what: str = "data file") -> bytes:
    """The bytes of the regular file ``path``; decompressed if ``gzipped``, within the
    bounds above. OSError, EOFError (a truncated gzip) and gzip.BadGzipFile are left to the
    caller, which names the file in its own words."""
    check_regular(path, what)
    raw = path.read_bytes()
    return gunzip(raw, path, what) if gzipped else raw


def gunzip(raw: bytes, path: Path, what: str = "data file") -> bytes:
    """``gzip.decompress(raw)``, refusing output past GZIP_MAX_RATIO times the input (and
    GZIP_FREE_BYTES) or past half the available memory, before it is made."""
    by_ratio = max(GZIP_MAX_RATIO * len(raw), GZIP_FREE_BYTES)
    memory = available_memory()
    limit = by_ratio if memory is None else min(by_ratio, memory // 2)
    out = bytearray()
    with gzip.GzipFile(fileobj=io.BytesIO(raw)) as f:
        while chunk := f.read(1 << 20):
            out += chunk
            if len(out) <= limit:
                continue
            if limit == by_ratio:
                raise _bomb(path, what, limit, len(raw))
            raise DataError(
                f"{what} '{path}' decompresses to more than {_size(limit)}, half the memory "
                f"available ({_size(memory or 0)}), and gentool reads data whole; give a "
                "smaller file, or free memory"
            )
    return bytes(out)


def read_data_blocks(
    path: Path, gzipped: bool, size: int, what: str = "data file"
) -> Iterator[bytes]:
    """``read_data_bytes`` in pieces of about ``size`` bytes, for readers that stream: the
    same checks and the same bound on how far gzip may expand; no bound by memory, as
    nothing is held whole. Errors are left to the caller as there."""
    check_regular(path, what)
    if not gzipped:
        with open(path, "rb") as f:
            while block := f.read(size):
                yield block
        return
    compressed = path.stat().st_size
    limit, seen = max(GZIP_MAX_RATIO * compressed, GZIP_FREE_BYTES), 0
    with gzip.open(path, "rb") as f:
        while block := f.read(size):
            seen += len(block)
            if seen > limit:
                raise _bomb(path, what, limit, compressed)
            yield block


def _bomb(path: Path, what: str, limit: int, compressed: int) -> DataError:
    return DataError(
        f"{what} '{path}' expands more than {GZIP_MAX_RATIO}-fold when "
        f"decompressed (past {_size(limit)} from {_size(compressed)}), which no real "
        f"data does; if it is meant, decompress it yourself (gunzip -k '{path}') "
        "and give the plain file"
    )


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux MemAvailable), or None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"
