"""Data sources beyond plain text: tables (JSON Lines, Parquet, CSV/TSV), a folder written by
``datasets``' ``save_to_disk``, and a Hugging Face dataset ``hf:NAME[:CONFIG][:SPLIT]``.

All of them are read with ``datasets`` into Arrow tables, which are memory-mapped from its
cache, so a large table is not held in Python objects. A text family reads one field of
each row (``data.text_field``, default ``text``); a translator reads two
(``data.source_field`` and ``data.target_field``). A field may name a nested value with dots
(``translation.de``). Rows are checked before use: a missing field, a value that is not
text, or an empty one is a DataError naming the source, the row (from 1, a CSV's header not
counted) and the field.

A ``.tsv`` file stays what it always was, ``source<TAB>target`` lines without a header,
unless a field is set: then it is a table with a header like a CSV.

``datasets`` is imported only when such a source is read (it takes a second to import).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gentool.errors import DataError

HF_PREFIX = "hf:"
# (suffix, the datasets builder that reads it, its options)
_TABLES: dict[str, tuple[str, dict[str, Any]]] = {
    ".jsonl": ("json", {}),
    ".json": ("json", {}),
    ".parquet": ("parquet", {}),
    ".csv": ("csv", {}),
    ".tsv": ("csv", {"sep": "\t"}),
}
DEFAULT_TEXT_FIELD = "text"
ROWS_PER_BATCH = 65_536  # rows converted to Python strings at a time


@dataclass(frozen=True)
class Fields:
    """Which fields of a table's rows a family reads (the recipe's ``[data]`` keys); None:
    not set (``text``; a ``.tsv`` is then headerless parallel data)."""

    text: str | None = None
    source: str | None = None
    target: str | None = None

    @property
    def parallel(self) -> bool:
        """Rows are sentence pairs (source and target fields were named)."""
        return self.source is not None or self.target is not None

    @property
    def any(self) -> bool:
        return self.text is not None or self.parallel


def is_hf(source: str | Path) -> bool:
    return str(source).startswith(HF_PREFIX)


def _suffix(path: Path) -> str:
    """The table suffix of ``path`` (``.jsonl`` for ``x.jsonl.gz``), or ''."""
    name = path.name.removesuffix(".gz")
    return next((s for s in _TABLES if name.endswith(s)), "")


def is_saved_dataset(path: Path) -> bool:
    """A folder written by ``Dataset.save_to_disk`` (or a DatasetDict's)."""
    return path.is_dir() and any(
        (path / name).is_file() for name in ("state.json", "dataset_dict.json")
    )


NO_FIELDS = Fields()


def is_table(source: str | Path, fields: Fields = NO_FIELDS) -> bool:
    """Whether ``source`` is read with ``datasets`` rather than as plain text (or, for a
    ``.tsv`` without fields set, as headerless parallel data)."""
    if is_hf(source):
        return True
    path = Path(source)
    suffix = _suffix(path)
    if suffix == ".tsv":
        return fields.any
    return bool(suffix) or is_saved_dataset(path)


def exists(source: str | Path) -> bool:
    """Whether the source is there to read (an ``hf:`` id is looked up when read)."""
    return is_hf(source) or Path(source).exists()


def parse_hf(source: str | Path) -> tuple[str, str | None, str]:
    """``hf:NAME[:CONFIG][:SPLIT]`` as (name, config or None, split; ``train`` by default)."""
    parts = str(source)[len(HF_PREFIX) :].split(":")
    if not parts[0] or len(parts) > 3:
        raise DataError(
            f"'{source}' is not a dataset id; write hf:NAME, hf:NAME:CONFIG or "
            "hf:NAME:CONFIG:SPLIT (hf:NAME::SPLIT for the default config)"
        )
    name = parts[0]
    config = parts[1] if len(parts) > 1 and parts[1] else None
    split = parts[2] if len(parts) > 2 and parts[2] else "train"
    return name, config, split


def _datasets() -> Any:
    """``datasets``, quiet: its progress bars and cache notes would bury gentool's output."""
    try:
        import datasets
    except ImportError as err:  # (a core install without the neural extra)
        raise DataError(
            "reading tables and hf: datasets needs the 'datasets' package; install it "
            "with pip install 'gentool[neural]' (or pip install datasets)"
        ) from err
    datasets.utils.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    return datasets


def load(source: str | Path) -> Any:
    """The source as a ``datasets.Dataset`` (memory-mapped Arrow), or DataError."""
    if is_hf(source):
        return _load_hf(str(source))
    path = Path(source)
    if not path.exists():
        raise DataError(f"data file '{path}' does not exist; check the path")
    ds = _datasets()
    if path.is_dir():
        if not is_saved_dataset(path):
            raise DataError(
                f"data path '{path}' is a directory, not a dataset saved with save_to_disk "
                "(no state.json); give a file, or the folder save_to_disk wrote"
            )
        try:
            loaded = ds.load_from_disk(str(path))
        except Exception as err:  # (its errors vary: json, Arrow, missing files)
            raise DataError(f"dataset folder '{path}' cannot be read: {err}") from err
        if isinstance(loaded, ds.DatasetDict):
            if "train" not in loaded:
                raise DataError(
                    f"dataset folder '{path}' has the splits {', '.join(loaded)} and no "
                    f"'train'; give one split's folder, e.g. '{path / next(iter(loaded))}'"
                )
            loaded = loaded["train"]
        return loaded
    from gentool.data.files import check_regular

    check_regular(path)
    if path.stat().st_size == 0:
        raise DataError(f"data file '{path}' is empty; give a file with some rows")
    builder, options = _TABLES[_suffix(path)]
    try:
        return ds.load_dataset(
            builder, data_files=str(path.resolve()), split="train", cache_dir=_cache(), **options
        )
    except Exception as err:  # (pyarrow's and pandas' parse errors have many classes)
        message = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise DataError(
            f"data file '{path}' cannot be read as {_suffix(path)[1:].upper()}: {message}"
        ) from err


def _cache() -> str | None:
    """datasets' cache folder, read when used (HF_DATASETS_CACHE), not when imported."""
    return os.environ.get("HF_DATASETS_CACHE") or None


def _load_hf(source: str) -> Any:
    name, config, split = parse_hf(source)
    ds = _datasets()
    try:
        return ds.load_dataset(name, config, split=split, cache_dir=_cache())
    except ValueError as err:
        if "split" in str(err).lower():  # an unknown split of a dataset that is there
            raise DataError(
                f"dataset '{source}': {str(err).rstrip('.')}; name a split as hf:NAME:CONFIG:SPLIT"
            ) from err
        raise _not_found(source, name, err) from err
    except Exception as err:  # offline, not on the Hub, no such config: all mean "get it"
        raise _not_found(source, name, err) from err


def _not_found(source: str, name: str, err: BaseException) -> DataError:
    flags = ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")
    offline = any(os.environ.get(v, "") not in ("", "0") for v in flags)
    why = "offline (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE)" if offline else str(err).splitlines()[0]
    return DataError(
        f"dataset '{source}' is not in the datasets cache and cannot be downloaded ({why}); "
        f'fetch it once where the network is reachable: python -c "import datasets; '
        f"datasets.load_dataset('{name}')\", or save it with save_to_disk and give that folder"
    )


def fingerprint(source: str | Path) -> dict[str, Any]:
    """What the run records of an ``hf:`` source: the dataset's own fingerprint and the
    revision it was cached at; ``sha256`` digests them, so --resume compares it as a file's."""
    name, config, split = parse_hf(source)
    data = load(source)
    cached = [Path(f["filename"]) for f in data.cache_files]
    revision = cached[0].parent.name if cached else None  # (…/CONFIG/VERSION/REVISION/file)
    record = {
        "path": str(source),
        "dataset": name,
        "config": data.info.config_name or config,
        "split": split,
        "rows": len(data),
        "fingerprint": data._fingerprint,
        "revision": revision,
    }
    digest = hashlib.sha256(f"{name}\0{record['config']}\0{split}\0{data._fingerprint}".encode())
    return {**record, "sha256": digest.hexdigest()}


# -- reading rows ------------------------------------------------------------------------------
def _column(data: Any, source: str | Path, field: str) -> Any:
    """The Arrow column ``field`` (dots: nested), checked: every row holds non-empty text."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    table = data.data.table if hasattr(data.data, "table") else data.data
    names = table.column_names
    if field not in names and "." in field:
        table = table.flatten()  # struct columns become "outer.inner"
    where = f"'{source}'"
    if field not in table.column_names:
        raise DataError(
            f"{where} row 1 has no field '{field}' (its fields: {', '.join(names)}); name "
            f"the field to read with --set data.text_field=NAME (data.source_field and "
            "data.target_field for sentence pairs)"
        )
    column = table.column(field)
    if len(column) == 0:
        raise DataError(f"{where} has no rows; give a table with some")
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        if pa.types.is_null(column.type):
            raise DataError(f"{where} row 1 has no value for field '{field}'; every row needs text")
        raise DataError(
            f"{where} row 1 field '{field}' is {column.type}, not text; name a text field "
            "with --set data.text_field=NAME"
        )
    missing = np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))
    if len(missing):
        raise DataError(
            f"{where} row {missing[0] + 1} has no value for field '{field}'; every row needs "
            "text: fill it or drop the row"
        )
    empty = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(column)), 0)
    blank = np.flatnonzero(empty.to_numpy(zero_copy_only=False))
    if len(blank):
        raise DataError(
            f"{where} row {blank[0] + 1} field '{field}' is empty; every row needs text: "
            "fill it or drop the row"
        )
    return column


def _lines(column: Any) -> Iterator[list[str]]:
    for chunk in column.chunks:
        for start in range(0, len(chunk), ROWS_PER_BATCH):
            yield chunk.slice(start, ROWS_PER_BATCH).to_pylist()


def text_rows(source: str | Path, field: str | None = None) -> Iterator[list[str]]:
    """The rows' text (``field``, default ``text``), checked, in batches."""
    column = _column(load(source), source, field or DEFAULT_TEXT_FIELD)
    yield from _lines(column)


def table_text(source: str | Path, field: str | None = None) -> str:
    """The rows' text as one text, a row per line (what a text family reads of a file)."""
    return "".join(row + "\n" for rows in text_rows(source, field) for row in rows)


def table_pairs(source: str | Path, fields: Fields) -> Iterator[tuple[str, str]]:
    """The (source, target) pairs of the rows: ``data.source_field`` and
    ``data.target_field`` (default ``source`` and ``target``), checked, then streamed."""
    from itertools import chain

    data = load(source)
    sides = [
        chain.from_iterable(_lines(_column(data, source, name or default)))
        for name, default in ((fields.source, "source"), (fields.target, "target"))
    ]
    return zip(sides[0], sides[1], strict=True)
