"""Token caches: a corpus tokenized once into a memory-mapped file of ids, reused by every
later run on the same data with the same tokenizer.

A language model of one token stream (``gentool.neural.streams``) reads its corpus as
``[<|endoftext|>, *tokenizer.encode(text)]``. Held as Python ints or an int64 tensor that
is 8-40 times the corpus; here it is written to ``KEY.tokens`` (uint16 ids when the
vocabulary fits, else uint32) and read back with ``numpy.memmap``, so training holds only
the windows it reads and its memory does not grow with the corpus.

``KEY`` is a sha256 of the data's fingerprint (the one the run records: a file's sha256,
an ``hf:`` dataset's own fingerprint), the table field read, the tokenizer (its
serialized form) and the format, so changed data or a changed tokenizer never reuse a
stale file. The text is read in pieces (``gentool.data.text.corpus_texts``), cut where
no tokenizer's output changes, and encoded piece by piece: a fast tokenizer encodes each
piece's chunks on all the threads ``--threads`` allows (``tokenizers``' own thread pool),
a char tokenizer maps characters through a table in numpy.

A file is written beside its final name and renamed into place, its metadata
(``KEY.json``: length, dtype and sha256 of the ids, and the file's inode, size and mtime)
last: a run killed while tokenizing leaves no file a later run would use, and a file that
does not match its metadata (truncated; overwritten or replaced, and then not matching its
sha256) is tokenized again.

One process tokenizes a corpus at a time (a lock file beside it); the others, such as
``torchrun``'s ranks, wait and read what it wrote. The cache lives in
``$GENTOOL_CACHE/tokens`` (default ``$XDG_CACHE_HOME/gentool`` or
``~/.cache/gentool``, the Hugging Face / XDG convention); deleting it is always safe.
Learned tokenizers are cached the same way (``tokenizers/KEY.json``), so a second run on
the same data starts without reading it at all.

A translator's sentence pairs (``pair_ids``) are cached the same way (same key, lock,
atomic writes and checks): each side as a token file of the sentences' ids end to end and
one of int64 offsets where each starts, so pair ``i`` is a slice of each (``PairIds``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gentool.errors import GentoolError

if TYPE_CHECKING:
    import numpy as np

ENV = "GENTOOL_CACHE"
FORMAT = 1  # bump when what a token file holds changes
PIECE_CHARS = 1 << 22  # characters encoded at a time (a few MB of text and ids in memory)
_HASH_BLOCK = 1 << 22

#: How many token files (a corpus, or sentence pairs) and tokenizers this process built
#: (not reused): tests read it.
built = {"tokens": 0, "tokenizers": 0}


class CacheError(GentoolError):
    """The cache folder cannot be written."""


def cache_root() -> Path:
    """gentool's cache folder: ``$GENTOOL_CACHE``, else ``$XDG_CACHE_HOME/gentool``, else
    ``~/.cache/gentool``."""
    if path := os.environ.get(ENV, "").strip():
        return Path(path).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "gentool"


def _folder(name: str) -> Path:
    folder = cache_root() / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CacheError(
            f"cache folder '{folder}' cannot be created ({err.strerror}); set {ENV} to a "
            "writable folder"
        ) from err
    return folder


def data_key(paths: Sequence[str | Path], field: str | None) -> str:
    """What identifies the corpus: the runs' fingerprints of its sources (sha256, cached per
    file by ``gentool.runs``) and the field read from tables."""
    from gentool import runs

    digest = hashlib.sha256(f"{field or ''}".encode())
    for path in paths:
        digest.update(b"\0" + runs.fingerprint(Path(path))["sha256"].encode())
    return digest.hexdigest()


def tokenizer_hash(tokenizer: Any) -> str:
    """A sha256 of what decides the ids: a fast tokenizer's serialized form (vocabulary,
    merges, pre-tokenizer, added tokens), else its vocabulary."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        text = backend.to_str()
    else:
        text = type(tokenizer).__name__ + json.dumps(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(text.encode()).hexdigest()


def _key(*parts: object) -> str:
    return hashlib.sha256("\0".join(str(p) for p in (FORMAT, *parts)).encode()).hexdigest()


# -- token files ---------------------------------------------------------------------------
def token_file(
    paths: Sequence[str | Path],
    field: str | None,
    tokenizer: Any,
    bos: int,
    log: Callable[[str], None] = lambda message: None,
    keep: bool = True,
) -> np.ndarray:
    """The corpus ``paths`` (tables: their ``field``) as ``[bos, *ids]``, memory-mapped
    from the cache; tokenized (and cached) first when it is not there. With ``keep``
    false (scoring files, which are rarely scored twice), what is not cached yet is
    tokenized into a temporary file, removed once mapped, so the cache does not fill up."""
    key = _key(data_key(paths, field), tokenizer_hash(tokenizer), bos)
    folder = _folder("tokens")
    data, meta = folder / f"{key}.tokens", folder / f"{key}.json"
    if (ids := _open(data, meta)) is not None:
        log(f"tokens: read from the cache ({len(ids):,} tokens, {data})")
        return ids
    if keep:
        # One process tokenizes; the others (torchrun's ranks, a second run started
        # meanwhile) wait for it, then read what it wrote.
        with _locked(folder / f"{key}.lock"):
            if (ids := _open(data, meta)) is not None:
                log(f"tokens: read from the cache ({len(ids):,} tokens, {data})")
                return ids
            return _build(paths, field, tokenizer, bos, data, meta, log)
    scratch = Path(tempfile.mkdtemp(prefix="gentool-tokens-"))
    try:
        return _build(paths, field, tokenizer, bos, scratch / data.name, scratch / meta.name, log)
    finally:  # (the mapping keeps the ids readable; where it cannot be removed, it stays)
        shutil.rmtree(scratch, ignore_errors=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created; left in place, empty) where the
    system has ``flock``; elsewhere nothing is locked and each process tokenizes."""
    try:
        import fcntl
    except ImportError:  # (Windows)
        yield
        return
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _open(data: Path, meta: Path) -> np.ndarray | None:
    """The cached ids, or None when they are missing or do not match their metadata (a
    partial or damaged file: tokenized again). The sha256 is checked whenever the file is
    not the one written (its inode, size or modification time differ: overwritten, copied),
    not on every start, which would read it all (seconds for a GB corpus)."""
    import numpy as np

    try:
        info = json.loads(meta.read_text())
        dtype = np.dtype(info["dtype"])
        stat = data.stat()
        if stat.st_size != info["count"] * dtype.itemsize or info["count"] < 1:
            return None
        if _identity(data) != info.get("written") and _sha256(data) != info["sha256"]:
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return np.memmap(data, dtype=dtype, mode="r")


def _identity(path: Path) -> list[int]:
    """What changes when a file is written again or replaced: inode, size, mtime (ns)."""
    stat = path.stat()
    return [stat.st_ino, stat.st_size, stat.st_mtime_ns]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _build(
    paths: Sequence[str | Path],
    field: str | None,
    tokenizer: Any,
    bos: int,
    data: Path,
    meta: Path,
    log: Callable[[str], None],
) -> np.ndarray:
    """Tokenize the corpus into ``data`` (and ``meta``); its ids, memory-mapped."""
    import numpy as np

    from gentool.progress import phase

    dtype = id_dtype(tokenizer)
    encode = _encoder(tokenizer, dtype)
    count, chars, shown = 0, 0, 0
    started = time.perf_counter()
    with _Writer(data, meta, dtype) as out:
        with phase(log, "tokenizing", _megabytes(paths), "MB") as advance:
            pieces = pieces_of(paths, field)
            for length, ids in _in_order(encode, pieces, [(0, np.array([bos], dtype=dtype))]):
                out.write(ids)
                count += len(ids)
                chars += length
                advance(chars // 1_000_000 - shown)  # (characters: bytes of ASCII text)
                shown = chars // 1_000_000
        out.finish()
        out.publish()
    built["tokens"] += 1  # (tests count the builds)
    seconds = time.perf_counter() - started
    log(
        f"tokens: {chars / 1e6:,.1f} M characters tokenized into {count:,} {dtype.name} ids "
        f"in {seconds:.2f} s ({chars / 1e6 / max(seconds, 1e-9):,.1f} M characters/s), "
        f"cached in {data}"
    )
    return np.memmap(data, dtype=dtype, mode="r")


def id_dtype(tokenizer: Any) -> np.dtype[Any]:
    """uint16 when every id fits, else uint32."""
    import numpy as np

    return np.dtype(np.uint16 if len(tokenizer) <= 1 << 16 else np.uint32)


class _Writer:
    """One cached array, written beside its final name: ``write`` blocks, ``finish``
    (fsync, rename into place), then ``publish`` its metadata (``extra`` added), which
    makes it readable; leaving the block before ``finish`` removes what was written."""

    def __init__(self, data: Path, meta: Path, dtype: Any, extra: dict[str, Any] | None = None):
        self.data, self.meta, self.dtype = data, meta, dtype
        self.extra = extra if extra is not None else {}
        self.tmp = data.with_name(f"{data.name}.tmp-{os.getpid()}")
        self.digest, self.count = hashlib.sha256(), 0

    def __enter__(self) -> _Writer:
        self.file = self.tmp.open("wb")
        return self

    def write(self, ids: np.ndarray) -> None:
        block = ids.astype(self.dtype, copy=False).tobytes()
        self.file.write(block)
        self.digest.update(block)
        self.count += len(ids)

    def finish(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self.tmp, self.data)

    def publish(self) -> None:
        info = {
            "format": FORMAT,
            "dtype": self.dtype.name,
            "count": self.count,
            "sha256": self.digest.hexdigest(),
            "written": _identity(self.data),
            **self.extra,
        }
        _write_atomic(self.meta, json.dumps(info))

    def __exit__(self, *exc: object) -> None:
        self.file.close()
        with contextlib.suppress(OSError):
            self.tmp.unlink()


def _in_order(
    encode: Callable[[str], np.ndarray], pieces: Iterator[str], first: list[tuple[int, Any]]
) -> Iterator[tuple[int, np.ndarray]]:
    """``first``, then (length, ids) of each piece, in order, encoded on ``--threads``
    threads (default: one per core) with a few pieces ahead at most, so that memory stays
    a few pieces whatever the corpus. numpy's table lookups and a fast tokenizer's batch
    encoding (``tokenizers``' own pool) run without holding the GIL."""
    from gentool import threads

    workers = threads.requested() or os.cpu_count() or 1
    yield from first
    with ThreadPoolExecutor(workers, thread_name_prefix="gentool-tokenize") as pool:
        ahead: deque[tuple[int, Future[np.ndarray]]] = deque()
        for piece in pieces:
            ahead.append((len(piece), pool.submit(encode, piece)))
            if len(ahead) > 2 * workers:
                length, done = ahead.popleft()
                yield length, done.result()
        while ahead:
            length, done = ahead.popleft()
            yield length, done.result()


def _megabytes(paths: Sequence[str | Path]) -> int:
    """The size in MB of the corpus for the progress count; 0 (none shown) when it is not
    known from the files: a table, a dataset, a gzip file."""
    from gentool.data import sources

    total = 0
    for path in paths:
        if sources.is_table(path) or str(path).endswith(".gz") or not Path(path).is_file():
            return 0
        total += Path(path).stat().st_size
    return total // 1_000_000


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _encoder(tokenizer: Any, dtype: Any) -> Callable[[str], np.ndarray]:
    """A function from a piece of text to its ids (``dtype``), as ``encode_text`` gives them."""
    import numpy as np

    from gentool.neural.tokenizers import UNK, encode_text, tokenizer_kind

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or tokenizer_kind(tokenizer) != "char":
        return lambda text: np.asarray(encode_text(tokenizer, text), dtype=dtype)
    # Characters map through a table indexed by code point: many times faster than Python.
    vocab = backend.get_vocab(with_added_tokens=False)
    table = np.full(0x110000, vocab[UNK], dtype=dtype)
    for token, i in vocab.items():
        if len(token) == 1:
            table[ord(token)] = i
    added = [token.content for token in backend.get_added_tokens_decoder().values()]
    starts = {token[0] for token in added if token}

    def encode(text: str) -> np.ndarray:
        # Added tokens are matched whole (encode_text); a first character is found fast.
        if any(c in text for c in starts) and any(token in text for token in added):
            return np.asarray(encode_text(tokenizer, text), dtype=dtype)
        points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        return table[points]

    return encode


# -- learned tokenizers --------------------------------------------------------------------
def cached_tokenizer(key_parts: Sequence[object], learn: Callable[[], Any]) -> Any:
    """The tokenizer ``learn()`` makes, cached under a key of ``key_parts`` (the data's key
    and what is learned): a second run on the same data does not read it again."""
    from tokenizers import Tokenizer

    from gentool.neural.tokenizers import tokenizer_kind, wrap_tokenizer

    path = _folder("tokenizers") / f"{_key(*key_parts)}.json"
    try:
        saved = json.loads(path.read_text())
        return wrap_tokenizer(Tokenizer.from_str(saved["tokenizer"]), saved["kind"])
    except Exception:  # missing or damaged (tokenizers raises plain Exceptions): learn it
        pass
    tokenizer = learn()
    built["tokenizers"] += 1
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        saved = {"kind": tokenizer_kind(tokenizer), "tokenizer": backend.to_str()}
        _write_atomic(path, json.dumps(saved))
    return tokenizer


def pieces_of(paths: Sequence[str | Path], field: str | None) -> Iterator[str]:
    """The corpus as pieces of text cut where no tokenizer's output changes."""
    from gentool.data.text import corpus_texts, safe_pieces

    return safe_pieces(corpus_texts(paths, field), PIECE_CHARS)


# -- sentence pairs ------------------------------------------------------------------------
PAIR_BATCH = 8192  # pairs encoded at a time (the fast tokenizer's batch runs on all cores)
_PAIR_PARTS = ("source", "target", "source-offsets", "target-offsets")


class PairIds:
    """Encoded sentence pairs (a translator's data), read from memory-mapped arrays: each
    side's ids end to end and the offsets where each sentence starts (pair ``i`` is
    ``ids[offsets[i]:offsets[i + 1]]``), with ``index`` choosing and ordering the pairs
    seen. Pair ``i`` is read as lists of ints when asked for; the lengths are arrays, so
    batches are made without holding the pairs in Python."""

    def __init__(
        self,
        sides: tuple[np.ndarray, np.ndarray],
        offsets: tuple[np.ndarray, np.ndarray],
        index: np.ndarray | None = None,
        lengths: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        import numpy as np

        self.sides, self.offsets = sides, offsets
        self.index = np.arange(len(offsets[0]) - 1) if index is None else index
        if lengths is None:  # (int32: half the memory of int64; no sentence is 2**31 long)
            lengths = (np.diff(offsets[0]).astype(np.int32), np.diff(offsets[1]).astype(np.int32))
            if index is not None:
                lengths = (lengths[0][index], lengths[1][index])
        self.source_lengths, self.target_lengths = lengths

    @classmethod
    def of(cls, pairs: Sequence[tuple[Sequence[int], Sequence[int]]] | PairIds) -> PairIds:
        """``pairs`` (a list of (source ids, target ids)) as PairIds, held in memory."""
        import numpy as np

        if isinstance(pairs, PairIds):
            return pairs
        sides, offsets = [], []
        for side in (0, 1):
            lengths = [len(p[side]) for p in pairs]
            offsets.append(np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]))
            flat = [i for p in pairs for i in p[side]]
            sides.append(np.asarray(flat, dtype=np.int64))
        return cls((sides[0], sides[1]), (offsets[0], offsets[1]))

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key: Any) -> Any:
        """Pair ``key`` as (source ids, target ids); a slice or an index array: PairIds."""
        import numpy as np

        if isinstance(key, (int, np.integer)):
            j = int(self.index[key])
            return tuple(
                self.sides[s][self.offsets[s][j] : self.offsets[s][j + 1]].tolist() for s in (0, 1)
            )
        lengths = (self.source_lengths[key], self.target_lengths[key])
        return PairIds(self.sides, self.offsets, self.index[key], lengths)

    def __iter__(self) -> Iterator[tuple[list[int], list[int]]]:
        for i in range(len(self)):
            yield self[i]


