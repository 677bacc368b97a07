"""Estimating an n-gram model from text files of any size within a memory budget.

``NGramLM.estimate`` holds the corpus and every count in memory. This module computes the
same model, bit for bit, from files read in pieces, keeping its working data on disk:

1. **Tokenize** (streaming): the files are read a few MB at a time, tokenized and written
   as one padded id stream ``<s> w.. </s> <s> ..`` (int32) to a scratch folder; ids are
   given in first-occurrence order, as ``NGramLM.estimate`` gives them.
2. **Count**, order by order: the order-n n-gram ending at a position is the key
   ``prefix * V + word``, ``prefix`` being the index of the order n-1 n-gram ending one
   position earlier. The positions are cut into runs (``Chunking.positions``); each run's
   keys are sorted and counted in memory and written to disk, with, for every position,
   which of the run's keys it holds. A k-way merge of the sorted runs gives the order's
   table (sorted distinct keys, counts, suffix index) and each run key's index in it,
   from which the next order's keys are made. Only one merge round is held in memory.
3. **Estimate** with passes over the sorted tables: Kneser-Ney adjusted counts (a count
   of suffix indexes), count-of-counts and discounts, per-context sums (the continuations
   of a context are contiguous), and probabilities; arrays that are indexed at random
   (the lower order's probabilities) are held in memory in parts that fit the budget.
   The arithmetic is ``lm.py``'s own functions applied to pieces of the same arrays.
4. **Write** the model as safetensors; the returned ``NGramLM`` maps that file, so a
   model larger than memory is never read into it.

Files are read with ``np.fromfile`` (never memory-mapped) so the pages of the scratch
files count in the page cache, not in the process's resident memory.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gentool.data import get_tokenizer, sources
from gentool.data.files import read_data_blocks
from gentool.data.text import LONG_LINE, decode_text, long_line_warning
from gentool.errors import DataError
from gentool.interrupts import INTERRUPTS, threads_started_here_ignore_interrupts
from gentool_ngram import lm as L
from gentool_ngram.lm import BOS, EOS, SPECIAL_TOKENS, UNK, NGramLM

EOL = "\x00"  # a line end among tokens: no data holds a NUL (the reader refuses it)
DROP = -1  # id of a token training ignores (<s>, </s>, <unk> in the text, as lmplz does)


@dataclass(frozen=True)
class Chunking:
    """How the work is cut. ``for_memory`` derives it from the budget; tests make it tiny."""

    text_bytes: int  # bytes of text tokenized at once (Python strings: ~15 bytes per byte)
    positions: int  # token positions sorted at once: one run per order
    merge_items: int  # keys held by one merge round, over all runs (~130 bytes each)
    step: int  # table entries per step of a pass (~100 bytes each)
    dense_bytes: int  # a randomly indexed array (probabilities, counts) in parts this big
    processes: int = 1  # tokenizing processes for large inputs

    @classmethod
    def for_memory(cls, memory: int) -> Chunking:
        """Working memory within about 3/4 of ``memory`` (the vocabulary comes on top)."""
        processes = min(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
        return cls(
            # each tokenizing process holds a piece (the main one: its ids)
            text_bytes=int(np.clip(memory // 64 // processes, 1 << 16, 1 << 24)),
            # Pieces of at most ~16 MB per array: 1M positions sort fastest per position
            # (they fit the caches), and arrays this small are reused by malloc rather than
            # mapped afresh (and faulted in) each time; larger pieces gain nothing.
            positions=int(np.clip(memory // 128, 1 << 12, 1 << 20)),
            merge_items=int(np.clip(memory // 2 // 128, 1 << 12, 1 << 21)),
            step=int(np.clip(memory // 16 // 100, 1 << 12, 1 << 21)),
            dense_bytes=max(memory // 2, 1 << 16),
            processes=processes,
        )


# -- arrays on disk --------------------------------------------------------------------------
class DiskArray:
    """A 1-d array in a raw file, read and written in ranges."""

    def __init__(self, path: Path, dtype: Any, size: int) -> None:
        self.path, self.dtype, self.size = path, np.dtype(dtype), size

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        stop = self.size if stop is None else min(stop, self.size)
        if stop <= start:
            return np.zeros(0, self.dtype)
        offset = start * self.dtype.itemsize
        return np.fromfile(self.path, self.dtype, count=stop - start, offset=offset)

    def chunks(self, step: int) -> Iterator[tuple[int, np.ndarray]]:
        for start in range(0, self.size, step):
            yield start, self.read(start, start + step)

    def write(self, start: int, values: np.ndarray) -> None:
        with open(self.path, "r+b") as f:
            f.seek(start * self.dtype.itemsize)
            np.ascontiguousarray(values, dtype=self.dtype).tofile(f)

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)


class Appender:
    """Writes a DiskArray piece by piece."""

    def __init__(self, path: Path, dtype: Any) -> None:
        self.path, self.dtype, self.size = path, np.dtype(dtype), 0
        self.file = open(path, "wb")  # noqa: SIM115 (closed by close())

    def append(self, values: np.ndarray) -> None:
        np.ascontiguousarray(values, dtype=self.dtype).tofile(self.file)
        self.size += len(values)

    def close(self) -> DiskArray:
        self.file.close()
        return DiskArray(self.path, self.dtype, self.size)


def _zeros(path: Path, dtype: Any, size: int) -> DiskArray:
    with open(path, "wb") as f:
        f.truncate(size * np.dtype(dtype).itemsize)
    return DiskArray(path, dtype, size)


def _index_dtype(limit: int) -> Any:
    """The narrowest of int32/int64 holding values below ``limit`` (and -1)."""
    return np.int32 if limit < 2**31 else np.int64


class Scratch:
    """Names the working files of one estimation in a folder its caller removes."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.peak = 0  # the most bytes the folder held when measured
        self._next = 0

    def measure(self) -> None:
        used = sum(p.stat().st_size for p in self.folder.iterdir() if p.is_file())
        self.peak = max(self.peak, used)

    def path(self, name: str) -> Path:
        self._next += 1
        return self.folder / f"{self._next:03d}-{name}"

    def appender(self, name: str, dtype: Any) -> Appender:
        return Appender(self.path(name), dtype)


