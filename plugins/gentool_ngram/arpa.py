"""ARPA back-off model files: write what KenLM's lmplz writes, read what it (or SRILM) writes.

Layout::

    \\data\\
    ngram 1=C1
    ...
    \\1-grams:
    logprob<TAB>word<TAB>backoff        (every order but the highest has a back-off)
    ...
    \\N-grams:
    logprob<TAB>w1 .. wN
    \\end\\

Numbers are log10 and written as lmplz writes them: the shortest decimal that reads back
as the same float32 ("-0.30103", "0", "-1e-7").
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from gentool.errors import GentoolError
from gentool_ngram.lm import BOS, EOS, MAX_BACKOFF, SPECIAL_TOKENS, NGramLM

UNKNOWN_MISSING_LOGPROB = -100.0  # what KenLM gives <unk> when an ARPA file lacks it


# -- writing -----------------------------------------------------------------------------
def _format_floats(values: np.ndarray) -> np.ndarray:
    """Strings (object array) for float32 ``values`` in KenLM's shortest-float format.

    numpy's str() of a float32 is already the shortest round-trip decimal; it differs from
    KenLM's double-conversion only for whole numbers ("-99.0" -> "-99") and for tiny
    magnitudes, where KenLM switches to exponent notation below 1e-6 only.
    """
    v = np.asarray(values, dtype=np.float32)
    out = v.astype(str).astype(object)
    whole = np.isfinite(v) & (v == np.round(v)) & (np.abs(v) < 1e15)
    out[whole] = v[whole].astype(np.int64).astype(str)
    for i in np.flatnonzero((v != 0) & (np.abs(v) < 1e-4)):
        x = v[i]
        if abs(x) >= 1e-6:
            out[i] = np.format_float_positional(x, unique=True, trim="-")
        else:
            out[i] = np.format_float_scientific(x, unique=True, trim="-", exp_digits=1)
    return out


def _check_writable_vocab(vocab: list[str]) -> None:
    for token in vocab:
        if not token or any(ch.isspace() for ch in token):
            raise GentoolError(
                f"token {token!r} cannot be written to an ARPA file, which separates tokens "
                "by whitespace; use word or whitespace tokens for models to export"
            )


def _ngram_lines(lm: NGramLM, n: int) -> list[str]:
    """The lines of the order-n section, in table order."""
    vocab = np.array(lm.vocab, dtype=object)
    words = lm.ngram_words(n)  # (C_n, n)
    text = vocab[words[:, 0]]
    for j in range(1, n):
        text = text + " " + vocab[words[:, j]]
    lines = _format_floats(lm.logprobs[n - 1]) + "\t" + text
    if n < lm.order:
        lines = lines + "\t" + _format_floats(lm.backoffs[n - 1])
    return lines.tolist()


def write_arpa(lm: NGramLM, path: str | os.PathLike[str]) -> None:
    """Write ``lm`` as an ARPA file (UTF-8).

    Stupid-backoff models export their tables, but ARPA readers apply the back-off alpha
    only for contexts stored in the file: a context never seen in training costs nothing
    there, whereas ``lm.score`` charges alpha for it too (``lm.unseen_backoff``).
    """
    _check_writable_vocab(lm.vocab)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\\data\\\n")
        for n, count in enumerate(lm.ngram_counts(), start=1):
            f.write(f"ngram {n}={count}\n")
        f.write("\n")
        for n in range(1, lm.order + 1):
            f.write(f"\\{n}-grams:\n")
            lines = _ngram_lines(lm, n)
            if lines:
                f.write("\n".join(lines))
                f.write("\n")
            f.write("\n")
        f.write("\\end\\\n")


# -- reading -----------------------------------------------------------------------------
class _Lines:
    """The file's lines with 1-based line numbers, for parsing and error messages."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise GentoolError(f"cannot read ARPA file '{path}': {err}") from None
        self.lines = [line.strip() for line in text.split("\n")]
        if self.lines and not self.lines[-1]:
            self.lines.pop()  # the final newline ends the last line, it starts none
        self.pos = 0  # index of the next line

    def error(self, message: str, index: int | None = None) -> GentoolError:
        line = (self.pos if index is None else index) + 1
        return GentoolError(f"{self.path}:{line}: {message} (not a valid ARPA file)")

    def next_nonblank(self) -> str:
        while self.pos < len(self.lines) and not self.lines[self.pos]:
            self.pos += 1
        if self.pos == len(self.lines):
            raise self.error("unexpected end of file", len(self.lines) - 1)
        return self.lines[self.pos]


