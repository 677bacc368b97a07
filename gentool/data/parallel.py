"""Reading parallel corpora (translation): two aligned files, or one TSV of pairs.

Line ``i`` of the source file translates line ``i`` of the target file. Misalignment is
the failure that matters here, because it trains a model silently on nonsense: different
line counts are an error that names both counts; a pair with an empty side is dropped and
counted, never shifted.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path

from gentool.data import sources
from gentool.data.text import stream_lines
from gentool.errors import DataError


@dataclass
class ParallelCorpus:
    """Aligned (source, target) sentence pairs, and what was dropped while reading them."""

    pairs: list[tuple[str, str]]
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> pairs dropped

    @property
    def sources(self) -> list[str]:
        return [s for s, _ in self.pairs]

    @property
    def targets(self) -> list[str]:
        return [t for _, t in self.pairs]


def read_parallel(
    source: str | Path, target: str | Path, field: str | None = None
) -> ParallelCorpus:
    """Read two aligned files (``.gz`` accepted); pairs with an empty side are dropped. A
    side that is a table or dataset (``gentool.data.sources``) gives its rows' ``field``."""
    return _clean(parallel_rows(source, target, field), f"'{source}' / '{target}'")


def parallel_rows(
    source: str | Path, target: str | Path, field: str | None = None
) -> Iterator[tuple[str, str]]:
    """The (source line, target line) rows of two aligned files, as read (not stripped),
    streamed: a corpus larger than memory is never held. Misaligned files are a DataError
    naming both counts once either ends (each is read to its end to count it)."""
    counts = [0, 0]
    for s, t in zip_longest(_side(source, field), _side(target, field)):
        counts[0] += s is not None
        counts[1] += t is not None
        if s is not None and t is not None:
            yield s, t
    if counts[0] != counts[1]:
        raise DataError(
            f"parallel files are not aligned: '{source}' has {counts[0]} lines and "
            f"'{target}' has {counts[1]}; give files with one translation per line, in order"
        )


def _side(path: str | Path, field: str | None) -> Iterator[str]:
    if sources.is_table(path, sources.Fields(field)):
        for rows in sources.text_rows(path, field):
            yield from rows
    else:
        yield from stream_lines(path)


def read_pairs(path: str | Path, fields: sources.Fields = sources.NO_FIELDS) -> ParallelCorpus:
    """Sentence pairs from one source: a table or dataset with source and target fields
    (``gentool.data.sources``), else a ``source<TAB>target`` file (``read_tsv``)."""
    return _clean(pair_rows(path, fields), f"'{path}'")


def pair_rows(
    path: str | Path, fields: sources.Fields = sources.NO_FIELDS
) -> Iterator[tuple[str, str]]:
    """``read_pairs``'s rows as read (not stripped), streamed."""
    if sources.is_table(path, fields):
        return sources.table_pairs(path, fields)
    return tsv_rows(path)


def read_tsv(path: str | Path) -> ParallelCorpus:
    """Read ``source<TAB>target`` lines; a line without exactly one tab is an error."""
    return _clean(tsv_rows(path), f"'{path}'")


def tsv_rows(path: str | Path) -> Iterator[tuple[str, str]]:
    """``read_tsv``'s rows, streamed; a blank line is a pair of empty sides."""
    for number, line in enumerate(stream_lines(path), start=1):
        if not line.strip():
            yield "", ""
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise DataError(
                f"'{path}' line {number} has {len(parts) - 1} tabs, not 1; a parallel TSV "
                "holds 'source<TAB>target' on each line"
            )
        yield parts[0], parts[1]


def clean_pair(s: str, t: str) -> tuple[str, str] | None:
    """The pair as trained on (both sides stripped), or None when a side is empty (dropped
    and counted as ``empty``, never shifted)."""
    s, t = s.strip(), t.strip()
    return (s, t) if s and t else None


def _clean(rows: Iterable[tuple[str, str]], name: str) -> ParallelCorpus:
    pairs, empty = [], 0
    for s, t in rows:
        if (pair := clean_pair(s, t)) is not None:
            pairs.append(pair)
        else:
            empty += 1
    if not pairs:
        raise DataError(no_pairs(name))
    return ParallelCorpus(pairs, {"empty": empty} if empty else {})


def no_pairs(name: str) -> str:
    """The error of a source that holds no usable pair."""
    return f"{name} holds no sentence pair with text on both sides"
