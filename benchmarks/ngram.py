"""Compare gentool's n-gram model with KenLM and nltk.lm on real text; prints a table.

    python benchmarks/ngram.py [--orders 3 5] [--tokens whitespace] [--json out.json]

Split: nanoGPT's, the first 90% of the file's characters train and the rest is held out, except
that the cut at character int(0.9 * len) moves forward to the end of the line it falls in, so no
line is split. Sentences are lines (blank lines included, as lmplz and query count them); tokens
are what --tokens gives, written space-separated to train.txt/val.txt, which is what all three
systems read. Each (system, order) runs in a fresh subprocess (this script with --case), so its
peak RSS is its own. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "plugins")]
DEFAULT_DATA = "../shared/data/tinyshakespeare/input.txt"
KEYS = ["train_s", "peak_mb", "train_mb", "ppl", "ppl_excl", "score_us", "val_tokens", "oov"]


def read_sentences(path: str) -> list[list[str]]:
    return [line.split() for line in Path(path).read_text(encoding="utf-8").split("\n")[:-1]]


def write_split(data: Path, tokens: str, out: Path) -> int:
    from gentool.data import get_tokenizer

    text = data.read_text(encoding="utf-8")
    cut = text.find("\n", int(0.9 * len(text))) + 1 or len(text)
    split = get_tokenizer(tokens).split
    for name, part in (("train", text[:cut]), ("val", text[cut:])):
        lines = part.split("\n")[:-1] if part.endswith("\n") else part.split("\n")
        # char tokens: a space is a token, which KenLM cannot read; spell it U+2581 for everyone.
        sents = (" ".join(re.sub(r"\s", "\u2581", t) for t in split(line)) for line in lines)
        (out / f"{name}.txt").write_text("".join(s + "\n" for s in sents), encoding="utf-8")
    return cut


def maxrss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux: KiB


def log10_ppl(total: float, n: int) -> float:
    return 10 ** (-total / n) if n else math.nan


def fastest(runs: int, fn: Callable, *args: Any, **kwargs: Any) -> tuple[float, Any, float]:
    """The fastest of `runs` runs in seconds, the first run's value, peak RSS after it (MB)."""
    seconds = []
    for _ in range(runs):
        t0 = time.perf_counter()
        value = fn(*args, **kwargs)
        seconds.append(time.perf_counter() - t0)
        if len(seconds) == 1:
            first, peak = value, maxrss_mb()
        del value
    return min(seconds), first, peak


# -- one case per subprocess, run in the split directory; each returns its measurements -------
def case_gentool(order: int, sample: int, args: argparse.Namespace) -> dict:
    from gentool_ngram.lm import NGramLM

    train, val = read_sentences("train.txt"), read_sentences("val.txt")
    base = maxrss_mb()
    train_s, lm, peak = fastest(3, NGramLM.estimate, train, order)
    score_s, sc, _ = fastest(10, lm.score, val)
    ppl, ppl_excl = sc.perplexity(include_oov=True), sc.perplexity(include_oov=False)
    sample_ppl = lm.score(val[:sample]).perplexity(include_oov=False) if sample else None
    row = (train_s, peak, peak - base, ppl, ppl_excl, 1e6 * score_s / sc.num_tokens, sc.num_tokens)
    out = dict(zip(KEYS, (*row, sc.num_oov), strict=True), ngrams=list(lm.ngram_counts()))
    return out | {"sample_ppl_excl": sample_ppl}


def kenlm_ppl(model: Any, lines: list[str]) -> tuple[float, float, int, int]:
    """Perplexity including and excluding OOVs, tokens, OOVs: what KenLM's `query` prints."""
    total = oov_total = 0.0
    tokens = oovs = 0
    for line in lines:
        for prob, _, oov in model.full_scores(line, bos=True, eos=True):  # words and </s>
            total, tokens = total + prob, tokens + 1
            if oov:
                oov_total, oovs = oov_total + prob, oovs + 1
    return log10_ppl(total, tokens), log10_ppl(total - oov_total, tokens - oovs), tokens, oovs