# -- reading and tokenizing ------------------------------------------------------------------
def text_chunks(
    path: Path, size: int, log: Callable[[str], None] | None = None, text_field: str | None = None
) -> Iterator[str]:
    """The file's text in pieces of whole lines, about ``size`` bytes each. A table or
    dataset (``gentool.data.sources``) gives its rows' ``text_field``, a row per line.

    The same checks, in the same words, as ``gentool.data.read_text``: a missing file, a
    directory or other non-regular file (a FIFO would never end), an empty file, a NUL byte
    or invalid UTF-8 (with its byte offset), a gzip file that expands absurdly, raise
    DataError. ``.gz`` files are decompressed as they are read. With ``log``, the warning
    of ``warn_long_lines`` for the file's longest line past LONG_LINE characters.
    """
    if sources.is_table(path, sources.Fields(text_field)):
        yield from _table_chunks(path, size, text_field)
        return
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file '{path}' does not exist; check the path")
    if path.is_dir():
        raise DataError(f"data path '{path}' is a directory; give a text file")
    offset, pending, blank = 0, b"", True
    lines = 0  # lines before the piece
    longest = (0, 0)  # (characters, line number) of the longest line past LONG_LINE
    try:
        for block in read_data_blocks(path, gzipped=path.suffix == ".gz", size=size):
            data = pending + block
            cut = data.rfind(b"\n") + 1  # lines stay whole; a long line waits for its end
            if cut:
                blank = blank and not data[:cut].strip()
                text = decode_text(path, data[:cut], offset)
                longest = _longer(longest, _longest_line(data[:cut], lines))
                lines += data.count(b"\n", 0, cut)
                yield text
                offset += cut
            pending = data[cut:]
        if pending:
            blank = blank and not pending.strip()
            text = decode_text(path, pending, offset)
            longest = _longer(longest, _longest_line(pending, lines))
            yield text
    except (OSError, EOFError) as err:
        raise DataError(f"data file '{path}' cannot be read: {err}") from err
    if blank:
        raise DataError(f"data file '{path}' is empty; give a file with some text")
    if log is not None and longest[0]:
        log(long_line_warning(path, longest[1], longest[0]))


def _table_chunks(source: Path, size: int, text_field: str | None) -> Iterator[str]:
    """The rows' text, a row per line, in pieces of about ``size`` characters."""
    piece: list[str] = []
    length = 0
    for rows in sources.text_rows(source, text_field):
        for row in rows:
            piece.append(row)
            length += len(row) + 1
            if length >= size:
                yield "\n".join(piece) + "\n"
                piece, length = [], 0
    if piece:
        yield "\n".join(piece) + "\n"