def _read_counts(src: _Lines) -> list[int]:
    """The \\data\\ header: declared number of n-grams per order."""
    while src.pos < len(src.lines) and src.lines[src.pos] != "\\data\\":
        src.pos += 1  # free text may precede \data\
    if src.pos == len(src.lines):
        raise GentoolError(f"{src.path}: no \\data\\ line (not a valid ARPA file)")
    src.pos += 1
    counts: list[int] = []
    while src.next_nonblank().startswith("ngram "):
        head, _, value = src.lines[src.pos][6:].partition("=")
        if not (head.strip() == str(len(counts) + 1) and value.strip().isdigit()):
            raise src.error(f"expected 'ngram {len(counts) + 1}=COUNT'")
        counts.append(int(value))
        src.pos += 1
    if not counts:
        raise src.error("expected 'ngram 1=COUNT'")
    return counts


def _parse_floats(src: _Lines, fields: list[str], lines: np.ndarray, what: str) -> np.ndarray:
    """float64 array of ``fields`` (found on line indices ``lines``); NaN is an error."""
    try:
        values = np.array(fields, dtype=np.float64)
    except ValueError:
        values = np.array([_float_or_nan(field) for field in fields])
    bad = np.flatnonzero(np.isnan(values))
    if bad.size:
        raise src.error(f"bad {what} {fields[bad[0]]!r}", int(lines[bad[0]]))
    return values


def _refuse(
    src: _Lines,
    fields: list[list[str]],
    column: int,
    lines: np.ndarray,
    bad: np.ndarray,
    what: str,
    why: str,
) -> None:
    """Raise, naming the first line where ``bad`` holds, its ``what`` (``column``) and why."""
    found = np.flatnonzero(bad)
    if found.size:
        row = int(found[0])
        raise src.error(f"{what} {fields[row][column]} is {why}", int(lines[row]))