def pair_ids(
    data_parts: Sequence[object],
    rows: Callable[[], Iterator[tuple[str, str]]],
    name: str,
    tokenizer: Any,
    log: Callable[[str], None] = lambda message: None,
) -> tuple[PairIds, int]:
    """Sentence pairs encoded as ``tokenizer(texts)`` encodes them (eos included), and how
    many were dropped for an empty side; read from the cache, else encoded into it first.

    ``rows()`` streams the raw (source, target) rows (``gentool.data.parallel``) of the data
    ``data_parts`` identifies (its sources' ``data_key``s); ``name`` names it in errors.
    Each side is one token file of ids and one of offsets, cached as ``token_file``'s."""
    # (the probe catches what the vocabulary does not say: an eos the call appends)
    probe = tokenizer(["a b"])["input_ids"][0]
    key = _key("pairs", *data_parts, tokenizer_hash(tokenizer), probe)
    folder = _folder("tokens")
    files = [
        (folder / f"{key}.{part}.tokens", folder / f"{key}.{part}.json") for part in _PAIR_PARTS
    ]
    if (found := _open_pairs(files)) is not None:
        log(f"sentence pairs: read from the cache ({len(found[0]):,} pairs, {files[0][0]})")
        return found
    with _locked(folder / f"{key}.lock"):
        if (found := _open_pairs(files)) is not None:
            log(f"sentence pairs: read from the cache ({len(found[0]):,} pairs, {files[0][0]})")
            return found
        _build_pairs(rows, name, tokenizer, files, log)
    found = _open_pairs(files)
    assert found is not None  # (just written)
    return found


