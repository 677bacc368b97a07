"""Write a large synthetic English corpus of a given size, seeded, without downloads.

    python benchmarks/make_corpus.py --size 1G --out /work/corpora/en-1G.txt [--seed 0]
    python benchmarks/make_corpus.py --size 1M --out heldout.txt --seed 1   # held-out text
    python benchmarks/make_corpus.py --stats 10M 100M   # distinct 1..5-grams against size

One sentence per line, whitespace tokens, as n-gram benchmarks read them. Text is sampled from
an interpolated absolute-discounting word trigram model trained on the English texts in
../shared/data (tinyshakespeare; Alice in Wonderland and Pride and Prejudice without their
Project Gutenberg header and licence, paragraphs split into sentences).

A model of 2 MB of text has a closed vocabulary of ~40k words; real text does not, its
vocabulary keeps growing with size (Heaps' law, types ~ K * tokens^b with b ~ 0.5: names,
numbers, inflections). So each sampled token of a rare word (seen at most --rare times in the
source) becomes, with probability --variant-rate, one of infinitely many "variants" of that
word, numbered k >= 1 by a Zipf(--zipf) draw and spelled as the word plus a suffix that
encodes k. The number of distinct variants after m draws grows like m^(1/zipf), so the
vocabulary and the distinct n-gram counts keep growing the way real text's do (see --stats).

Fast: sampling runs many sentences at once with numpy (one np.searchsorted per step for
every open sentence), text is assembled with a vectorised byte gather, and the work is split
into shards of --shard bytes, each a pure function of (seed, shard index), made on --workers
processes and written in order: the same seed gives the same bytes whatever the workers.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gentool.options import parse_size as gentool_parse_size

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
SOURCES = [
    DATA / "tinyshakespeare" / "input.txt",
    DATA / "gutenberg_en" / "pg11.txt",
    DATA / "gutenberg_en" / "pg1342.txt",
]
BOS, EOS = 0, 1  # ids in the sampler's vocabulary; words follow, most frequent first
DISCOUNT = 0.75
SUFFIX = "aeiouysnrltdmk"


def parse_size(text: str) -> int:
    try:
        return gentool_parse_size(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


# -- the source sentences --------------------------------------------------------------------
def split_sentences(paragraphs: list[str]) -> list[str]:
    """Each paragraph's text, one sentence per line (cut after . ! ? before a capital)."""
    out = []
    for paragraph in paragraphs:
        flat = " ".join(paragraph.split())
        out += [s for s in re.split(r"(?<=[.!?])\s+(?=[\"“‘'A-Z])", flat) if s]
    return out


def gutenberg_paragraphs(path: Path) -> list[str]:
    """The book's paragraphs, between the Project Gutenberg START/END markers."""
    text = path.read_text(encoding="utf-8-sig")
    start = text.index("\n", text.index("*** START OF")) + 1
    return re.split(r"\n\s*\n", text[start : text.index("*** END OF")])


def shakespeare_paragraphs(path: Path) -> list[str]:
    """Each speech's verse lines, without the speaker's name ("ROMEO:") above them."""
    speeches = re.split(r"\n\s*\n", path.read_text(encoding="utf-8"))
    return [s.split("\n", 1)[1] for s in speeches if "\n" in s]


def source_sentences() -> list[list[str]]:
    """Whitespace tokens of every source sentence."""
    missing = [str(p) for p in SOURCES if not p.is_file()]
    if missing:
        sys.exit(f"Error: source text missing: {', '.join(missing)} (../shared/data)")
    paragraphs = shakespeare_paragraphs(SOURCES[0])
    for path in SOURCES[1:]:
        paragraphs += gutenberg_paragraphs(path)
    return [s.split() for s in split_sentences(paragraphs)]


