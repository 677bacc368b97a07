"""Back-off n-gram language models in pure numpy: estimation, scoring, next-token distributions.

One table representation serves every smoothing method, so scoring, generation and ARPA
export share one code path. For each order n = 1..N the model stores the distinct n-grams
seen in training with a log10 probability and (for n < N) a log10 back-off weight, exactly
the content of an ARPA file. A query follows ARPA / KenLM semantics::

    log10 p(w | h) = logprob(s, w) + sum of backoff(h_j) for the contexts h_j longer than s

where (s, w) is the longest stored n-gram ending the history and h_j are the last j words
of the history; a context that is not stored has back-off 0 (stupid backoff: log10 alpha).

Tables. Ids: 0 ``<unk>``, 1 ``<s>``, 2 ``</s>``, then corpus tokens in first-occurrence
order. The unigram table is dense (entry i is word i). An n-gram (n >= 2) is the int64 key
``prefix * V + word`` where ``prefix`` is the index of its (n-1)-gram prefix in the order
n-1 table and ``V = len(vocab)``; each table is sorted by key, so the continuations of a
context form one contiguous run (``np.searchsorted``) and every key fits in int64 whatever
the order. Memory grows with the number of distinct n-grams, never with V^N.

Sentences. Each sentence is ``<s> w1 .. wn </s>`` with a single ``<s>`` (as KenLM's lmplz
does); n-grams never cross sentences. An empty sentence is ``<s> </s>`` and counts, as an
empty line does for lmplz. The words ``<s>``, ``</s>`` and ``<unk>`` inside training text
are dropped (lmplz reads them as whitespace); inside scored text they are out of vocabulary.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gentool.errors import DataError

MAX_BACKOFF = 99.0  # log10: a weight of 10^99, past any real model's

UNK, BOS, EOS = 0, 1, 2
SPECIAL_TOKENS = ("<unk>", "<s>", "</s>")
SMOOTHINGS = ("kneser-ney", "add-k", "stupid-backoff")
META_FORMAT = "gentool-ngram/1"


# -- scores ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scores:
    """Per-token log10 probabilities of scored text, as KenLM's ``query`` computes them.

    A predicted token is every word and each sentence's ``</s>`` (not ``<s>``).
    """

    logprobs: np.ndarray  # (T,) float64 log10 p(token | history)
    oov: np.ndarray  # (T,) bool: the word is not in the vocabulary (scored as <unk>)
    ngram_lengths: np.ndarray  # (T,) int: order of the longest stored n-gram used
    sentence_lengths: np.ndarray  # (num_sentences,) predicted tokens per sentence (words + 1)

    @property
    def num_tokens(self) -> int:
        return int(self.logprobs.size)

    @property
    def num_oov(self) -> int:
        return int(self.oov.sum())

    def total_logprob(self, include_oov: bool = True) -> float:
        """Sum of log10 probabilities; without the OOV tokens' own terms if not include_oov."""
        mask = slice(None) if include_oov else ~self.oov
        return float(self.logprobs[mask].sum())

    def sums(self) -> ScoreSums:
        """What the perplexities need; the sums of text scored in pieces add up."""
        return ScoreSums(
            self.total_logprob(True), self.total_logprob(False), self.num_tokens, self.num_oov
        )

    def perplexity(self, include_oov: bool = True) -> float:
        """KenLM query's "Perplexity including/excluding OOVs" (see ScoreSums.perplexity)."""
        return self.sums().perplexity(include_oov)

    def bits_per_token(self, include_oov: bool = True) -> float:
        """Average negative log2 probability per token (= log2 of the perplexity)."""
        return self.sums().bits_per_token(include_oov)


@dataclass(frozen=True)
class ScoreSums:
    """Sums over scored text: log10 probabilities (all tokens, and without the OOV tokens'
    own terms), predicted tokens and OOVs. ``a + b`` is the text of both."""

    logprob: float = 0.0
    logprob_in_vocab: float = 0.0
    tokens: int = 0
    oov: int = 0

    def __add__(self, other: ScoreSums) -> ScoreSums:
        return ScoreSums(
            self.logprob + other.logprob,
            self.logprob_in_vocab + other.logprob_in_vocab,
            self.tokens + other.tokens,
            self.oov + other.oov,
        )

    def perplexity(self, include_oov: bool = True) -> float:
        """10^(-total / tokens), as KenLM's ``query`` prints it.

        Excluding OOVs drops each OOV token's own probability and count (the words after it
        are still scored in its context). NaN when no token is left.
        """
        total, tokens = self._total(include_oov)
        if tokens == 0:
            return math.nan
        try:
            return float(10.0 ** (-total / tokens))
        except OverflowError:  # log-probs of -1e38 (a damaged table): no finite perplexity
            return math.inf

    def bits_per_token(self, include_oov: bool = True) -> float:
        total, tokens = self._total(include_oov)
        return float(-total * math.log2(10.0) / tokens) if tokens else math.nan

    def _total(self, include_oov: bool) -> tuple[float, int]:
        if include_oov:
            return self.logprob, self.tokens
        return self.logprob_in_vocab, self.tokens - self.oov


