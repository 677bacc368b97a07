"""Reference statistics of real music, and the music models compared against them.

Reads the bach_chorales train and val lists, tokenizes with gentool's REMI tokenizer, and
prints per set: pieces, tokens, the statistics of gentool.music.stats (mean ± std over
pieces), the pitch-class histogram distance to the training set, and copying (the longest
run of tokens shared with any training piece). As a second reference for copying, the
first 32 training pieces against the other 251.

With ``--runs``, a second table compares trained music runs (any family) on the val
pieces, through ``gentool.api.evaluate`` as ``gentool evaluate`` does: the token perplexity
where the kind scores tokens (the same REMI tokens for ngram, rnn and transformer; n/a for
the gan), and the statistics of ``-n`` generated pieces of ``--bars`` bars (seeded),
beside the val pieces' own (the reference row), with each run's training seconds from its
gentool.json.

    python benchmarks/music_stats.py [--data DIR] [--no-programs] [--json FILE]
    python benchmarks/music_stats.py --runs ngram5=runs/ng5 gan=runs/gan [-n 16 --bars 16]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from gentool.data.music import MusicTokenizer, MusicTokenizerConfig, read_music
from gentool.music.stats import CopyIndex, copying, histogram_distance, set_stats

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared/data/bach_chorales"))
    parser.add_argument(
        "--no-programs", action="store_true", help="merge all tracks (no Program tokens)"
    )
    parser.add_argument("--json", help="also write the figures as JSON")
    parser.add_argument(
        "--runs", nargs="+", metavar="LABEL=RUN", help="music runs to compare on the val pieces"
    )
    parser.add_argument("-n", type=int, default=16, help="pieces generated per run")
    parser.add_argument("--bars", type=int, default=16, help="bars per generated piece")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.runs:
        compare_runs(args)
        return
    data = Path(args.data)
    started = time.perf_counter()
    train = read_music([data / "train.txt"])
    val = read_music([data / "val.txt"])
    tokenizer = MusicTokenizer(MusicTokenizerConfig(programs=not args.no_programs))
    train_ids = [tokenizer.encode(s) for s in train.scores]
    val_ids = [tokenizer.encode(s) for s in val.scores]
    read_seconds = time.perf_counter() - started

    started = time.perf_counter()
    index = CopyIndex(train_ids)
    build_seconds = time.perf_counter() - started
    train_stats = set_stats(train.scores)
    rows = {}
    for name, scores, ids, copy in (
        ("val", val.scores, val_ids, copying(val_ids, index)),
        ("train", train.scores, train_ids, None),
        ("train[:32] vs train[32:]", train.scores[:32], train_ids[:32],
         copying(train_ids[:32], CopyIndex(train_ids[32:]))),
    ):  # fmt: skip
        stats = set_stats(scores)
        stats["tokens_per_piece"] = sum(map(len, ids)) / len(ids)
        stats["pc_distance_to_train"] = histogram_distance(
            stats["pitch_class_histogram"], train_stats["pitch_class_histogram"]
        )
        stats["copying"] = copy
        rows[name] = stats

    print(
        f"bach_chorales, REMI {'with' if not args.no_programs else 'without'} Program tokens, "
        f"vocabulary {len(tokenizer)}; {platform.processor() or platform.machine()}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')} (numpy/Python only)"
    )
    print(f"read + tokenize {len(train) + len(val)} files: {read_seconds:.2f} s; "
          f"copy index of {sum(map(len, train_ids)):,} tokens: {build_seconds:.2f} s")  # fmt: skip
    fields = [
        ("pieces", "pieces", "{:.0f}"),
        ("tokens/piece", "tokens_per_piece", "{:.0f}"),
        ("bars", "bars", "{:.1f}"),
        ("pitch range", "pitch_range", "{:.1f}"),
        ("polyphony", "polyphony", "{:.2f}"),
        ("notes/bar", "notes_per_bar", "{:.1f}"),
        ("in key", "in_key", "{:.3f}"),
        ("empty bars", "empty_bars", "{:.3f}"),
        ("minor share", "minor_share", "{:.2f}"),
        ("PC hist. JS to train", "pc_distance_to_train", "{:.4f}"),
    ]
    print("| set | " + " | ".join(f[0] for f in fields) + " | copy mean / median / max |")
    print("|---" * (len(fields) + 2) + "|")
    for name, stats in rows.items():
        cells = []
        for _, key, fmt in fields:
            cell = fmt.format(stats[key])
            if f"{key}_std" in stats:
                cell += " ± " + fmt.format(stats[f"{key}_std"])
            cells.append(cell)
        copy = stats["copying"]
        copy_cell = (
            f"{copy['mean']:.1f} / {copy['median']:.0f} / {copy['max']:.0f}" if copy else "—"
        )
        print(f"| {name} | " + " | ".join(cells) + f" | {copy_cell} |")
    print("pitch-class histogram of val (C..B):", rows["val"]["pitch_class_histogram"])
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


def compare_runs(args: argparse.Namespace) -> None:
    """One table: the val pieces' statistics, then each run's on the same pieces."""
    import json as jsonlib

    from gentool import api

    val = Path(args.data) / "val.txt"
    reference = None
    rows = {}
    for item in args.runs:
        label, _, run = item.partition("=")
        started = time.perf_counter()
        m = api.evaluate(run, [val], num_samples=args.n, seed=args.seed, bars=args.bars)
        meta = jsonlib.loads((Path(run) / "gentool.json").read_text())
        m["eval_seconds"] = time.perf_counter() - started
        m["train_seconds"] = meta["metrics"].get("train_seconds")
        m["kind"] = f"{meta['family']}/{meta['kind']}"
        rows[label] = m
        reference = m
    assert reference is not None
    print(
        f"bach_chorales val ({reference['heldout_pieces']} pieces); {args.n} pieces of "
        f"{args.bars} bars generated per run, seed {args.seed}; "
        f"{platform.processor() or platform.machine()}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
    )
    head = ["run", "train s", "perplexity", "PC JS to val", "pitch range", "polyphony",
            "notes/bar", "in key", "empty bars", "copying mean"]  # fmt: skip
    print("| " + " | ".join(head) + " |")
    print("|---" * len(head) + "|")

    def cells(m: dict, prefix: str) -> list[str]:
        def f(key: str, fmt: str) -> str:
            v = m.get(prefix + key)
            return fmt.format(v) if v is not None else "—"

        columns = (
            ("pitch_range", "{:.1f}"),
            ("polyphony", "{:.2f}"),
            ("notes_per_bar", "{:.1f}"),
            ("in_key", "{:.3f}"),
            ("empty_bars", "{:.3f}"),
            ("copying_mean", "{:.1f}"),
        )
        return [f(key, fmt) for key, fmt in columns]

    own = cells(reference, "heldout_")  # (every run saw the same val pieces)
    print("| val pieces (reference) | — | — | 0 | " + " | ".join(own) + " |")
    for label, m in rows.items():
        ppl = f"{m['perplexity']:.2f}" if m.get("perplexity") is not None else "n/a"
        train = f"{m['train_seconds']:.0f}" if m.get("train_seconds") is not None else "—"
        row = [f"{label} ({m['kind']})", train, ppl, f"{m['pitch_class_distance']:.4f}"]
        print("| " + " | ".join(row + cells(m, "")) + " |")
    if args.json:
        Path(args.json).write_text(jsonlib.dumps(rows, indent=2, default=str))


if __name__ == "__main__":
    main()
