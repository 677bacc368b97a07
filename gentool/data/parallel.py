"""Reading parallel corpora (translation): two aligned files, or one TSV of pairs.

Line ``i`` of the source file translates line ``i`` of the target file. Misalignment is
the failure that matters here, because it trains a model silently on nonsense: different
line counts are an error that names both counts; a pair with an empty side is dropped and
counted, never shifted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gentool.data import sources
from gentool.data.text import read_lines
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
    src, tgt = _side(source, field), _side(target, field)
    if len(src) != len(tgt):
        raise DataError(
            f"parallel files are not aligned: '{source}' has {len(src)} lines and "
            f"'{target}' has {len(tgt)}; give files with one translation per line, in order"
        )
    return _clean(zip(src, tgt, strict=True), f"'{source}' / '{target}'")


def _side(path: str | Path, field: str | None) -> list[str]:
    if sources.is_table(path, sources.Fields(field)):
        return [row for rows in sources.text_rows(path, field) for row in rows]
    return read_lines(path)


def read_pairs(path: str | Path, fields: sources.Fields = sources.NO_FIELDS) -> ParallelCorpus:
    """Sentence pairs from one source: a table or dataset with source and target fields
    (``gentool.data.sources``), else a ``source<TAB>target`` file (``read_tsv``)."""
    if sources.is_table(path, fields):
        return _clean(sources.table_pairs(path, fields), f"'{path}'")
    return read_tsv(path)


def read_tsv(path: str | Path) -> ParallelCorpus:
    """Read ``source<TAB>target`` lines; a line without exactly one tab is an error."""
    rows = []
    for number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            rows.append(("", ""))
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise DataError(
                f"'{path}' line {number} has {len(parts) - 1} tabs, not 1; a parallel TSV "
                "holds 'source<TAB>target' on each line"
            )
        rows.append((parts[0], parts[1]))
    return _clean(rows, f"'{path}'")


def _clean(rows: object, name: str) -> ParallelCorpus:
    pairs, empty = [], 0
    for s, t in rows:  # type: ignore[attr-defined]
        s, t = s.strip(), t.strip()
        if s and t:
            pairs.append((s, t))
        else:
            empty += 1
    if not pairs:
        raise DataError(f"{name} holds no sentence pair with text on both sides")
    return ParallelCorpus(pairs, {"empty": empty} if empty else {})
