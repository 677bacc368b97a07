"""Reference statistics of real music: the figures generated pieces are judged against.

Reads the bach_chorales train and val lists, tokenizes with gentool's REMI tokenizer, and
prints per set: pieces, tokens, the statistics of gentool.music.stats (mean ± std over
pieces), the pitch-class histogram distance to the training set, and copying (the longest
run of tokens shared with any training piece). As a second reference for copying, the
first 32 training pieces against the other 251.

    python benchmarks/music_stats.py [--data DIR] [--no-programs] [--json FILE]
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
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