# -- corpus -> padded id stream ----------------------------------------------------------
def _flatten(sentences: Sequence[Sequence[str]]) -> tuple[list[str], np.ndarray]:
    """All tokens in one list, and the number of tokens of each sentence (S,)."""
    lengths = np.fromiter(map(len, sentences), dtype=np.int64, count=len(sentences))
    return list(itertools.chain.from_iterable(sentences)), lengths


def _pad(ids: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sentences of ``ids`` as one stream ``<s> w.. </s> <s> w.. </s>``.

    Returns the stream (P,) and, for each position, the position of its sentence's <s> (P,).
    """
    num = lengths.size
    starts = np.zeros(num, dtype=np.int64)  # position of each sentence's <s>
    np.cumsum(lengths[:-1] + 2, out=starts[1:])
    stream = np.full(int(lengths.sum()) + 2 * num, EOS, dtype=np.int64)
    stream[starts] = BOS
    sentence_of_word = np.repeat(np.arange(num), lengths)
    word_pos = np.arange(ids.size) + 1 + 2 * sentence_of_word  # words sit after their <s>
    stream[word_pos] = ids
    sentence_start = np.repeat(starts, lengths + 2)
    return stream, sentence_start


def _training_stream(
    sentences: Sequence[Sequence[str]],
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Vocabulary (first-occurrence order after the specials) and the padded training stream."""
    flat, lengths = _flatten(sentences)
    index = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    ids = np.fromiter(
        (index.setdefault(token, len(index)) for token in flat), dtype=np.int64, count=len(flat)
    )
    special = ids < len(SPECIAL_TOKENS)
    if special.any():  # lmplz reads <s>, </s>, <unk> in the text as whitespace
        sentence_of_word = np.repeat(np.arange(lengths.size), lengths)
        lengths = lengths - np.bincount(sentence_of_word[special], minlength=lengths.size)
        ids = ids[~special]
    stream, sentence_start = _pad(ids, lengths)
    return list(index), stream, sentence_start


# -- counting ----------------------------------------------------------------------------
@dataclass
class _Counts:
    """Distinct n-grams of each order (index n-1) and what estimation needs about them."""

    keys: list[np.ndarray]  # (C_n,) int64 sorted keys; unigrams: arange(V)
    counts: list[np.ndarray]  # (C_n,) int64 raw counts; unigram <s> counts 0 (never predicted)
    suffix: list[np.ndarray]  # (C_n,) index of the n-gram minus its first word in order n-1
    starts_bos: list[np.ndarray]  # (C_n,) bool: the n-gram begins with <s>
    tracked: list[int]  # index of the n-gram ending at one tracked position, -1 if none

    def parent(self, n: int) -> np.ndarray:
        """Index of each order-n n-gram's context (its first n-1 words) in order n-1 (C_n,)."""
        if n == 1:
            return np.zeros(self.keys[0].size, dtype=np.int64)  # one empty context
        return self.keys[n - 1] // self.keys[0].size


def _count(stream: np.ndarray, order: int, vocab_size: int, tracked_pos: int) -> _Counts:
    """Count the n-grams of every order with one np.unique per order.

    ``idx`` (P,) holds, for every stream position, the index of the order-n n-gram that ends
    there (-1 if the n-gram would cross the sentence's <s>); order n+1 keys are built from it.
    """
    predicted = stream != BOS  # every position but <s> ends an n-gram of order >= 2
    idx = stream.copy()  # order 1: the unigram table is dense, index = word id
    unigram_counts = np.bincount(stream[predicted], minlength=vocab_size)
    result = _Counts(
        keys=[np.arange(vocab_size, dtype=np.int64)],
        counts=[unigram_counts.astype(np.int64)],
        suffix=[np.zeros(0, dtype=np.int64)],  # unigrams have no suffix
        starts_bos=[np.arange(vocab_size) == BOS],
        tracked=[int(stream[tracked_pos])],
    )
    for _ in range(2, order + 1):
        context = np.concatenate(([-1], idx[:-1]))  # (P,) the (n-1)-gram ending one earlier
        ok = (context >= 0) & predicted
        keys, inverse, counts = np.unique(
            context[ok] * vocab_size + stream[ok], return_inverse=True, return_counts=True
        )
        suffix = np.empty(keys.size, dtype=np.int64)
        suffix[inverse] = idx[ok]  # the (n-1)-gram ending at the same position
        idx = np.full(stream.size, -1, dtype=np.int64)
        idx[ok] = inverse
        result.keys.append(keys)
        result.counts.append(counts.astype(np.int64))
        result.suffix.append(suffix)
        result.starts_bos.append(result.starts_bos[-1][keys // vocab_size])
        result.tracked.append(int(idx[tracked_pos]))
    return result


def _lmplz_last_position(stream: np.ndarray, sentence_start: np.ndarray, order: int) -> int:
    """A position whose <s>-padded order-N n-gram sorts last in lmplz's suffix order.

    lmplz counts N-grams over text padded with N-1 <s> and sorts them comparing the last
    word first (by id). When it collects count-of-counts, the n-grams still open at the end
    of that sorted stream (the suffixes of the last N-gram) enter with their raw count, not
    their adjusted count (adjust_counts.cc, the final flush uses ``actual_counts``). To
    reproduce its discounts exactly we find that N-gram: narrow the candidates word by word.
    """
    candidates = np.flatnonzero(stream != BOS)
    for back in range(order):
        pos = candidates - back
        words = np.where(pos >= sentence_start[candidates], stream[np.maximum(pos, 0)], BOS)
        candidates = candidates[words == words.max()]
    return int(candidates[0])


# -- estimation --------------------------------------------------------------------------
def _check_args(
    order: int, smoothing: str, k: float, alpha: float, fallback: Sequence[float]
) -> None:
    if not isinstance(order, (int, np.integer)) or order < 1:
        raise ValueError(f"order must be a positive integer, got {order!r}")
    if smoothing not in SMOOTHINGS:
        raise ValueError(f"smoothing must be one of {', '.join(SMOOTHINGS)}; got {smoothing!r}")
    if not (math.isfinite(k) and k > 0):
        raise ValueError(f"k must be positive, got {k}")
    if not (math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha must be positive, got {alpha}")
    if len(fallback) != 3 or not all(0 <= d <= j for j, d in enumerate(fallback, start=1)):
        raise ValueError(
            f"discount_fallback must be (D1, D2, D3+) with 0 <= Dj <= j, got {tuple(fallback)}"
        )


def _kn_adjusted_counts(c: _Counts, order: int) -> list[np.ndarray]:
    """Kneser-Ney adjusted counts a(g) per order (lmplz adjust_counts.cc).

    Highest order: raw counts. Lower orders: the number of distinct words seen to the left
    (including <s>), except n-grams that begin with <s>, which keep their raw count (nothing
    can precede <s>). <unk> and <s> get 0 as unigrams.
    """
    adjusted = []
    for n in range(1, order + 1):
        if n == order:
            a = c.counts[n - 1].copy()
        else:
            a = np.bincount(c.suffix[n], minlength=c.keys[n - 1].size).astype(np.int64)
            bos = c.starts_bos[n - 1]
            a[bos] = c.counts[n - 1][bos]
        if n == 1:
            a[[UNK, BOS]] = 0
        adjusted.append(a)
    return adjusted


def _count_of_counts(adjusted: np.ndarray, raw: np.ndarray, tracked: int) -> np.ndarray:
    """(5,) number of n-grams with adjusted count 0..4, with lmplz's end-of-stream quirk.

    ``tracked`` is the n-gram lmplz still holds open when its sorted stream ends (see
    ``_lmplz_last_position``); lmplz counts it with its raw count. -1: none.
    """
    hist = np.bincount(adjusted[adjusted < 5], minlength=5)
    if tracked >= 0:
        for value, change in ((adjusted[tracked], -1), (raw[tracked], +1)):
            if value < 5:
                hist[value] += change
    return hist


def _kn_discounts(
    hist: np.ndarray, fallback: tuple[float, float, float]
) -> tuple[tuple[float, float, float], bool]:
    """Chen & Goodman's (26) discounts D1, D2, D3+ from count-of-counts, in float32 as lmplz.

    Returns (discounts, used_fallback). lmplz raises BadDiscountException (our fallback) when
    n1, n2 or n3 is 0 or a discount leaves [0, j].
    """
    n = [np.float32(x) for x in hist]
    if min(hist[1], hist[2], hist[3]) == 0:
        return fallback, True
    y = n[1] / np.float32(float(hist[1]) + 2.0 * float(hist[2]))
    discounts = []
    for j in (1, 2, 3):
        d = np.float32(j) - np.float32(j + 1) * y * n[j + 1] / n[j]
        if not 0.0 <= d <= j:
            return fallback, True
        discounts.append(float(d))
    return (discounts[0], discounts[1], discounts[2]), False


def _log10(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log10(p)


def _log10f(p: np.ndarray) -> np.ndarray:
    """float32 log10 of float32 ``p``, correctly rounded (via float64).

    lmplz calls the C library's log10f, which in glibc (2.36) is off by 1-2 float32 ulps for
    about a fifth of the inputs: the only difference left between our numbers and lmplz's.
    """
    return _log10(p.astype(np.float64)).astype(np.float32)


def _per_context(parent: np.ndarray, weights: np.ndarray, num_contexts: int) -> np.ndarray:
    """Sum of ``weights`` (C_n,) over the continuations of each context (num_contexts,)."""
    return np.bincount(parent, weights=weights, minlength=num_contexts)


def _kneser_ney(
    c: _Counts, order: int, fallback: tuple[float, float, float]
) -> tuple[list[np.ndarray], list[np.ndarray], dict[int, tuple[float, float, float]], list[int]]:
    """Interpolated modified Kneser-Ney exactly as lmplz (initial_probabilities.cc,
    interpolate.cc), in back-off form.

    For an n-gram (h, w) with adjusted count a and context total A(h) = sum_w a(h, w):
        p(w | h) = (a - D(a)) / A(h) + gamma(h) * p(w | h'),   h' = h minus its first word
        gamma(h) = sum_{j=1,2,3+} Dj * #{w : a(h, w) in j} / A(h)
    with p(w | empty context) interpolated with the uniform 1/V, V = vocabulary without <s>.
    <unk> (adjusted count 0) gets only the interpolated mass gamma() / V; <s> gets
    probability 1 (log 0), never used for prediction. The back-off weight of a stored
    context h is gamma(h); n-grams that are no context (ending in </s>) get back-off 1.
    """
    adjusted = _kn_adjusted_counts(c, order)
    uniform = kn_uniform(c.keys[0].size)
    discounts: dict[int, tuple[float, float, float]] = {}
    fallback_orders: list[int] = []
    probs: list[np.ndarray] = []  # (C_n,) float32 interpolated probabilities
    gammas: list[np.ndarray] = []  # (C_{n-1},) float32 gamma of each order n-1 context
    is_context: list[np.ndarray] = []  # (C_{n-1},) bool: has continuations at order n
    for n in range(1, order + 1):
        a = adjusted[n - 1]
        tracked = c.tracked[n - 1] if n < order else -1
        hist = _count_of_counts(a, c.counts[n - 1], tracked)
        discounts[n], used = _kn_discounts(hist, fallback)
        if used:
            fallback_orders.append(n)
        table = kn_table(discounts[n])
        parent = c.parent(n)
        num_contexts = 1 if n == 1 else c.keys[n - 2].size
        sums = [_per_context(parent, x, num_contexts) for x in (a, *kn_buckets(a))]
        total, gamma = kn_context(sums, table)
        lower = uniform if n == 1 else probs[n - 2][c.suffix[n - 1]]
        p = kn_probs(a, table, total[parent], gamma[parent], lower)
        if n == 1:
            p[BOS] = 1.0
        probs.append(p)
        gammas.append(gamma)
        is_context.append(total > 0)
    logprobs = [kn_logprob(p) for p in probs]
    backoffs = [kn_backoff(gammas[n], is_context[n]) for n in range(1, order)]
    return logprobs, backoffs, discounts, fallback_orders


# The arithmetic of Kneser-Ney element by element, shared with the streaming estimator
# (streaming.py), which applies it to pieces of the same arrays: equal numbers by design.
def kn_uniform(vocab_size: int) -> np.float32:
    """1/V in float32, V the vocabulary without <s> (never predicted)."""
    return np.float32(1.0 / float(np.float32(vocab_size - 1)))


def kn_table(discounts: tuple[float, float, float]) -> np.ndarray:
    """(4,) float32 discount by bucket: 0, D1, D2, D3+."""
    return np.array([0.0, *discounts], dtype=np.float32)


def kn_buckets(a: np.ndarray) -> list[np.ndarray]:
    """Indicators of adjusted count 1, 2 and 3+ (what gamma counts per context)."""
    bucket = np.minimum(a, 3)
    return [bucket == j for j in (1, 2, 3)]


def kn_context(sums: Sequence[np.ndarray], table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per context, from integer-valued sums (A, N1, N2, N3): total A(h) and gamma(h), float32.

    Arithmetic in float32, operation by operation as lmplz, so the numbers agree to the bit
    up to the rounding of log10 (see _log10f). The sums are exact integers (in float64 or
    int64), so how they were added up does not matter.
    """
    f32 = np.float32
    total = np.asarray(sums[0]).astype(np.float64).astype(f32)
    gamma = np.zeros(total.size, dtype=f32)
    for j in (1, 2, 3):  # gamma += Dj * N_j(h), in this order
        gamma = gamma + table[j] * np.asarray(sums[j]).astype(np.float64).astype(f32)
    with np.errstate(divide="ignore", invalid="ignore"):
        gamma = np.where(total > 0, gamma / total, f32(0))
    return total, gamma


def kn_probs(
    a: np.ndarray, table: np.ndarray, total: np.ndarray, gamma: np.ndarray, lower: Any
) -> np.ndarray:
    """p(w | h) = (a - D(a)) / A(h) + gamma(h) p(w | h'), float32, for n-grams with adjusted
    count ``a`` and their context's ``total`` and ``gamma``; ``lower`` is p(w | h')."""
    return (a.astype(np.float32) - table[np.minimum(a, 3)]) / total + gamma * lower


def kn_logprob(p: np.ndarray) -> np.ndarray:
    return np.minimum(0.0, _log10f(p))


def kn_backoff(gamma: np.ndarray, is_context: np.ndarray) -> np.ndarray:
    """log10 gamma(h); 0 for an n-gram that is no context (ends in </s>)."""
    return _log10f(np.where(is_context, gamma, np.float32(1)))


def _context_totals(c: _Counts, order: int) -> list[np.ndarray]:
    """(C_n,) for n < N: how often each order-n n-gram is followed by a token in training."""
    return [
        _per_context(c.parent(n + 1), c.counts[n].astype(np.float64), c.keys[n - 1].size)
        for n in range(1, order)
    ]


def _add_k(c: _Counts, order: int, k: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Lidstone smoothing whose prior is the next-lower order (see NGramLM.estimate)."""
    kv = addk_kv(k, c.keys[0].size)
    totals = _context_totals(c, order)
    probs = [addk_unigram(c.counts[0], int(c.counts[0].sum()), k, kv)]
    for n in range(2, order + 1):
        total = totals[n - 2][c.parent(n)]
        probs.append(addk_probs(c.counts[n - 1], total, probs[-1][c.suffix[n - 1]], kv))
    probs[0][BOS] = 1.0
    logprobs = [_log10(p) for p in probs]
    backoffs = [addk_backoff(t, kv) for t in totals]
    return logprobs, backoffs


def _stupid_backoff(
    c: _Counts, order: int, alpha: float
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Brants et al. (2007) relative frequencies; back-off alpha per order skipped."""
    totals = _context_totals(c, order)
    probs = [c.counts[0] / float(c.counts[0].sum())]
    for n in range(2, order + 1):
        probs.append(c.counts[n - 1] / totals[n - 2][c.parent(n)])
    probs[0][BOS] = 1.0
    logprobs = [_log10(p) for p in probs]
    backoffs = [np.full(c.keys[n - 1].size, math.log10(alpha)) for n in range(1, order)]
    return logprobs, backoffs


# add-k element by element, shared with streaming.py (float64 throughout).
def addk_kv(k: float, vocab_size: int) -> float:
    """k V, V = every word, <unk> and </s>, not <s> (never predicted)."""
    return k * (vocab_size - 1)


def addk_unigram(counts: np.ndarray, num_tokens: int, k: float, kv: float) -> np.ndarray:
    return (counts.astype(np.float64) + k) / (float(num_tokens) + kv)


def addk_probs(counts: np.ndarray, total: np.ndarray, lower: np.ndarray, kv: float) -> np.ndarray:
    return (counts + kv * lower) / (total + kv)


def addk_backoff(total: np.ndarray, kv: float) -> np.ndarray:
    return _log10(kv / (total + kv))


# -- the model ---------------------------------------------------------------------------
class NGramLM:
    """A back-off n-gram model: per order, sorted n-gram keys with log10 prob and back-off.

    Attributes: ``order`` N; ``vocab`` (id -> token); ``smoothing`` ("kneser-ney", "add-k",
    "stupid-backoff", or "arpa" for a model read from a file); ``normalized`` (False for
    stupid backoff: scores, not probabilities); ``discounts`` {order: (D1, D2, D3+)} for
    Kneser-Ney; ``discount_fallback_orders``, the orders whose discounts were undefined and
    took the fallback; ``unseen_backoff``, the log10 back-off of a context that is not
    stored (0, except log10 alpha for stupid backoff).
    """

    def __init__(
        self,
        vocab: list[str],
        keys: list[np.ndarray],
        logprobs: list[np.ndarray],
        backoffs: list[np.ndarray],
        smoothing: str,
        normalized: bool = True,
        discounts: dict[int, tuple[float, float, float]] | None = None,
        discount_fallback_orders: list[int] | None = None,
        unseen_backoff: float = 0.0,
        params: dict[str, float] | None = None,
        check: bool = True,
    ) -> None:
        self.order = len(keys)
        self.vocab = list(vocab)
        self.keys = [np.asarray(x, dtype=np.int64) for x in keys]  # (C_n,) sorted
        self.logprobs = [np.asarray(x, dtype=np.float32) for x in logprobs]  # (C_n,)
        self.backoffs = [np.asarray(x, dtype=np.float32) for x in backoffs]  # (C_n,), n < N
        self.smoothing = smoothing
        self.normalized = normalized
        self.discounts = dict(discounts or {})
        self.discount_fallback_orders = list(discount_fallback_orders or [])
        self.unseen_backoff = float(unseen_backoff)
        self.params = dict(params or {})  # k / alpha, for the record
        self._index: dict[str, int] | None = None
        if check:  # off for tables built sorted (streaming.py): checking reads every page
            self._validate()

    def _validate(self) -> None:
        """Shapes and invariants every code path relies on (ValueError if broken)."""
        v = len(self.vocab)
        if self.order < 1 or len(self.logprobs) != self.order:
            raise ValueError("an n-gram model needs keys and log-probs for orders 1..N")
        if len(self.backoffs) != self.order - 1:
            raise ValueError(f"expected back-offs for orders 1..{self.order - 1}")
        if v < len(SPECIAL_TOKENS) or tuple(self.vocab[:3]) != SPECIAL_TOKENS:
            raise ValueError("the vocabulary must start with <unk>, <s>, </s>")
        if not np.array_equal(self.keys[0], np.arange(v)):
            raise ValueError("the unigram table must hold every vocabulary word once, in order")
        for n in range(1, self.order + 1):
            keys = self.keys[n - 1]
            if self.logprobs[n - 1].shape != keys.shape or (
                n < self.order and self.backoffs[n - 1].shape != keys.shape
            ):
                raise ValueError(f"order {n}: keys, log-probs and back-offs differ in length")
            step = 1 << 22  # in pieces: a large model's tables need no copies
            if any(
                not (np.diff(keys[i : i + step + 1]) > 0).all() for i in range(0, keys.size, step)
            ):
                raise ValueError(f"order {n}: keys are not strictly increasing")
            if n > 1 and keys.size and not (keys[0] >= 0 and keys[-1] < self.keys[n - 2].size * v):
                raise ValueError(f"order {n}: keys point outside the order {n - 1} table")
            # Sampling and scoring add these up: one NaN or +inf spoils every result.
            for kind, table in [("log-prob", self.logprobs[n - 1])] + (
                [("back-off", self.backoffs[n - 1])] if n < self.order else []
            ):
                if np.isnan(table).any() or np.isposinf(table).any():
                    raise ValueError(f"order {n}: a {kind} is NaN or +infinity")
            # The bounds ARPA import holds a file to: a chance over 1 makes the perplexity
            # 0 or negative, a back-off past 10^99 overflows into NaN probabilities.
            if (self.logprobs[n - 1] > 0).any():
                raise ValueError(f"order {n}: a log-prob is above 0 (a chance over 1)")
            if n < self.order and (self.backoffs[n - 1] > MAX_BACKOFF).any():
                raise ValueError(f"order {n}: a back-off is above {MAX_BACKOFF:g}")
        if not math.isfinite(self.unseen_backoff):
            raise ValueError(f"the unseen back-off is {self.unseen_backoff}, not a number")

    # -- estimation ----------------------------------------------------------------------
    @classmethod
    def estimate(
        cls,
        sentences: Sequence[Sequence[str]],
        order: int = 3,
        smoothing: str = "kneser-ney",
        k: float = 1.0,
        alpha: float = 0.4,
        discount_fallback: tuple[float, float, float] = (0.5, 1.0, 1.5),
    ) -> NGramLM:
        """Estimate a model of ``order`` from tokenized sentences.

        ``"kneser-ney"``: interpolated modified Kneser-Ney, identical to KenLM's
        ``lmplz -o N`` (with ``--discount_fallback`` semantics: undefined discounts take
        ``discount_fallback`` and the order is listed in ``discount_fallback_orders``).

        ``"add-k"``: Lidstone smoothing with constant k whose prior is the next-lower order,
        ``p(w|h) = (c(h,w) + k V p(w|h')) / (c(h) + k V)`` with ``c(h)`` the count of h
        followed by any token, h' = h minus its first word and ``p(w) = (c(w) + k) / (N + k V)``
        at the bottom (uniform prior 1/V; textbook add-k for unigrams). V counts every
        word, <unk> and </s>, not <s> (never predicted). It is an exact back-off model:
        seen (h, w) store p(w|h), a seen context h stores back-off k V / (c(h) + k V), and an
        unseen context falls through to h' unchanged (c(h) = 0).

        ``"stupid-backoff"`` (Brants et al. 2007): ``S(w|h) = c(h,w) / c(h)`` if (h, w) was
        seen, else ``alpha S(w|h')``, down to ``c(w) / N`` (so an unseen word scores -inf).
        alpha applies at every skipped order, also for contexts never seen. Scores do not
        sum to one: ``normalized`` is False.

        Raises DataError if the text has fewer tokens than ``order``, ValueError for bad
        arguments.
        """
        _check_args(order, smoothing, k, alpha, discount_fallback)
        order = int(order)
        vocab, stream, sentence_start = _training_stream(sentences)
        num_tokens = int((stream > EOS).sum())
        if num_tokens < order:
            raise DataError(
                f"the training text has {num_tokens} tokens, fewer than the model order "
                f"{order}; give more text or lower model.order"
            )
        tracked = _lmplz_last_position(stream, sentence_start, order)
        counts = _count(stream, order, len(vocab), tracked)
        discounts: dict[int, tuple[float, float, float]] = {}
        fallback_orders: list[int] = []
        unseen_backoff = 0.0
        if smoothing == "kneser-ney":
            d1, d2, d3 = (float(d) for d in discount_fallback)
            logprobs, backoffs, discounts, fallback_orders = _kneser_ney(
                counts, order, (d1, d2, d3)
            )
            params: dict[str, float] = {}
        elif smoothing == "add-k":
            logprobs, backoffs = _add_k(counts, order, k)
            params = {"k": float(k)}
        else:
            logprobs, backoffs = _stupid_backoff(counts, order, alpha)
            unseen_backoff = math.log10(alpha)
            params = {"alpha": float(alpha)}
        return cls(
            vocab,
            counts.keys,
            logprobs,
            backoffs,
            smoothing,
            normalized=smoothing != "stupid-backoff",
            discounts=discounts,
            discount_fallback_orders=fallback_orders,
            unseen_backoff=unseen_backoff,
            params=params,
        )

    # -- lookups -------------------------------------------------------------------------
    @property
    def index(self) -> dict[str, int]:
        """token -> id."""
        if self._index is None:
            self._index = {token: i for i, token in enumerate(self.vocab)}
        return self._index

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        """Token ids (len(tokens),) int64; out-of-vocabulary tokens -> 0 (<unk>)."""
        get = self.index.get
        return np.fromiter((get(t, UNK) for t in tokens), dtype=np.int64, count=len(tokens))

    def ngram_counts(self) -> list[int]:
        """Number of distinct n-grams stored per order (unigrams include the specials)."""
        return [int(keys.size) for keys in self.keys]

    def _find(self, n: int, prefix: np.ndarray, words: np.ndarray) -> np.ndarray:
        """Index in the order-n table of the n-grams (prefix, word), -1 if not stored.

        ``prefix`` (M,) indexes the order n-1 table (-1: not stored), ``words`` (M,) ids.
        """
        found = np.full(prefix.shape, -1, dtype=np.int64)
        ok = np.flatnonzero(prefix >= 0)
        keys = self.keys[n - 1]
        if ok.size == 0 or keys.size == 0:
            return found
        query = prefix[ok] * len(self.vocab) + words[ok]
        pos = np.minimum(np.searchsorted(keys, query), keys.size - 1)
        hit = keys[pos] == query
        found[ok[hit]] = pos[hit]
        return found

    def _find_ngram(self, ids: Sequence[int]) -> int:
        """Index of the n-gram ``ids`` in the order len(ids) table, -1 if not stored."""
        idx = np.array([ids[0]], dtype=np.int64)
        for n, word in enumerate(ids[1:], start=2):
            idx = self._find(n, idx, np.array([word], dtype=np.int64))
        return int(idx[0])

    # -- scoring -------------------------------------------------------------------------
    def score(self, sentences: Sequence[Sequence[str]]) -> Scores:
        """log10 p of every word and each </s> of ``sentences``, as KenLM's ``query``.

        Each sentence starts in the context <s>. Out-of-vocabulary words (including literal
        <s>, </s>, <unk> in the text) score as <unk> and are flagged in ``Scores.oov``.
        """
        flat, lengths = _flatten(sentences)
        ids = self.encode(flat)
        ids[ids == BOS] = UNK  # a literal <s> / </s> inside a sentence is no sentence marker
        ids[ids == EOS] = UNK
        stream, sentence_start = _pad(ids, lengths)
        if stream.size == 0:
            empty = np.zeros(0)
            return Scores(empty, empty.astype(bool), empty.astype(np.int64), lengths + 1)
        logprobs, ngram_lengths = self._score_stream(stream, sentence_start)
        predicted = stream != BOS
        return Scores(
            logprobs=logprobs[predicted],
            oov=stream[predicted] == UNK,
            ngram_lengths=ngram_lengths[predicted],
            sentence_lengths=lengths + 1,
        )

    def _score_stream(
        self, stream: np.ndarray, sentence_start: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """log10 p and matched order (P,) for every position of a stream of segments.

        ``sentence_start`` (P,) is the first position of each position's segment (its <s>
        for sentences); no context reaches before it. Walks up the orders keeping, per
        position, the longest stored n-gram found so far (its log-prob) and the back-offs of
        the longer contexts passed on the way; a hit at order n replaces both. Values at
        segment starts (<s>) are meaningless.
        """
        history = np.arange(stream.size) - sentence_start  # words before, <s> included
        idx = stream.copy()  # (P,) index of the order-n n-gram ending here, -1 = not stored
        best = self.logprobs[0][stream].astype(np.float64)
        backed_off = np.zeros(stream.size)  # sum of back-offs since the best hit
        length = np.ones(stream.size, dtype=np.int64)
        for n in range(2, self.order + 1):
            context = np.concatenate(([-1], idx[:-1]))  # (P,) the (n-1)-gram before w
            context[history == 0] = -1  # never look across a sentence start
            unseen = np.where(history >= n - 1, self.unseen_backoff, 0.0)
            bo = np.where(context >= 0, self.backoffs[n - 2][np.maximum(context, 0)], unseen)
            idx = self._find(n, context, stream)
            hit = idx >= 0
            best = np.where(hit, self.logprobs[n - 1][np.maximum(idx, 0)], best)
            backed_off = np.where(hit, 0.0, backed_off + bo)
            length = np.where(hit, n, length)
        return best + backed_off, length

    def logprob_rows(self, contexts: np.ndarray, words: np.ndarray) -> np.ndarray:
        """log10 p(words[i] | contexts[i]) (M,) for id rows ``contexts`` (M, L), ``words`` (M,).

        The context is taken as is (no <s> is added); its last N-1 ids matter.
        """
        m, width = contexts.shape
        stream = np.column_stack((contexts, words)).reshape(-1)  # rows laid end to end
        sentence_start = np.repeat(np.arange(m) * (width + 1), width + 1)
        logprobs, _ = self._score_stream(stream, sentence_start)
        return logprobs[width :: width + 1]

    def next_token_logprobs(self, context: Sequence[int]) -> np.ndarray:
        """log10 p(w | context) for every id w (len(vocab),) float64; <s> gets -inf.

        ``context`` is ids, <s> first at a sentence start; only the last N-1 ids (and
        nothing before the last <s>) matter. A fresh array: the caller may modify it.
        """
        ctx = [int(t) for t in context]
        if any(not 0 <= t < len(self.vocab) for t in ctx):
            raise ValueError(f"context ids must be in [0, {len(self.vocab)})")
        if BOS in ctx:
            ctx = ctx[len(ctx) - 1 - ctx[::-1].index(BOS) :]
        ctx = ctx[max(0, len(ctx) - self.order + 1) :] if self.order > 1 else []
        out = self.logprobs[0].astype(np.float64)
        for j in range(1, len(ctx) + 1):  # context of j words -> order j+1 continuations
            h = self._find_ngram(ctx[-j:])
            if h < 0:
                out += self.unseen_backoff
                continue
            out += self.backoffs[j - 1][h]
            keys = self.keys[j]
            v = len(self.vocab)
            lo, hi = np.searchsorted(keys, [h * v, (h + 1) * v])
            out[keys[lo:hi] - h * v] = self.logprobs[j][lo:hi]
        out[BOS] = -np.inf
        return out

    # -- n-gram words (for export) -------------------------------------------------------
    def ngram_words(self, n: int) -> np.ndarray:
        """(C_n, n) word ids of every order-n n-gram, in table order."""
        v = len(self.vocab)
        words = self.keys[0][:, None]
        for m in range(2, n + 1):
            keys = self.keys[m - 1]
            words = np.column_stack((words[keys // v], keys % v))
        return words

    # -- persistence ---------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        """Everything but the tables and vocabulary, JSON-serialisable."""
        return {
            "format": META_FORMAT,
            "order": self.order,
            "smoothing": self.smoothing,
            "normalized": self.normalized,
            "discounts": {str(n): list(d) for n, d in self.discounts.items()},
            "discount_fallback_orders": list(self.discount_fallback_orders),
            "unseen_backoff": self.unseen_backoff,
            "params": dict(self.params),
        }

    @staticmethod
    def tensor_specs(order: int, vocab_size: int) -> dict[str, tuple[str, tuple[int | None, ...]]]:
        """What ``to_tensors`` writes for a model of ``order``: name -> (safetensors dtype,
        shape); None where the size depends on the data."""
        specs: dict[str, tuple[str, tuple[int | None, ...]]] = {}
        for n in range(1, order + 1):
            size = vocab_size if n == 1 else None  # the unigram table is dense
            specs[f"ngram.{n}.keys"] = ("I64", (size,))
            specs[f"ngram.{n}.logprob"] = ("F32", (size,))
            if n < order:
                specs[f"ngram.{n}.backoff"] = ("F32", (size,))
        return specs

    def to_tensors(self) -> dict[str, np.ndarray]:
        """Flat name -> array map (for safetensors): ``ngram.{n}.keys|logprob|backoff``."""
        tensors: dict[str, np.ndarray] = {}
        for n in range(1, self.order + 1):
            tensors[f"ngram.{n}.keys"] = self.keys[n - 1]
            tensors[f"ngram.{n}.logprob"] = self.logprobs[n - 1]
            if n < self.order:
                tensors[f"ngram.{n}.backoff"] = self.backoffs[n - 1]
        return tensors

    @classmethod
    def from_tensors(
        cls, tensors: dict[str, np.ndarray], vocab: list[str], meta: dict[str, Any]
    ) -> NGramLM:
        """Inverse of to_tensors + meta(). KeyError / ValueError if they do not fit."""
        if meta.get("format") != META_FORMAT:
            raise ValueError(f"unknown n-gram model format {meta.get('format')!r}")
        order = int(meta["order"])
        return cls(
            vocab,
            keys=[tensors[f"ngram.{n}.keys"] for n in range(1, order + 1)],
            logprobs=[tensors[f"ngram.{n}.logprob"] for n in range(1, order + 1)],
            backoffs=[tensors[f"ngram.{n}.backoff"] for n in range(1, order)],
            smoothing=str(meta["smoothing"]),
            normalized=bool(meta["normalized"]),
            discounts={int(n): tuple(d) for n, d in meta["discounts"].items()},
            discount_fallback_orders=[int(n) for n in meta["discount_fallback_orders"]],
            unseen_backoff=float(meta["unseen_backoff"]),
            params=dict(meta.get("params", {})),
        )