def case_kenlm(order: int, sample: int, args: argparse.Namespace) -> dict:
    import kenlm

    arpa = f"o{order}.arpa"
    opts = f"-o {order} -S 1G -T . --discount_fallback --text train.txt --arpa {arpa}"
    timer = shutil.which("time", path="/usr/bin")
    cmd = [*([timer, "-v", "-o", "time.txt"] if timer else []), args.lmplz, *opts.split()]
    train_s = fastest(3, subprocess.run, cmd, check=True, capture_output=True)[0]
    if timer:
        peak = int(re.findall(r"Maximum resident.*: (\d+)", Path("time.txt").read_text())[0]) / 1024
    else:  # this process's only child is lmplz
        peak = maxrss_mb(resource.RUSAGE_CHILDREN)
    with open(arpa, encoding="utf-8") as f:  # the \data\ header: "ngram 1=1234"
        ngrams = [int(m[1]) for m in re.finditer(r"^ngram \d+=(\d+)$", f.read(4096), re.M)]
    model = kenlm.Model(arpa)
    lines = Path("val.txt").read_text(encoding="utf-8").split("\n")[:-1]
    score_s, (ppl, ppl_excl, tokens, oovs), _ = fastest(10, kenlm_ppl, model, lines)
    sample_ppl = kenlm_ppl(model, lines[:sample])[1] if sample else None
    row = (train_s, peak, None, ppl, ppl_excl, 1e6 * score_s / tokens, tokens, oovs)
    return dict(zip(KEYS, row, strict=True), ngrams=ngrams, sample_ppl_excl=sample_ppl)


def case_nltk(order: int, sample: int, args: argparse.Namespace) -> dict:
    from nltk.lm import KneserNeyInterpolated
    from nltk.lm.preprocessing import padded_everygram_pipeline

    train, val = read_sentences("train.txt"), read_sentences("val.txt")
    base = maxrss_mb()
    t0 = time.perf_counter()
    lm = KneserNeyInterpolated(order)
    lm.fit(*padded_everygram_pipeline(order, train))
    train_s, peak = time.perf_counter() - t0, maxrss_mb()
    # Score val sentences in order, the KenLM way (each word, then </s>), until the time cap.
    total = iv_total = score_s = 0.0
    tokens = oovs = sents = 0
    while sents < len(val) and score_s < args.nltk_seconds:
        padded = ["<s>"] * (order - 1) + val[sents] + ["</s>"]
        t0 = time.perf_counter()
        probs = [
            lm.score(padded[i], padded[i - order + 1 : i]) for i in range(order - 1, len(padded))
        ]
        score_s += time.perf_counter() - t0
        for word, p in zip(padded[order - 1 :], probs, strict=True):
            logp = math.log10(p) if p > 0 else -math.inf  # nltk's KN gives an OOV p = 0
            total, tokens = total + logp, tokens + 1
            if word in lm.vocab:
                iv_total += logp
            else:
                oovs += 1
        sents += 1
    ppl, ppl_excl = log10_ppl(total, tokens), log10_ppl(iv_total, tokens - oovs)
    row = (train_s, peak, peak - base, ppl, ppl_excl, 1e6 * score_s / tokens, tokens, oovs)
    return dict(zip(KEYS, row, strict=True), sample_sents=sents)


CASES = {"gentool": case_gentool, "kenlm": case_kenlm, "nltk": case_nltk}