def _longer(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    return b if b[0] > a[0] else a


def _longest_line(data: bytes, lines_before: int) -> tuple[int, int]:
    """(characters, line number) of the longest line in ``data`` (whole lines, valid
    UTF-8) if it is longer than LONG_LINE characters, else (0, 0); found from the newlines'
    positions, so the text is decoded again only for lines that long in bytes."""
    ends = np.flatnonzero(np.frombuffer(data, np.uint8) == ord("\n"))
    starts = np.concatenate(([0], ends + 1))
    ends = np.concatenate((ends, [len(data)]))
    best = (0, 0)
    for i in np.flatnonzero(ends - starts > LONG_LINE):  # bytes >= characters
        length = len(data[starts[i] : ends[i]].decode("utf-8").removesuffix("\r"))
        if length > max(LONG_LINE, best[0]):  # the first of the longest, as read_lines
            best = (length, lines_before + int(i) + 1)
    return best


def line_tokens(text: str, tokens: str) -> list[str]:
    """Tokens of every line of ``text`` (whole lines, as from text_chunks), each line
    followed by EOL. Lines end at "\\n" and lose a trailing "\\r", as read_lines gives them."""
    if tokens == "whitespace":  # str.split over the text splits each line the same way
        return (text if text.endswith("\n") else text + "\n").replace("\n", " " + EOL + " ").split()
    split = get_tokenizer(tokens).split
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    out: list[str] = []
    for line in lines:
        out += split(line.removesuffix("\r"))
        out.append(EOL)
    return out


def read_sentences(
    paths: Sequence[Path], tokens: str, text_bytes: int, text_field: str | None = None
) -> Iterator[list[list[str]]]:
    """The files' sentences (lines, tokenized) in batches of about ``text_bytes`` of text."""
    split = get_tokenizer(tokens).split
    for path in paths:
        for text in text_chunks(path, text_bytes, text_field=text_field):
            lines = text.split("\n")
            if lines[-1] == "":
                lines.pop()
            yield [split(line.removesuffix("\r")) for line in lines]


class Vocabulary:
    """Word -> id in first-occurrence order after <unk>, <s>, </s>; EOL -> </s>."""

    def __init__(self) -> None:
        self.words: list[str] = list(SPECIAL_TOKENS)
        self.index: dict[str, int] = dict.fromkeys(SPECIAL_TOKENS, DROP)
        self.index[EOL] = EOS

    def ids(self, words: list[str], local: np.ndarray) -> np.ndarray:
        """Ids of a piece given as its own word list (first-occurrence order) and indexes
        into it (``local_ids``); words not seen before get the next ids, in that order."""
        index = self.index
        new = [w for w in words if w not in index]
        index.update(zip(new, range(len(self.words), len(self.words) + len(new)), strict=True))
        self.words += new
        return np.fromiter(map(index.__getitem__, words), np.int32, len(words))[local]


def local_ids(text: str, tokens: str) -> tuple[list[str], np.ndarray]:
    """The piece's tokens (lines, each followed by EOL) as its distinct words in
    first-occurrence order and each token's index among them: the work of tokenizing,
    done by worker processes for large inputs; the small dict is also quicker to query."""
    found = line_tokens(text, tokens)
    words = list(dict.fromkeys(found))
    index = dict(zip(words, range(len(words)), strict=True))
    return words, np.fromiter(map(index.__getitem__, found), np.int32, len(found))


def _tokenized(
    paths: Sequence[Path],
    tokens: str,
    chunking: Chunking,
    log: Callable[[str], None] | None = None,
    text_field: str | None = None,
) -> Iterator[tuple[list[str], np.ndarray]]:
    """``local_ids`` of each piece of the files, in order; on ``chunking.processes``
    processes when the files are large. Reading and its checks stay in this process."""
    pieces = (
        text for path in paths for text in text_chunks(path, chunking.text_bytes, log, text_field)
    )
    size = sum(Path(p).stat().st_size for p in paths if Path(p).is_file())
    if chunking.processes <= 1 or size < 4 * chunking.text_bytes:
        for text in pieces:
            yield local_ids(text, tokens)
        return
    from concurrent.futures import ProcessPoolExecutor  # 10 ms of imports: only when used

    pool = ProcessPoolExecutor(chunking.processes, initializer=_worker_ignores_interrupts)
    pending: deque[Any] = deque()  # futures of local_ids
    try:
        for text in pieces:
            # The pool's threads and processes start with the first task; let Ctrl-C
            # reach this thread only (gentool.interrupts).
            with threads_started_here_ignore_interrupts():
                pending.append(pool.submit(local_ids, text, tokens))
            if len(pending) > chunking.processes:  # a few pieces in flight, not the file
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _worker_ignores_interrupts() -> None:
    """Ctrl-C stops the main process, which stops the pool; the workers say nothing."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, INTERRUPTS)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def padded_stream(ids: np.ndarray) -> np.ndarray:
    """Ids of whole lines (each ending in EOS) as ``<s> w.. </s> <s> ..``, dropped tokens out."""
    ids = ids[ids != DROP]
    ends = np.flatnonzero(ids == EOS)
    return np.insert(ids, np.concatenate(([0], ends[:-1] + 1)), BOS)


@dataclass
class Corpus:
    """The tokenized training text on disk, and what was counted while reading it."""

    stream: DiskArray  # int32 ids, <s> w.. </s> per sentence
    vocab: list[str]
    sentences: int
    tokens: int  # as the tokenizer gave them (also <s>, </s>, <unk> in the text)
    words: int  # tokens kept (the others are dropped, as lmplz drops them)


def tokenize(
    paths: Sequence[Path],
    tokens: str,
    chunking: Chunking,
    scratch: Scratch,
    log: Callable[[str], None] | None = None,
    text_field: str | None = None,
) -> Corpus:
    vocab = Vocabulary()
    out = scratch.appender("stream.i32", np.int32)
    sentences = num_tokens = words = 0
    for piece_words, local in _tokenized(paths, tokens, chunking, log, text_field):
        ids = vocab.ids(piece_words, local)
        ends = int((ids == EOS).sum())
        stream = padded_stream(ids)
        sentences += ends
        num_tokens += ids.size - ends
        words += stream.size - 2 * ends
        out.append(stream)
    return Corpus(out.close(), vocab.words, sentences, num_tokens, words)


# -- counting --------------------------------------------------------------------------------
def unique(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``np.unique(keys, return_inverse=True, return_counts=True)`` for int64 keys >= 0.

    Several times faster: when each key fits in the bits a position leaves free, key and
    position are packed into one int64 and sorted with one plain (SIMD) sort.
    """
    n = keys.size
    if n == 0:
        return keys, np.zeros(0, np.int64), np.zeros(0, np.int64)
    shift = int(n - 1).bit_length()
    if int(keys.max()) < 1 << (63 - shift):
        packed = (keys << shift) | np.arange(n)
        packed.sort()
        order = packed & ((1 << shift) - 1)
        ordered = packed >> shift
    else:
        order = np.argsort(keys)
        ordered = keys[order]
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = np.cumsum(new) - 1
    return ordered[starts], inverse, np.diff(starts, append=n)


@dataclass
class Table:
    """The distinct n-grams of one order, sorted by key, on disk."""

    keys: DiskArray  # int64 prefix * V + word; unigrams: 0..V-1
    counts: DiskArray  # raw counts (unigram <s>: 0)
    suffix: DiskArray | None  # index of the n-gram minus its first word in order n-1
    bos: int  # the first ``bos`` n-grams begin with <s> (n >= 2); they sort first
    tracked: int = -1  # the n-gram at lmplz's last sorted position (see lm.py), -1: none

    @property
    def size(self) -> int:
        return self.keys.size


@dataclass
class Runs:
    """Per-position n-gram indexes of one order, as runs: which of its run's keys each
    position holds (``inverse``, -1: no n-gram ends there) and each run key's index in the
    merged table (``ranks``; None when there is one run: the identity)."""

    inverse: DiskArray
    ranks: DiskArray | None
    offsets: list[int]  # run j's keys are ranks[offsets[j]:offsets[j + 1]]
    positions: int  # positions per run

    def indexes(self, j: int) -> np.ndarray:
        start = j * self.positions
        inverse = self.inverse.read(start, start + self.positions).astype(np.int64)
        if self.ranks is None:
            return inverse
        ranks = self.ranks.read(self.offsets[j], self.offsets[j + 1]).astype(np.int64)
        return np.where(inverse >= 0, ranks[np.maximum(inverse, 0)] if ranks.size else -1, -1)

    def at(self, position: int) -> int:
        found = int(self.inverse.read(position, position + 1)[0])
        if found < 0 or self.ranks is None:
            return found
        j = position // self.positions
        return int(self.ranks.read(self.offsets[j] + found, self.offsets[j] + found + 1)[0])

    def delete(self) -> None:
        self.inverse.delete()
        if self.ranks is not None:
            self.ranks.delete()


def last_sorted_position(stream: DiskArray, order: int, step: int) -> int:
    """``lm._lmplz_last_position`` over a stream on disk: the position whose <s>-padded
    order-N n-gram is largest comparing the last word first; the first such on ties.

    Each piece is searched with the N-1 positions before it; the best of the pieces wins,
    the earlier on ties: the same position as a search of the whole stream.
    """
    best: tuple[tuple[int, ...], int] | None = None
    look = order - 1
    for start in range(0, stream.size, step):
        lo = max(0, start - look)
        ext = stream.read(lo, start + step).astype(np.int64)
        first = start - lo
        candidates = np.flatnonzero(ext[first:] != BOS) + first
        if candidates.size == 0:
            continue
        at_bos = np.zeros(candidates.size, dtype=bool)  # walking back crossed the <s>
        words = []
        for back in range(order):
            pos = candidates - back
            at_bos |= pos < 0
            w = ext[np.maximum(pos, 0)]
            at_bos |= w == BOS
            w = np.where(at_bos, BOS, w)
            keep = w == w.max()
            candidates, at_bos = candidates[keep], at_bos[keep]
            words.append(int(w.max()))
        found = (tuple(words), lo + int(candidates[0]))
        if best is None or found[0] > best[0]:
            best = found
    assert best is not None  # a stream with a token has a predicted position
    return best[1]


def count_order(
    n: int,
    vocab_size: int,
    stream: DiskArray,
    previous: Callable[[int], np.ndarray],
    chunking: Chunking,
    scratch: Scratch,
    keep_positions: bool,
    count_dtype: Any,
    suffix_dtype: Any,
) -> tuple[Table, Runs | None]:
    """The order-n table from the stream and the order n-1 index of every position
    (``previous(j)`` for run j): sorted runs, then a k-way merge."""
    m = chunking.positions
    run_keys = scratch.appender(f"o{n}-run-keys.i64", np.int64)
    run_counts = scratch.appender(f"o{n}-run-counts", count_dtype)
    run_suffix = scratch.appender(f"o{n}-run-suffix", suffix_dtype)
    inverse_out = scratch.appender(f"o{n}-inverse.i32", np.int32) if keep_positions else None
    offsets = [0]
    carry = -1  # the order n-1 index at the position before the run
    for j, (_, words) in enumerate(stream.chunks(m)):
        w = words.astype(np.int64)
        prev = previous(j)
        context = np.concatenate(([carry], prev[:-1]))
        carry = int(prev[-1])
        ok = (context >= 0) & (w != BOS)
        keys, inverse, counts = unique(context[ok] * vocab_size + w[ok])
        suffix = np.empty(keys.size, dtype=np.int64)
        suffix[inverse] = prev[ok]  # the (n-1)-gram ending at the same position
        run_keys.append(keys)
        run_counts.append(counts)
        run_suffix.append(suffix)
        offsets.append(offsets[-1] + keys.size)
        if inverse_out is not None:
            full = np.full(w.size, -1, dtype=np.int32)
            full[ok] = inverse
            inverse_out.append(full)
    keys_a, counts_a, suffix_a = run_keys.close(), run_counts.close(), run_suffix.close()
    table, ranks = merge_runs(n, keys_a, counts_a, suffix_a, offsets, chunking, scratch)
    runs = None
    if inverse_out is not None:
        runs = Runs(inverse_out.close(), ranks, offsets, m)
    elif ranks is not None:
        ranks.delete()
    return table, runs


def merge_runs(
    n: int,
    keys: DiskArray,
    counts: DiskArray,
    suffix: DiskArray,
    offsets: list[int],
    chunking: Chunking,
    scratch: Scratch,
) -> tuple[Table, DiskArray | None]:
    """Merge sorted runs of distinct keys (with counts and suffix) into one sorted table;
    also each run key's index in it. One round holds ``chunking.merge_items`` keys: from
    each run, the keys up to the smallest last key of the runs' next blocks."""
    num_runs = len(offsets) - 1
    if num_runs <= 1:  # already one sorted table
        return Table(keys, counts, suffix, bos=0), None
    out_keys = scratch.appender(f"o{n}-keys.i64", np.int64)
    out_counts = scratch.appender(f"o{n}-counts", counts.dtype)
    out_suffix = scratch.appender(f"o{n}-suffix", suffix.dtype)
    ranks = _zeros(scratch.path(f"o{n}-ranks"), _index_dtype(keys.size), keys.size)
    pos, end = list(offsets[:-1]), offsets[1:]
    per_run = max(1, chunking.merge_items // num_runs)
    done = 0  # table entries written
    while active := [j for j in range(num_runs) if pos[j] < end[j]]:
        blocks = [keys.read(pos[j], min(pos[j] + per_run, end[j])) for j in active]
        open_lasts = [
            b[-1] for j, b in zip(active, blocks, strict=True) if pos[j] + b.size < end[j]
        ]
        cut = min(open_lasts) if open_lasts else None
        take = [b.size if cut is None else int(np.searchsorted(b, cut, "right")) for b in blocks]
        merged = np.concatenate([b[:t] for b, t in zip(blocks, take, strict=True)])
        run = np.repeat(np.arange(len(active)), take)
        rank, distinct = _merge_ranks(merged, run)
        piece_counts = np.concatenate(
            [counts.read(pos[j], pos[j] + t) for j, t in zip(active, take, strict=True)]
        )
        piece_suffix = np.concatenate(
            [suffix.read(pos[j], pos[j] + t) for j, t in zip(active, take, strict=True)]
        )
        total = np.bincount(rank, weights=piece_counts, minlength=distinct.size)  # exact integers
        table_suffix = np.empty(distinct.size, dtype=suffix.dtype)
        table_suffix[rank] = piece_suffix
        out_keys.append(distinct)
        out_counts.append(total.astype(counts.dtype))
        out_suffix.append(table_suffix)
        at = 0
        for j, t in zip(active, take, strict=True):
            ranks.write(pos[j], rank[at : at + t] + done)
            pos[j] += t
            at += t
        done += distinct.size
    table = Table(out_keys.close(), out_counts.close(), out_suffix.close(), bos=0)
    scratch.measure()  # the most this order holds on disk: its runs and its table
    for array in (keys, counts, suffix):
        array.delete()
    return table, ranks


def _merge_ranks(keys: np.ndarray, run: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For sorted pieces of distinct keys laid end to end (``run``: each key's piece, in
    order): each key's index among the distinct keys, and the distinct keys, sorted."""
    bits = int(run[-1]).bit_length()
    packable = int(keys.max()) < 1 << (63 - bits)
    if packable:  # (key, piece) packed in one int64: one plain sort
        packed = np.sort((keys << bits) | run)
        ordered = packed >> bits
    else:
        order = np.argsort(keys)
        ordered = keys[order]
    new = np.empty(keys.size, dtype=bool)
    new[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
    sorted_rank = np.cumsum(new) - 1
    if packable:
        # Within a piece keys increase, so a stable sort of the sorted keys by piece gives
        # back the pieces laid end to end (a radix sort for small piece numbers).
        piece = packed & ((1 << bits) - 1)
        back = np.argsort(piece.astype(np.uint16 if bits <= 16 else np.int64), kind="stable")
        rank = sorted_rank[back]
    else:
        rank = np.empty(keys.size, dtype=np.int64)
        rank[order] = sorted_rank
    return rank, ordered[new]


def _count_below(keys: DiskArray, limit: int, step: int) -> int:
    """How many of the sorted keys are below ``limit``."""
    below = 0
    for _, chunk in keys.chunks(step):
        found = int(np.searchsorted(chunk, limit))
        below += found
        if found < chunk.size:
            break
    return below


def count_all(corpus: Corpus, order: int, chunking: Chunking, scratch: Scratch) -> list[Table]:
    """The tables of orders 1..N (``lm._count``'s content, on disk)."""
    stream, vocab_size = corpus.stream, len(corpus.vocab)
    count_dtype = _index_dtype(stream.size)
    unigram = np.zeros(vocab_size, dtype=np.int64)
    for _, words in stream.chunks(chunking.step):
        unigram += np.bincount(words[words != BOS], minlength=vocab_size)
    keys = scratch.appender("o1-keys.i64", np.int64)
    for start in range(0, vocab_size, chunking.step):
        keys.append(np.arange(start, min(start + chunking.step, vocab_size)))
    counts = scratch.appender("o1-counts", count_dtype)
    counts.append(unigram)
    tracked_pos = last_sorted_position(stream, order, chunking.positions)
    tracked = int(stream.read(tracked_pos, tracked_pos + 1)[0])
    tables = [Table(keys.close(), counts.close(), None, bos=0, tracked=tracked)]
    m = chunking.positions

    def previous(j: int) -> np.ndarray:  # order 1: the n-gram index is the word id
        return stream.read(j * m, (j + 1) * m).astype(np.int64)

    before: Runs | None = None
    for n in range(2, order + 1):
        table, runs = count_order(
            n,
            vocab_size,
            stream,
            previous,
            chunking,
            scratch,
            keep_positions=n < order,
            count_dtype=count_dtype,
            suffix_dtype=_index_dtype(tables[-1].size),
        )
        scratch.measure()
        if before is not None:
            before.delete()
        # n-grams beginning with <s> sort first: their prefix does (bigrams: prefix id 1).
        table.bos = _count_below(table.keys, (2 if n == 2 else tables[-1].bos) * vocab_size, m)
        if runs is not None:
            table.tracked = runs.at(tracked_pos)
            previous, before = runs.indexes, runs
        tables.append(table)
    return tables


# -- estimation: passes over the sorted tables -----------------------------------------------
def _parents(n: int, keys: np.ndarray, vocab_size: int) -> np.ndarray:
    return keys // vocab_size if n > 1 else np.zeros(keys.size, dtype=np.int64)


def per_context(
    n: int,
    table: Table,
    values: DiskArray,
    columns: Callable[[np.ndarray], list[np.ndarray]],
    vocab_size: int,
    step: int,
) -> Iterator[tuple[np.ndarray, list[np.ndarray]]]:
    """Per context (order n-1 n-gram) that has continuations, in order: its index and the
    int64 sums over its continuations of ``columns(values)`` (``values``: one per table
    entry). A context's continuations are contiguous in the table; they may span pieces."""
    pending: tuple[int, list[int]] | None = None
    pieces = zip(table.keys.chunks(step), values.chunks(step), strict=True)
    for (_, keys), (_, piece) in pieces:
        parent = _parents(n, keys, vocab_size)
        first = np.flatnonzero(np.concatenate(([True], parent[1:] != parent[:-1])))
        ids = parent[first]
        sums = [np.add.reduceat(c.astype(np.int64), first) for c in columns(piece)]
        if pending is not None:
            if pending[0] == ids[0]:
                for s, carried in zip(sums, pending[1], strict=True):
                    s[0] += carried
            else:
                yield np.array([pending[0]]), [np.array([c]) for c in pending[1]]
        if ids.size > 1:
            yield ids[:-1], [s[:-1] for s in sums]
        pending = int(ids[-1]), [int(s[-1]) for s in sums]
    if pending is not None:
        yield np.array([pending[0]]), [np.array([c]) for c in pending[1]]


def _kn_columns(a: np.ndarray) -> list[np.ndarray]:
    """What Kneser-Ney sums per context: adjusted counts, and how many are 1, 2, 3+."""
    a = a.astype(np.int64)
    return [a, *L.kn_buckets(a)]


def context_of_entries(n: int, table: Table, vocab_size: int, step: int) -> Iterator[np.ndarray]:
    """Per piece of the table: each entry's context as numbered by ``per_context`` (0, 1, ..
    over the contexts that have continuations)."""
    last_parent, last = -1, -1
    for _, keys in table.keys.chunks(step):
        parent = _parents(n, keys, vocab_size)
        new = np.concatenate(([parent[0] != last_parent], parent[1:] != parent[:-1]))
        index = last + np.cumsum(new)
        last_parent, last = int(parent[-1]), int(index[-1])
        yield index


class DenseWriter:
    """Writes a dense array (one value per context) from sparse (sorted ids, values),
    ``fill`` elsewhere, in pieces of at most ``step`` entries."""

    def __init__(self, out: Appender, fill: float, step: int) -> None:
        self.out, self.fill, self.step, self.done = out, fill, step, 0

    def _fill_to(self, end: int) -> None:
        while self.done < end:
            piece = min(self.step, end - self.done)
            self.out.append(np.full(piece, self.fill, dtype=self.out.dtype))
            self.done += piece

    def put(self, ids: np.ndarray, values: np.ndarray) -> None:
        i = 0
        while i < ids.size:
            self._fill_to(int(ids[i]))
            j = int(np.searchsorted(ids, self.done + self.step))
            piece = np.full(int(ids[j - 1]) + 1 - self.done, self.fill, dtype=self.out.dtype)
            piece[ids[i:j] - self.done] = values[i:j]
            self.out.append(piece)
            self.done += piece.size
            i = j

    def close(self, size: int) -> DiskArray:
        self._fill_to(size)
        return self.out.close()


def bincount(
    index: DiskArray, size: int, dtype: Any, chunking: Chunking, scratch: Scratch, name: str
) -> DiskArray:
    """``np.bincount(index, minlength=size)`` on disk, as ``dtype``; the counts are held in
    parts of ``chunking.dense_bytes``, each piece of the index sorted (random adds are slow)."""
    out = scratch.appender(name, dtype)
    part = max(1, chunking.dense_bytes // np.dtype(dtype).itemsize)
    for lo in range(0, size, part):
        hi = min(size, lo + part)
        counts = np.zeros(hi - lo, dtype=dtype)
        for _, idx in index.chunks(chunking.step):
            if lo > 0 or hi < size:
                idx = idx[(idx >= lo) & (idx < hi)]
            if idx.size:
                ordered = np.sort(idx)
                first = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
                counts[ordered[first] - lo] += np.diff(first, append=ordered.size).astype(dtype)
        out.append(counts)
    return out.close()


def gather(
    source: DiskArray, index: DiskArray, chunking: Chunking, scratch: Scratch, name: str
) -> DiskArray:
    """``source[index]`` on disk; ``source`` is held in parts of ``chunking.dense_bytes``."""
    part = max(1, chunking.dense_bytes // source.dtype.itemsize)
    if source.size <= part:
        values = source.read()
        out = scratch.appender(name, source.dtype)
        for _, idx in index.chunks(chunking.step):
            out.append(values[idx])
        return out.close()
    result = _zeros(scratch.path(name), source.dtype, index.size)
    for lo in range(0, source.size, part):
        values = source.read(lo, lo + part)
        for start, idx in index.chunks(chunking.step):
            inside = (idx >= lo) & (idx < lo + values.size)
            if inside.any():
                piece = result.read(start, start + idx.size)
                piece[inside] = values[idx[inside] - lo]
                result.write(start, piece)
    return result


@dataclass
class Estimated:
    """Per order, on disk: log10 probabilities (float32) and back-offs (n < N)."""

    logprobs: list[DiskArray]
    backoffs: list[DiskArray]
    discounts: dict[int, tuple[float, float, float]] = field(default_factory=dict)
    fallback_orders: list[int] = field(default_factory=list)


def kneser_ney(
    tables: list[Table],
    vocab_size: int,
    fallback: tuple[float, float, float],
    chunking: Chunking,
    scratch: Scratch,
) -> Estimated:
    """``lm._kneser_ney`` in passes over the tables."""
    order, step = len(tables), chunking.step
    result = Estimated([], [])
    probs_before: DiskArray | None = None
    for n in range(1, order + 1):
        table = tables[n - 1]
        if n == order:
            adjusted = table.counts
        else:  # distinct words to the left: how often the n-gram is an (n+1)-gram's suffix
            suffix = tables[n].suffix
            assert suffix is not None
            # (counts.dtype holds the corpus's positions: any count, raw or adjusted)
            adjusted = bincount(
                suffix, table.size, table.counts.dtype, chunking, scratch, f"o{n}-adjusted"
            )
            if n == 1:
                adjusted.write(UNK, np.zeros(2, dtype=adjusted.dtype))  # <unk> and <s>
            for start in range(0, table.bos, step):  # begin with <s>: the raw count
                adjusted.write(start, table.counts.read(start, min(start + step, table.bos)))
        hist = np.zeros(5, dtype=np.int64)
        tracked = table.tracked if n < order else -1
        for start, a in adjusted.chunks(step):
            local = tracked - start if start <= tracked < start + a.size else -1
            hist += L._count_of_counts(
                a.astype(np.int64), table.counts.read(start, start + a.size), local
            )
        result.discounts[n], used = L._kn_discounts(hist, fallback)
        if used:
            result.fallback_orders.append(n)
        factors = L.kn_table(result.discounts[n])

        totals = scratch.appender(f"o{n}-context-total.f32", np.float32)
        gammas = scratch.appender(f"o{n}-context-gamma.f32", np.float32)
        backoff = DenseWriter(scratch.appender(f"o{n - 1}-backoff.f32", np.float32), 0.0, step)
        for ids, sums in per_context(n, table, adjusted, _kn_columns, vocab_size, step):
            total, gamma = L.kn_context(sums, factors)
            totals.append(total)
            gammas.append(gamma)
            if n > 1:
                backoff.put(ids, L.kn_backoff(gamma, total > 0))
        total_a, gamma_a = totals.close(), gammas.close()
        if n > 1:
            result.backoffs.append(backoff.close(tables[n - 2].size))
        else:
            backoff.close(0).delete()
        lower: DiskArray | None = None
        if probs_before is not None:
            assert table.suffix is not None
            lower = gather(probs_before, table.suffix, chunking, scratch, f"o{n}-lower.f32")
            probs_before.delete()
        probs = scratch.appender(f"o{n}-probs.f32", np.float32)
        logprobs = scratch.appender(f"o{n}-logprob.f32", np.float32)
        uniform = L.kn_uniform(vocab_size)
        contexts = context_of_entries(n, table, vocab_size, step)
        for (start, a), ctx in zip(adjusted.chunks(step), contexts, strict=True):
            lo, hi = int(ctx[0]), int(ctx[-1]) + 1
            below = uniform if lower is None else lower.read(start, start + a.size)
            p = L.kn_probs(
                a.astype(np.int64),
                factors,
                total_a.read(lo, hi)[ctx - lo],
                gamma_a.read(lo, hi)[ctx - lo],
                below,
            )
            if n == 1 and start <= BOS < start + p.size:
                p[BOS - start] = 1.0
            probs.append(p)
            logprobs.append(L.kn_logprob(p))
        for array in (total_a, gamma_a, lower):
            if array is not None:
                array.delete()
        if adjusted is not table.counts:
            adjusted.delete()
        probs_before = probs.close()
        result.logprobs.append(logprobs.close())
    if probs_before is not None:
        probs_before.delete()
    return result


def _one(counts: np.ndarray) -> list[np.ndarray]:
    return [counts]


def count_based(
    tables: list[Table],
    vocab_size: int,
    smoothing: str,
    k: float,
    alpha: float,
    chunking: Chunking,
    scratch: Scratch,
) -> Estimated:
    """``lm._add_k`` and ``lm._stupid_backoff`` in passes over the tables."""
    order, step = len(tables), chunking.step
    kv = L.addk_kv(k, vocab_size)
    num_tokens = int(sum(int(c.sum()) for _, c in tables[0].counts.chunks(step)))
    result = Estimated([], [])
    probs_before: DiskArray | None = None
    for n in range(1, order + 1):
        table = tables[n - 1]
        if n > 1:  # the back-offs of order n-1: from its contexts' totals
            fill = 0.0 if smoothing == "add-k" else math.log10(alpha)
            backoff = DenseWriter(scratch.appender(f"o{n - 1}-backoff.f32", np.float32), fill, step)
            totals = scratch.appender(f"o{n}-context-total.i64", np.int64)
            for ids, (total,) in per_context(n, table, table.counts, _one, vocab_size, step):
                totals.append(total)
                if smoothing == "add-k":
                    backoff.put(ids, L.addk_backoff(total.astype(np.float64), kv))
            total_a = totals.close()
            result.backoffs.append(backoff.close(tables[n - 2].size))
        lower: DiskArray | None = None
        if smoothing == "add-k" and probs_before is not None:
            assert table.suffix is not None
            lower = gather(probs_before, table.suffix, chunking, scratch, f"o{n}-lower.f64")
            probs_before.delete()
        probs = scratch.appender(f"o{n}-probs.f64", np.float64) if smoothing == "add-k" else None
        logprobs = scratch.appender(f"o{n}-logprob.f32", np.float32)
        contexts = context_of_entries(n, table, vocab_size, step)
        for (start, counts), ctx in zip(table.counts.chunks(step), contexts, strict=True):
            counts = counts.astype(np.int64)
            if n == 1:
                if smoothing == "add-k":
                    p = L.addk_unigram(counts, num_tokens, k, kv)
                else:
                    p = counts / float(num_tokens)
            else:
                lo, hi = int(ctx[0]), int(ctx[-1]) + 1
                total = total_a.read(lo, hi)[ctx - lo].astype(np.float64)
                if lower is not None:
                    p = L.addk_probs(counts, total, lower.read(start, start + counts.size), kv)
                else:
                    p = counts / total
            if probs is not None:
                probs.append(p)
            if n == 1 and start <= BOS < start + p.size:
                p[BOS - start] = 1.0  # after the lower orders saw it, as lm.py does
            logprobs.append(L._log10(p))
        if n > 1:
            total_a.delete()
        if lower is not None:
            lower.delete()
        probs_before = probs.close() if probs is not None else None
        result.logprobs.append(logprobs.close())
    if probs_before is not None:
        probs_before.delete()
    return result


# -- the model file --------------------------------------------------------------------------
SAFETENSORS_DTYPES: dict[np.dtype[Any], str] = {
    np.dtype(np.int64): "I64",
    np.dtype(np.float32): "F32",
}
NUMPY_DTYPES = {name: dtype for dtype, name in SAFETENSORS_DTYPES.items()}


def write_safetensors(
    path: Path, arrays: dict[str, DiskArray], metadata: dict[str, str], scratch: Scratch
) -> dict[str, np.ndarray]:
    """Move the arrays into one safetensors file (each array's file is deleted once
    copied: the disk holds the model about once); return them memory-mapped from it
    (read-only): what is not touched is never read."""
    header: dict[str, Any] = {"__metadata__": metadata}
    offset = 0
    for name, array in arrays.items():
        nbytes = array.size * array.dtype.itemsize
        dtype = SAFETENSORS_DTYPES[array.dtype]
        header[name] = {
            "dtype": dtype,
            "shape": [array.size],
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for array in arrays.values():
            with open(array.path, "rb") as src:
                shutil.copyfileobj(src, f, 1 << 24)
            f.flush()
            scratch.measure()
            array.delete()
        os.fsync(f.fileno())
    return _map(path, 8 + len(text), header)


def _map(path: Path, start: int, header: dict[str, Any]) -> dict[str, np.ndarray]:
    mapped = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = NUMPY_DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        size = (end - begin) // dtype.itemsize
        if size != math.prod(info["shape"]) or len(info["shape"]) != 1:
            raise ValueError(f"tensor {name}: shape {info['shape']} does not fit its bytes")
        mapped[name] = (
            np.memmap(path, dtype, "r", offset=start + begin, shape=(size,))
            if size
            else np.zeros(0, dtype)
        )
    return mapped


def map_safetensors(path: Path) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """The metadata and 1-d int64/float32 arrays of a safetensors file, memory-mapped:
    pages are read when used. The file must have passed safetensors' own checks."""
    with open(path, "rb") as f:
        length = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(length))
    return header.get("__metadata__", {}), _map(path, 8 + length, header)


# -- the whole estimation --------------------------------------------------------------------
@dataclass
class Result:
    """A model estimated from files; its tables map ``tensor_file`` (in ``folder``)."""

    lm: NGramLM
    tensor_file: Path
    sentences: int
    tokens: int
    seconds: dict[str, float]  # per stage: tokenize, count, estimate, write
    spilled_bytes: int  # the most the scratch folder held


def estimate_files(
    paths: Sequence[Path],
    tokens: str,
    folder: Path,
    metadata: dict[str, str],
    order: int = 3,
    smoothing: str = "kneser-ney",
    k: float = 1.0,
    alpha: float = 0.4,
    discount_fallback: tuple[float, float, float] = (0.5, 1.0, 1.5),
    memory: int = 2 * 2**30,
    chunking: Chunking | None = None,
    log: Callable[[str], None] | None = None,
    text_field: str | None = None,
) -> Result:
    """``NGramLM.estimate`` of the files' sentences (lines, tokenized with ``tokens``),
    equal to the bit, working in ``folder`` within about ``memory`` bytes; the model is
    written to ``folder``/model.safetensors (tagged with ``metadata``) and mapped from it.
    ``log`` gets the warnings about the data (absurdly long lines).

    Raises DataError for unreadable data or too few tokens, ValueError for bad arguments.
    """
    L._check_args(order, smoothing, k, alpha, discount_fallback)
    chunking = chunking or Chunking.for_memory(memory)
    scratch = Scratch(folder)
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = round(now - clock, 3)
        clock = now

    corpus = tokenize(paths, tokens, chunking, scratch, log, text_field)
    if corpus.words < order:
        raise DataError(
            f"the training text has {corpus.words} tokens, fewer than the model order "
            f"{order}; give more text or lower model.order"
        )
    lap("tokenize")
    tables = count_all(corpus, order, chunking, scratch)
    corpus.stream.delete()
    lap("count")
    vocab_size = len(corpus.vocab)
    if smoothing == "kneser-ney":
        d1, d2, d3 = (float(d) for d in discount_fallback)
        estimated = kneser_ney(tables, vocab_size, (d1, d2, d3), chunking, scratch)
    else:
        estimated = count_based(tables, vocab_size, smoothing, k, alpha, chunking, scratch)
    scratch.measure()
    lap("estimate")
    for table in tables:  # what the model file needs: keys, log-probs, back-offs
        table.counts.delete()
        if table.suffix is not None:
            table.suffix.delete()
    arrays: dict[str, DiskArray] = {}
    for n in range(1, order + 1):
        arrays[f"ngram.{n}.keys"] = tables[n - 1].keys
        arrays[f"ngram.{n}.logprob"] = estimated.logprobs[n - 1]
        if n < order:
            arrays[f"ngram.{n}.backoff"] = estimated.backoffs[n - 1]
    tensor_file = folder / "model.safetensors"
    mapped = write_safetensors(tensor_file, arrays, metadata, scratch)
    lm = NGramLM(
        corpus.vocab,
        [mapped[f"ngram.{n}.keys"] for n in range(1, order + 1)],
        [mapped[f"ngram.{n}.logprob"] for n in range(1, order + 1)],
        [mapped[f"ngram.{n}.backoff"] for n in range(1, order)],
        smoothing,
        normalized=smoothing != "stupid-backoff",
        discounts=estimated.discounts,
        discount_fallback_orders=estimated.fallback_orders,
        unseen_backoff=math.log10(alpha) if smoothing == "stupid-backoff" else 0.0,
        params={"k": float(k)}
        if smoothing == "add-k"
        else ({"alpha": float(alpha)} if smoothing == "stupid-backoff" else {}),
        check=False,  # built here, sorted by construction; checking would read it all
    )
    lap("write")
    return Result(lm, tensor_file, corpus.sentences, corpus.tokens, seconds, scratch.peak)