def _float_or_nan(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def _read_section(
    src: _Lines, n: int, count: int, highest: bool
) -> tuple[list[list[str]], np.ndarray, np.ndarray, np.ndarray]:
    """One \\n-grams: section: (fields per line, logprobs, backoffs, line indices)."""
    if src.next_nonblank() != f"\\{n}-grams:":
        raise src.error(f"expected '\\{n}-grams:'")
    first = src.pos + 1
    end = first
    while end < len(src.lines) and src.lines[end] and not src.lines[end].startswith("\\"):
        end += 1
    if end - first != count:
        raise src.error(
            f"the header declares {count} {n}-grams, the section has {end - first}", end
        )
    fields = [line.split() for line in src.lines[first:end]]
    widths = np.fromiter(map(len, fields), dtype=np.int64, count=len(fields))
    bad = np.flatnonzero((widths != n + 1) & ((widths != n + 2) | highest))
    if bad.size:
        expected = f"log-prob and {n} words" + ("" if highest else ", optionally a back-off")
        raise src.error(f"expected {expected}", first + int(bad[0]))
    lines = np.arange(first, end)
    logprobs = _parse_floats(src, [f[0] for f in fields], lines, "log-probability")
    # log10 of a probability: at most 0 (-inf and -99 mean impossible).
    _refuse(src, fields, 0, lines, logprobs > 0, "log-probability", "above 0 (a chance over 1)")
    has_backoff = widths == n + 2
    backoff_fields = [f[n + 1] for f, b in zip(fields, has_backoff, strict=True) if b]
    backoffs = np.zeros(len(fields))
    backoffs[has_backoff] = _parse_floats(src, backoff_fields, lines[has_backoff], "back-off")
    # log10 of the weight on a lower order's probabilities (-inf: never back off). One over
    # MAX_BACKOFF is no model's, and overflows the float32 tables into NaN probabilities.
    too_big = backoffs > MAX_BACKOFF
    _refuse(src, fields, n + 1, lines, too_big, "back-off", f"above {MAX_BACKOFF:g}")
    src.pos = end
    return fields, logprobs, backoffs, lines


def _unigram_vocab(
    src: _Lines, fields: list[list[str]], lines: np.ndarray
) -> tuple[list[str], np.ndarray]:
    """Vocabulary (specials first, then file order) and each unigram line's id."""
    words = [f[1] for f in fields]
    index = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    ids = np.fromiter(
        (index.setdefault(w, len(index)) for w in words), dtype=np.int64, count=len(words)
    )
    if np.unique(ids).size != ids.size:
        _, first_seen = np.unique(ids, return_index=True)
        dup = np.setdiff1d(np.arange(ids.size), first_seen)[0]
        raise src.error(f"duplicate unigram {words[dup]!r}", int(lines[dup]))
    for token, i in (("<s>", BOS), ("</s>", EOS)):
        if i not in ids:
            raise GentoolError(f"{src.path}: the ARPA file has no {token} unigram")
    return list(index), ids


def _word_ids(
    src: _Lines, fields: list[list[str]], n: int, index: dict[str, int], lines: np.ndarray
) -> np.ndarray:
    """(C_n, n) ids of an order-n section's words; unknown words are an error."""
    get = index.get
    ids = np.fromiter(
        (get(w, -1) for f in fields for w in f[1 : n + 1]), dtype=np.int64, count=len(fields) * n
    ).reshape(len(fields), n)
    unknown = np.flatnonzero((ids < 0).any(axis=1))
    if unknown.size:
        row = int(unknown[0])
        word = next(w for w in fields[row][1 : n + 1] if w not in index)
        raise src.error(f"word {word!r} is not among the unigrams", int(lines[row]))
    return ids


class _Order:
    """One order's n-grams while the tables are assembled (rows may be added)."""

    def __init__(
        self, ids: np.ndarray, logprobs: np.ndarray, backoffs: np.ndarray, lines: np.ndarray
    ) -> None:
        self.ids = ids  # (C, n) word ids
        self.logprobs = logprobs  # (C,) NaN for an added prefix, computed at the end
        self.backoffs = backoffs  # (C,)
        self.lines = lines  # (C,) line index in the file, -1 for an added prefix
        self.keys = np.zeros(0, dtype=np.int64)

    def add(self, ids: np.ndarray) -> None:
        """Append n-grams that are missing as prefixes (back-off 0, probability later)."""
        self.ids = np.concatenate((self.ids, ids))
        self.logprobs = np.concatenate((self.logprobs, np.full(len(ids), np.nan)))
        self.backoffs = np.concatenate((self.backoffs, np.zeros(len(ids))))
        self.lines = np.concatenate((self.lines, np.full(len(ids), -1)))

    def sort(self, keys: np.ndarray) -> None:
        order = np.argsort(keys, kind="stable")
        self.keys = keys[order]
        self.ids, self.logprobs = self.ids[order], self.logprobs[order]
        self.backoffs, self.lines = self.backoffs[order], self.lines[order]


def _prefix_index(orders: list[_Order], rows: np.ndarray, vocab_size: int) -> np.ndarray:
    """Index of each id row (M, m) in the (sorted) order-m table, -1 if absent."""
    idx = rows[:, 0].copy()
    for j in range(1, rows.shape[1]):
        keys = orders[j].keys
        if keys.size == 0:
            return np.full(len(rows), -1, dtype=np.int64)
        query = idx * vocab_size + rows[:, j]
        pos = np.minimum(np.searchsorted(keys, query), keys.size - 1)
        idx = np.where((idx >= 0) & (keys[pos] == query), pos, -1)
    return idx


def _build_tables(src: _Lines, orders: list[_Order], vocab_size: int) -> None:
    """Sort every order by key, adding n-grams missing as prefixes of longer ones."""
    n = 2
    while n <= len(orders):
        cur = orders[n - 1]
        prefix = _prefix_index(orders, cur.ids[:, :-1], vocab_size)
        missing = prefix < 0
        if missing.any():  # a context that the file lacks (SRILM pruning): add it
            orders[n - 2].add(np.unique(cur.ids[missing, :-1], axis=0))
            n -= 1  # rebuild the lower order, which may lack prefixes in turn
            continue
        cur.sort(prefix * vocab_size + cur.ids[:, -1])
        dup = np.flatnonzero(np.diff(cur.keys) == 0)
        if dup.size:
            line = int(max(cur.lines[dup[0]], cur.lines[dup[0] + 1]))
            raise src.error(f"duplicate {n}-gram", line)
        n += 1


def _fill_added(vocab: list[str], orders: list[_Order]) -> None:
    """Probability of each added prefix (h, w): what backing off gives, bo(h) + p(w | h')."""
    vocab_size = len(vocab)
    for n in range(2, len(orders) + 1):
        cur = orders[n - 1]
        added = np.flatnonzero(np.isnan(cur.logprobs))
        if added.size == 0:
            continue
        lower = NGramLM(
            vocab,
            keys=[o.keys for o in orders[: n - 1]],
            logprobs=[o.logprobs for o in orders[: n - 1]],
            backoffs=[o.backoffs for o in orders[: n - 2]],
            smoothing="arpa",
        )
        rows = cur.ids[added]
        context = _prefix_index(orders, rows[:, :-1], vocab_size)
        cur.logprobs[added] = orders[n - 2].backoffs[context] + lower.logprob_rows(
            rows[:, 1:-1], rows[:, -1]
        )


def read_arpa(path: str | os.PathLike[str]) -> NGramLM:
    """Read an ARPA file into a model that scores exactly as KenLM scores the file.

    Tolerates what lmplz and SRILM write: free text before \\data\\, missing back-offs (0),
    ``-99`` / ``-inf`` log-probabilities (kept as they are), a missing <unk> (added with
    log-prob -100, as KenLM does) and n-grams whose prefix is missing (added with the
    backed-off probability and back-off 0, which scores identically). Anything else that
    does not fit raises GentoolError naming the line.
    """
    src = _Lines(Path(path))
    counts = _read_counts(src)
    top = len(counts)
    fields, logprobs, backoffs, lines = _read_section(src, 1, counts[0], top == 1)
    vocab, unigram_ids = _unigram_vocab(src, fields, lines)
    uni_logprob = np.full(len(vocab), UNKNOWN_MISSING_LOGPROB)
    uni_backoff = np.zeros(len(vocab))
    uni_logprob[unigram_ids], uni_backoff[unigram_ids] = logprobs, backoffs
    uni_lines = np.full(len(vocab), -1)
    uni_lines[unigram_ids] = lines
    orders = [_Order(np.arange(len(vocab))[:, None], uni_logprob, uni_backoff, uni_lines)]
    orders[0].keys = np.arange(len(vocab), dtype=np.int64)
    index = {token: i for i, token in enumerate(vocab)}
    for n in range(2, top + 1):
        fields, logprobs, backoffs, lines = _read_section(src, n, counts[n - 1], n == top)
        ids = _word_ids(src, fields, n, index, lines)
        orders.append(_Order(ids, logprobs, backoffs, lines))
    if src.next_nonblank() != "\\end\\":
        raise src.error("expected '\\end\\'")
    _build_tables(src, orders, len(vocab))
    _fill_added(vocab, orders)
    return NGramLM(
        vocab,
        keys=[o.keys for o in orders],
        logprobs=[o.logprobs for o in orders],
        backoffs=[o.backoffs for o in orders[:-1]],
        smoothing="arpa",
        normalized=True,
    )