def _open_pairs(files: list[tuple[Path, Path]]) -> tuple[PairIds, int] | None:
    arrays = [_open(data, meta) for data, meta in files]
    if any(a is None for a in arrays):
        return None
    source, target, source_offsets, target_offsets = arrays
    try:
        dropped = int(json.loads(files[2][1].read_text())["dropped"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    assert source is not None and target is not None  # (mypy)
    assert source_offsets is not None and target_offsets is not None
    return PairIds((source, target), (source_offsets, target_offsets)), dropped


def _build_pairs(
    rows: Callable[[], Iterator[tuple[str, str]]],
    name: str,
    tokenizer: Any,
    files: list[tuple[Path, Path]],
    log: Callable[[str], None],
) -> None:
    import numpy as np

    from gentool.data.parallel import clean_pair, no_pairs
    from gentool.progress import phase

    dtype = id_dtype(tokenizer)
    extra: dict[str, Any] = {}  # (the drop count, known at the end)
    started = time.perf_counter()
    writers = [
        _Writer(data, meta, dtype if n < 2 else np.dtype(np.int64), extra if n == 2 else None)
        for n, (data, meta) in enumerate(files)
    ]
    with contextlib.ExitStack() as stack:
        ids, offsets = writers[:2], writers[2:]
        for writer in writers:
            stack.enter_context(writer)
        ends = [0, 0]
        for n in (0, 1):
            offsets[n].write(np.zeros(1, dtype=np.int64))
        kept, dropped = 0, 0

        def flush(batch: list[tuple[str, str]]) -> None:
            for n in (0, 1):
                encoded = tokenizer([pair[n] for pair in batch])["input_ids"]
                lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
                ids[n].write(np.fromiter(chain.from_iterable(encoded), dtype=dtype))
                offsets[n].write(ends[n] + np.cumsum(lengths))
                ends[n] += int(lengths.sum())

        with phase(log, "encoding the sentence pairs", unit="pairs") as advance:
            batch: list[tuple[str, str]] = []
            for s, t in rows():
                if (pair := clean_pair(s, t)) is None:
                    dropped += 1
                    continue
                batch.append(pair)
                if len(batch) == PAIR_BATCH:
                    flush(batch)
                    kept, batch = kept + len(batch), []
                    advance(PAIR_BATCH)
            if batch:
                flush(batch)
                kept += len(batch)
        if not kept:
            from gentool.errors import DataError

            raise DataError(no_pairs(name))
        extra["dropped"] = dropped
        for writer in writers:
            writer.finish()
        for writer in writers:
            writer.publish()
    built["tokens"] += 1  # (tests count the builds)
    log(
        f"sentence pairs: {kept:,} pairs encoded into {ends[0] + ends[1]:,} {dtype.name} ids "
        f"in {time.perf_counter() - started:.2f} s, cached in {files[0][0]}"
    )