def run_case(system: str, order: int, split: Path, sample: int, args: argparse.Namespace) -> dict:
    opts = f"--case {system} --orders {order} --sample {sample} --nltk-seconds {args.nltk_seconds}"
    cmd = [sys.executable, str(Path(__file__).resolve()), *opts.split(), "--lmplz", args.lmplz]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=split)
    out = {"system": system, "order": order}
    if done.returncode:
        print(f"{system} order {order} failed:\n{done.stderr[-3000:]}", file=sys.stderr)
        return out | {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return out | json.loads(done.stdout.strip().splitlines()[-1])


def report(results: list[dict], train_tokens: int) -> None:
    head = "system|order|train s|train tok/s|peak MB|+train MB|ppl (incl OOV)|ppl (excl OOV)"
    rows = [(head + "|score µs/token|scored tokens|OOV").split("|")]
    specs = [".2f", ",.0f", ",.0f", ",.0f", ".3f", ".3f", ",.2f", ",d", ",d"]
    for r in results:
        if "error" not in r:
            values = [r["train_s"], train_tokens / r["train_s"], *(r[k] for k in KEYS[1:])]
            cells = ["-" if v is None else format(v, f) for v, f in zip(values, specs, strict=True)]
            rows.append([r["system"], str(r["order"]), *cells])
    widths = [max(map(len, column)) for column in zip(*rows, strict=True)]
    for row in rows:
        cells = [c.rjust(w) for c, w in zip(row, widths, strict=True)]
        print("  ".join([row[0].ljust(widths[0]), *cells[1:]]))
    for r in results:
        if "error" in r:
            print(f"{r['system']} order {r['order']}: {r['error']}")
    print()
    for order in sorted({r["order"] for r in results}):
        get = {r["system"]: r for r in results if r["order"] == order and "error" not in r}
        g, k, n = get.get("gentool"), get.get("kenlm"), get.get("nltk")
        if g and k:
            r_in, r_ex = g["ppl"] / k["ppl"], g["ppl_excl"] / k["ppl_excl"]
            same = "same" if g["ngrams"] == k["ngrams"] else f"{g['ngrams']} vs {k['ngrams']}"
            print(
                f"order {order}: gentool/KenLM: ppl incl OOV {r_in:.6f}, excl OOV {r_ex:.6f}; "
                f"train time {g['train_s'] / k['train_s']:.2f}x; score time "
                f"{g['score_us'] / k['score_us']:.2f}x; n-gram counts: {same}"
            )
        if g and n:
            kppl = f", KenLM {k['sample_ppl_excl']:.2f}" if k else ""
            print(
                f"order {order}: on nltk's sample (first {n['sample_sents']:,} held-out lines, "
                f"{n['val_tokens']:,} tokens) ppl excl OOV: nltk {n['ppl_excl']:.2f}, gentool "
                f"{g['sample_ppl_excl']:.2f}{kppl}; gentool speedup over nltk: scoring "
                f"{n['score_us'] / g['score_us']:,.0f}x, training "
                f"{n['train_s'] / g['train_s']:.1f}x"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=DEFAULT_DATA, help="text file; relative to the repo root")
    ap.add_argument("--orders", type=int, nargs="+", default=[3, 5])
    ap.add_argument("--tokens", choices=["whitespace", "word", "char"], default="whitespace")
    ap.add_argument("--nltk-seconds", type=float, default=60.0, help="nltk scoring cap; 0: skip")
    kenlm_bin = Path(os.environ.get("KENLM_BIN", "/nonexistent"), "lmplz")
    ap.add_argument("--lmplz", default=shutil.which("lmplz") or str(kenlm_bin))
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    ap.add_argument("--case", choices=list(CASES), help=argparse.SUPPRESS)
    ap.add_argument("--sample", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:  # a child: one measurement, printed as one JSON line
        print(json.dumps(CASES[args.case](args.orders[0], args.sample, args)))
        return

    import numpy

    data, have_kenlm = (REPO / args.data).resolve(), os.access(args.lmplz, os.X_OK)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()}, "
        f"python {platform.python_version()}, numpy {numpy.__version__}, nltk {version('nltk')}"
    )
    print(f"lmplz: {args.lmplz if have_kenlm else 'not found (KenLM rows skipped)'}")
    results = []
    with tempfile.TemporaryDirectory(prefix="ngram_bench_") as tmp:
        split = Path(tmp)
        cut = write_split(data, args.tokens, split)
        train, val = read_sentences(f"{tmp}/train.txt"), read_sentences(f"{tmp}/val.txt")
        train_tokens = sum(map(len, train))
        print(
            f"data: {data}, tokens: {args.tokens}; train = characters [0, {cut:,}): "
            f"{len(train):,} lines, {train_tokens:,} tokens; held out: {len(val):,} lines, "
            f"{sum(map(len, val)) + len(val):,} tokens incl. </s>\n"
        )
        for order in args.orders:
            sample = 0
            if args.nltk_seconds > 0:
                results.append(run_case("nltk", order, split, 0, args))
                sample = results[-1].get("sample_sents", 0)
            for system in ("gentool", "kenlm") if have_kenlm else ("gentool",):
                results.append(run_case(system, order, split, sample, args))
    rank = {"gentool": 0, "kenlm": 1, "nltk": 2}
    results.sort(key=lambda r: (r["order"], rank[r["system"]]))
    report(results, train_tokens)
    print(
        "\ntrain s: fastest of 3 runs (nltk: 1 run); KenLM's is the whole lmplz process, ARPA "
        "writing included.\nscore: fastest of 10 passes over the held-out text (KenLM: its python "
        "module's full_scores).\npeak MB: the process's peak RSS (lmplz: /usr/bin/time -v); "
        "+train MB: its growth in training over the\nbaseline after imports and reading the data. "
        "nltk rows: perplexity and µs/token on the time-capped sample only."
    )
    if args.json:
        out = {"data": str(data), "tokens": args.tokens, "cut": cut, "results": results}
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