# -- the sampling model --------------------------------------------------------------------
@dataclass
class Level:
    """One order's continuation distributions, flat (CSR) and searchable in one call.

    Contexts are sorted int64 keys; context i owns entries ``start[i]:start[i+1]`` with
    words ``word`` and ``cdf`` = i + the cumulative discounted mass within the context
    (normalised to 1), so ``searchsorted(cdf, i + u)`` samples from context i. ``keep[i]``
    is the probability of staying at this order (1 - the interpolation weight).
    """

    contexts: np.ndarray
    start: np.ndarray
    word: np.ndarray
    cdf: np.ndarray
    keep: np.ndarray

    def find(self, keys: np.ndarray) -> np.ndarray:
        """Context index of each key, -1 if not a context."""
        pos = np.minimum(np.searchsorted(self.contexts, keys), self.contexts.size - 1)
        return np.where(self.contexts[pos] == keys, pos, -1)

    def sample(self, ctx: np.ndarray, u: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(self.cdf, ctx + u, side="right")
        return self.word[np.clip(pos, self.start[ctx], self.start[ctx + 1] - 1)]


def make_level(contexts: np.ndarray, words: np.ndarray, v: int, discount: float) -> Level:
    """Absolute discounting over the (context key, word) events given, words < v."""
    keys, counts = np.unique(contexts * v + words, return_counts=True)
    found, first, per_context = np.unique(keys // v, return_index=True, return_counts=True)
    ctx = np.repeat(np.arange(found.size), per_context)
    mass = counts - discount
    cum = np.cumsum(mass)
    before = np.concatenate(([0.0], cum))[first]  # mass before each context's first entry
    within = (cum - before[ctx]) / np.bincount(ctx, weights=mass)[ctx]
    keep = 1.0 - discount * per_context / np.bincount(ctx, weights=counts)
    start = np.append(first, keys.size)
    return Level(found, start, keys % v, ctx + within, keep)


@dataclass
class Model:
    vocab: list[bytes]  # id -> token bytes (BOS, EOS first)
    rare: np.ndarray  # (V,) bool: may take variants
    tri: Level  # context key h2 * V + h1
    bi: Level  # context h1
    uni: Level  # one context, 0


def train(sentences: list[list[str]], rare_count: int) -> Model:
    words, counts = np.unique([w for s in sentences for w in s], return_counts=True)
    order = np.argsort(-counts, kind="stable")
    vocab = ["<s>", "</s>", *words[order].tolist()]
    index = {w: i for i, w in enumerate(vocab)}
    stream = []
    for s in sentences:
        stream += [BOS, BOS, *(index[w] for w in s), EOS]
    ids = np.array(stream, dtype=np.int64)
    v = len(vocab)
    predicted = np.flatnonzero(ids[2:] != BOS) + 2  # positions with two words of history
    predicted = predicted[ids[predicted] != BOS]
    w, h1, h2 = ids[predicted], ids[predicted - 1], ids[predicted - 2]
    rare = np.zeros(v, dtype=bool)
    rare[2:] = counts[order] <= rare_count
    return Model(
        vocab=[x.encode() for x in vocab],
        rare=rare,
        tri=make_level(h2 * v + h1, w, v, DISCOUNT),
        bi=make_level(h1, w, v, DISCOUNT),
        uni=make_level(np.zeros_like(w), w, v, 0.0),
    )


def sample_ids(model: Model, rng: np.random.Generator, tokens: int, streams: int) -> np.ndarray:
    """About ``tokens`` ids (words and EOS), whole sentences, ``streams`` sampled at once."""
    v = len(model.vocab)
    h2 = np.full(streams, BOS)
    zero = np.zeros(streams, dtype=np.int64)
    bigram_context = np.full(v, -1)
    bigram_context[model.bi.contexts] = np.arange(model.bi.contexts.size)
    h1 = np.full(streams, BOS)
    steps = []
    while len(steps) * streams < tokens:
        u = rng.random((3, streams))  # trigram level?, bigram level?, which word
        ctx3 = model.tri.find(h2 * v + h1)
        ctx2 = bigram_context[h1]  # every history word is a bigram context
        level = np.where(u[1] < model.bi.keep[ctx2], 2, 1)
        level[(ctx3 >= 0) & (u[0] < model.tri.keep[ctx3])] = 3
        w = np.empty(streams, dtype=np.int64)
        for n, table, ctx in ((1, model.uni, zero), (2, model.bi, ctx2), (3, model.tri, ctx3)):
            rows = np.flatnonzero(level == n)
            w[rows] = table.sample(ctx[rows], u[2][rows])
        steps.append(w)
        end = w == EOS
        h2, h1 = np.where(end, BOS, h1), np.where(end, BOS, w)
    # Each stream's tokens in order; drop the unfinished sentence at its end.
    grid = np.stack(steps, axis=1)  # (streams, steps)
    last_end = grid.shape[1] - 1 - np.argmax(grid[:, ::-1] == EOS, axis=1)
    has_end = (grid == EOS).any(axis=1)
    keep = np.arange(grid.shape[1]) <= np.where(has_end, last_end, -1)[:, None]
    return grid[keep]


# -- text ----------------------------------------------------------------------------------
def variant_spelling(word: bytes, k: int) -> bytes:
    """Variant k >= 1 of ``word``: a suffix spelling k in base len(SUFFIX), before any
    trailing punctuation ("lord," 5 -> "lordy,")."""
    text = word.decode()
    core = text.rstrip(".,;:!?'\"”’)") or text
    suffix = ""
    while k > 0:
        k, digit = divmod(k - 1, len(SUFFIX))
        suffix += SUFFIX[digit]
    return (core + suffix + text[len(core) :]).encode()


def render(model: Model, ids: np.ndarray, rng: np.random.Generator, rate: float, zipf: float):
    """The sentences as UTF-8 bytes, one per line, rare words replaced by variants."""
    vocab = list(model.vocab)
    variant = model.rare[ids] & (rng.random(ids.size) < rate)
    if variant.any():
        k = rng.zipf(zipf, int(variant.sum())).astype(np.int64)
        pairs, inverse = np.unique(ids[variant] * 2**40 + k, return_inverse=True)
        new = [variant_spelling(vocab[p >> 40], int(p & (2**40 - 1))) for p in pairs.tolist()]
        ids = ids.copy()
        ids[variant] = len(vocab) + inverse
        vocab += new
    # Vectorised gather: token bytes followed by a space (a newline for EOS).
    pieces = [b"\n" if i == EOS else w + b" " for i, w in enumerate(vocab)]
    lengths = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
    offsets = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    buffer = np.frombuffer(b"".join(pieces), dtype=np.uint8)
    out_len = lengths[ids]
    out_start = np.concatenate(([0], np.cumsum(out_len)[:-1]))
    src = np.repeat(offsets[ids] - out_start, out_len) + np.arange(int(out_len.sum()))
    return buffer[src].tobytes().replace(b" \n", b"\n")


# -- shards on worker processes ------------------------------------------------------------
_MODEL: Model | None = None
_ARGS: argparse.Namespace | None = None


def _init(model: Model, args: argparse.Namespace) -> None:
    global _MODEL, _ARGS
    _MODEL, _ARGS = model, args


def make_shard(index: int) -> bytes:
    """Shard ``index``: about --shard bytes, a pure function of (seed, index)."""
    assert _MODEL is not None and _ARGS is not None
    rng = np.random.default_rng([_ARGS.seed, index])
    out, size = [], 0
    while size < _ARGS.shard:  # ~6 bytes per token; a few rounds per shard
        tokens = max(10_000, (_ARGS.shard - size) // 6)
        ids = sample_ids(_MODEL, rng, tokens, streams=min(tokens // 20 + 1, 50_000))
        out.append(render(_MODEL, ids, rng, _ARGS.variant_rate, _ARGS.zipf))
        size += len(out[-1])
    return b"".join(out)


def shards(model: Model, args: argparse.Namespace, count: int) -> Iterator[bytes]:
    if args.workers <= 1:
        _init(model, args)
        yield from map(make_shard, range(count))
        return
    with multiprocessing.Pool(args.workers, _init, (model, args)) as pool:
        yield from pool.imap(make_shard, range(count))


def write_corpus(model: Model, args: argparse.Namespace, out: Path) -> int:
    """Write --size bytes, or a little less: whole lines, the last shard cut at a line end."""
    args.shard = min(args.shard, args.size)
    written = 0
    tmp = out.with_name(out.name + ".part")
    with open(tmp, "wb") as f:
        for shard in shards(model, args, count=-(-args.size // args.shard)):  # each >= --shard
            room = args.size - written
            if len(shard) > room:
                shard = shard[: shard.rfind(b"\n", 0, room) + 1]
            f.write(shard)
            written += len(shard)
    os.replace(tmp, out)
    return written


# -- statistics ----------------------------------------------------------------------------
def distinct_ngrams(path: Path, order: int = 5) -> tuple[int, list[int]]:
    """Tokens and distinct n-grams of orders 1..order (within lines, no padding): for --stats.

    Hashes each n-gram to 64 bits; at these sizes collisions are negligible (~N^2 / 2^65).
    """
    hashed: list[list[np.ndarray]] = [[] for _ in range(order)]
    index: dict[str, int] = {}
    tokens = 0
    with open(path, encoding="utf-8") as f:
        while lines := f.readlines(1 << 24):
            words = " \x00 ".join(lines).split()  # \x00 marks line ends
            ids = np.fromiter(
                (index.setdefault(w, len(index)) for w in words), dtype=np.uint64, count=len(words)
            )
            sep = ids == index["\x00"] if "\x00" in index else np.zeros(ids.size, dtype=bool)
            tokens += int((~sep).sum())
            h = np.zeros(ids.size, dtype=np.uint64)
            valid = np.ones(ids.size, dtype=bool)
            for n in range(order):
                # h_n(p) = hash of the n-gram ending at p; valid if it crosses no line end
                if n:
                    h[n:] = h[n - 1 : -1] * np.uint64(0x9E3779B97F4A7C15) ^ ids[n:]
                    h[:n] = 0
                    valid[n:] &= ~sep[:-n]
                    valid[:n] = False
                else:
                    h = ids * np.uint64(0x9E3779B97F4A7C15) + np.uint64(1)
                    valid = ~sep
                hashed[n].append(np.unique(h[valid & ~sep]))
            for n in range(order):  # keep memory bounded: merge as we go
                if len(hashed[n]) > 8:
                    hashed[n] = [np.unique(np.concatenate(hashed[n]))]
    return tokens, [int(np.unique(np.concatenate(h)).size) for h in hashed]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=parse_size, help="bytes to write: 100M, 1G, ...")
    ap.add_argument("--out", type=Path, help="the corpus file to write")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--shard", type=parse_size, default=parse_size("16M"), help="bytes per task")
    ap.add_argument("--rare", type=int, default=5, help="source count of a word with variants")
    ap.add_argument("--variant-rate", type=float, default=0.5, help="of rare-word tokens")
    ap.add_argument("--zipf", type=float, default=1.7, help="exponent of the variant number")
    ap.add_argument(
        "--stats",
        type=parse_size,
        nargs="+",
        metavar="SIZE",
        help="write corpora of these sizes to a temporary folder and print distinct n-grams",
    )
    args = ap.parse_args()
    if not args.stats and (args.size is None or args.out is None):
        ap.error("give --size and --out, or --stats SIZE ...")
    t0 = time.perf_counter()
    model = train(source_sentences(), args.rare)
    print(
        f"model: {len(model.vocab):,} words ({int(model.rare.sum()):,} rare), "
        f"{model.tri.contexts.size:,} trigram contexts, {time.perf_counter() - t0:.1f} s",
        file=sys.stderr,
    )
    if args.stats:
        import tempfile

        print("| size | tokens | distinct 1-grams | 2-grams | 3-grams | 4-grams | 5-grams |")
        print("|---|---|---|---|---|---|---|")
        with tempfile.TemporaryDirectory() as tmp:
            for size in args.stats:
                args.size = size
                path = Path(tmp) / "corpus.txt"
                write_corpus(model, args, path)
                tokens, counts = distinct_ngrams(path)
                cells = " | ".join(f"{c:,} ({c / tokens:.3f})" for c in counts)
                print(f"| {size / 2**20:,.0f} MiB | {tokens:,} | {cells} |", flush=True)
        return
    t0 = time.perf_counter()
    written = write_corpus(model, args, args.out)
    seconds = time.perf_counter() - t0
    print(
        f"wrote {args.out}: {written:,} bytes in {seconds:.1f} s "
        f"({written / 2**20 / seconds:.1f} MiB/s, {args.workers} workers)",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
