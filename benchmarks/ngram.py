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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "plugins")]
DEFAULT_DATA = "../shared/data/tinyshakespeare/input.txt"
KENLM_BUILT = "/tmp/kenlm_dl/kenlm-0.3.0/build/bin/lmplz"


def read_sentences(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text(encoding="utf-8").split("\n")[:-1]]


def write_split(data: Path, tokens: str, out: Path) -> dict:
    from gentool.data import get_tokenizer

    text = data.read_text(encoding="utf-8")
    cut = text.find("\n", int(0.9 * len(text))) + 1 or len(text)
    split = get_tokenizer(tokens).split
    for name, part in (("train", text[:cut]), ("val", text[cut:])):
        lines = part.split("\n")[:-1] if part.endswith("\n") else part.split("\n")
        # char tokens: a space is a token, which KenLM cannot read; spell it U+2581 for everyone.
        sents = (" ".join(re.sub(r"\s", "\u2581", t) for t in split(line)) for line in lines)
        (out / f"{name}.txt").write_text("".join(s + "\n" for s in sents), encoding="utf-8")
    return {"chars": len(text), "cut": cut}


def maxrss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux: KiB


def log10_ppl(total: float, n: int) -> float:
    return 10 ** (-total / n) if n else float("nan")


# -- one case per subprocess; each returns a dict of measurements ----------------------------
def case_gentool(order: int, split: Path, sample: int, args: argparse.Namespace) -> dict:
    from gentool_ngram.lm import NGramLM

    train, val = read_sentences(split / "train.txt"), read_sentences(split / "val.txt")
    base = maxrss_mb()
    t0 = time.perf_counter()
    lm = NGramLM.estimate(train, order=order)
    train_s = time.perf_counter() - t0
    peak = maxrss_mb()
    best = math.inf
    for _ in range(3):  # scoring is fast; best of three
        t0 = time.perf_counter()
        scores = lm.score(val)
        best = min(best, time.perf_counter() - t0)
    out = {
        "train_s": train_s,
        "peak_mb": peak,
        "train_mb": peak - base,
        "ppl": scores.perplexity(include_oov=True),
        "ppl_excl": scores.perplexity(include_oov=False),
        "score_us": 1e6 * best / scores.num_tokens,
        "val_tokens": scores.num_tokens,
        "oov": scores.num_oov,
        "ngrams": list(lm.ngram_counts()),
    }
    if sample:
        s = lm.score(val[:sample])
        out["sample_ppl_excl"] = s.perplexity(include_oov=False)
    return out


def kenlm_ppl(model, lines: list[str]) -> tuple[float, float, int, int]:
    total = oov_total = 0.0
    tokens = oovs = 0
    for line in lines:
        for prob, _, oov in model.full_scores(line, bos=True, eos=True):  # words and </s>
            total += prob
            tokens += 1
            if oov:
                oov_total += prob
                oovs += 1
    return log10_ppl(total, tokens), log10_ppl(total - oov_total, tokens - oovs), tokens, oovs


def case_kenlm(order: int, split: Path, sample: int, args: argparse.Namespace) -> dict:
    import kenlm

    arpa = split / f"o{order}.arpa"
    cmd = [
        args.lmplz,
        "-o",
        str(order),
        "-S",
        "1G",
        "-T",
        str(split),
        "--discount_fallback",
        "--text",
        str(split / "train.txt"),
        "--arpa",
        str(arpa),
    ]
    timer = shutil.which("time", path="/usr/bin")
    if timer:
        cmd = [timer, "-v", "-o", str(split / "time.txt"), *cmd]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    train_s = time.perf_counter() - t0
    if timer:
        kb = re.search(
            r"Maximum resident set size \(kbytes\): (\d+)", (split / "time.txt").read_text()
        )
        peak = int(kb.group(1)) / 1024
    else:  # this process's only child is lmplz
        peak = maxrss_mb(resource.RUSAGE_CHILDREN)
    model = kenlm.Model(str(arpa))
    lines = (split / "val.txt").read_text(encoding="utf-8").split("\n")[:-1]
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        ppl, ppl_excl, tokens, oovs = kenlm_ppl(model, lines)
        best = min(best, time.perf_counter() - t0)
    out = {
        "train_s": train_s,
        "peak_mb": peak,
        "train_mb": None,
        "ppl": ppl,
        "ppl_excl": ppl_excl,
        "score_us": 1e6 * best / tokens,
        "val_tokens": tokens,
        "oov": oovs,
    }
    if sample:
        out["sample_ppl_excl"] = kenlm_ppl(model, lines[:sample])[1]
    return out


def case_nltk(order: int, split: Path, sample: int, args: argparse.Namespace) -> dict:
    from nltk.lm import KneserNeyInterpolated
    from nltk.lm.preprocessing import padded_everygram_pipeline

    train, val = read_sentences(split / "train.txt"), read_sentences(split / "val.txt")
    base = maxrss_mb()
    t0 = time.perf_counter()
    lm = KneserNeyInterpolated(order)
    lm.fit(*padded_everygram_pipeline(order, train))
    train_s = time.perf_counter() - t0
    peak = maxrss_mb()
    # Score val sentences in order, the KenLM way (each word, then </s>), until the time cap.
    total, iv_total, tokens, oovs, zeros, sents, score_s = 0.0, 0.0, 0, 0, 0, 0, 0.0
    while sents < len(val) and score_s < args.nltk_seconds:
        padded = ["<s>"] * (order - 1) + val[sents] + ["</s>"]
        t0 = time.perf_counter()
        probs = [
            lm.score(padded[i], padded[i - order + 1 : i]) for i in range(order - 1, len(padded))
        ]
        score_s += time.perf_counter() - t0
        for w, p in zip(padded[order - 1 :], probs, strict=True):
            tokens += 1
            zeros += p == 0
            total += math.log10(p) if p > 0 else -math.inf
            if w in lm.vocab:
                iv_total += math.log10(p)
            else:
                oovs += 1  # nltk's KN gives an OOV probability 0 (its continuation count is 0)
        sents += 1
    return {
        "train_s": train_s,
        "peak_mb": peak,
        "train_mb": peak - base,
        "ppl": log10_ppl(total, tokens),
        "ppl_excl": log10_ppl(iv_total, tokens - oovs),
        "score_us": 1e6 * score_s / tokens,
        "val_tokens": tokens,
        "oov": oovs,
        "zero_probs": zeros,
        "sample_sents": sents,
    }


CASES = {"gentool": case_gentool, "kenlm": case_kenlm, "nltk": case_nltk}


def run_case(system: str, order: int, split: Path, sample: int, args: argparse.Namespace) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--case",
        system,
        "--orders",
        str(order),
        "--split",
        str(split),
        "--sample",
        str(sample),
        "--nltk-seconds",
        str(args.nltk_seconds),
        "--lmplz",
        args.lmplz,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        print(f"{system} order {order} failed:\n{done.stderr[-3000:]}", file=sys.stderr)
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def report(results: list[dict], orders: list[int], train_tokens: int) -> None:
    head = [
        "system",
        "order",
        "train s",
        "train tok/s",
        "peak MB",
        "+train MB",
        "ppl (incl OOV)",
        "ppl (excl OOV)",
        "score µs/token",
        "scored tokens",
    ]
    rows = [head]
    for r in results:
        if "error" in r:
            rows.append([r["system"], str(r["order"]), "error: " + r["error"][:60]])
            continue
        rows.append(
            [
                r["system"],
                str(r["order"]),
                fmt(r["train_s"], ".2f"),
                fmt(train_tokens / r["train_s"], ",.0f"),
                fmt(r["peak_mb"], ",.0f"),
                fmt(r["train_mb"], ",.0f"),
                fmt(r["ppl"], ".3f"),
                fmt(r["ppl_excl"], ".3f"),
                fmt(r["score_us"], ",.2f"),
                fmt(r["val_tokens"], ",d"),
            ]
        )
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(len(head))]
    for row in rows:
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=False))
            ).rstrip()
        )
    print()
    for order in orders:
        get = {r["system"]: r for r in results if r["order"] == order and "error" not in r}
        g, k, n = get.get("gentool"), get.get("kenlm"), get.get("nltk")
        if g and k:
            d_in, d_ex = g["ppl"] / k["ppl"] - 1, g["ppl_excl"] / k["ppl_excl"] - 1
            print(
                f"order {order}: gentool/KenLM ppl incl OOV {1 + d_in:.5f} ({d_in:+.3%}), "
                f"excl OOV {1 + d_ex:.5f} ({d_ex:+.3%}); train time gentool/KenLM "
                f"{g['train_s'] / k['train_s']:.2f}x; scoring time gentool/KenLM "
                f"{g['score_us'] / k['score_us']:.2f}x"
            )
        if g and n:
            sample = f"first {n['sample_sents']:,} val sentences, {n['val_tokens']:,} tokens"
            kppl = f", KenLM {k['sample_ppl_excl']:.2f}" if k else ""
            print(
                f"order {order}: nltk sample ({sample}): ppl excl OOV nltk {n['ppl_excl']:.2f}, "
                f"gentool {g['sample_ppl_excl']:.2f}{kppl}; gentool speedup over nltk: "
                f"scoring {n['score_us'] / g['score_us']:,.0f}x, "
                f"training {n['train_s'] / g['train_s']:.1f}x"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=DEFAULT_DATA, help="text file; relative to the repo root")
    ap.add_argument("--orders", type=int, nargs="+", default=[3, 5])
    ap.add_argument("--tokens", choices=["whitespace", "word", "char"], default="whitespace")
    ap.add_argument(
        "--nltk-seconds",
        type=float,
        default=60.0,
        help="cap on nltk scoring time per order (0 skips nltk)",
    )
    default_lmplz = shutil.which("lmplz") or str(
        Path(os.environ.get("KENLM_BIN", "/nonexistent"), "lmplz")
    )
    ap.add_argument("--lmplz", default=default_lmplz, help="KenLM's lmplz binary")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    ap.add_argument("--case", choices=list(CASES), help=argparse.SUPPRESS)
    ap.add_argument("--split", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--sample", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:  # a child: one measurement, one JSON line
        print(json.dumps(CASES[args.case](args.orders[0], args.split, args.sample, args)))
        return

    import numpy

    data = (REPO / args.data).resolve()
    have_kenlm = os.access(args.lmplz, os.X_OK)
    with tempfile.TemporaryDirectory(prefix="ngram_bench_") as tmp:
        split = Path(tmp)
        info = write_split(data, args.tokens, split)
        train, val = read_sentences(split / "train.txt"), read_sentences(split / "val.txt")
        train_tokens = sum(map(len, train))
        print(
            f"data: {data} ({info['chars']:,} chars), tokens: {args.tokens}; train = chars "
            f"[0, {info['cut']:,}) = {len(train):,} lines, {train_tokens:,} tokens; held out = "
            f"{len(val):,} lines, {sum(map(len, val)) + len(val):,} tokens incl. </s>"
        )
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()}, "
            f"python {platform.python_version()}, numpy {numpy.__version__}"
        )
        print(f"lmplz: {args.lmplz if have_kenlm else 'not found (KenLM rows skipped)'}\n")
        results = []
        for order in args.orders:
            sample = 0
            if args.nltk_seconds > 0:
                results.append(
                    {"system": "nltk", "order": order, **run_case("nltk", order, split, 0, args)}
                )
                sample = results[-1].get("sample_sents", 0)
            for system in ("gentool", "kenlm") if have_kenlm else ("gentool",):
                results.append(
                    {
                        "system": system,
                        "order": order,
                        **run_case(system, order, split, sample, args),
                    }
                )
    order_of = {"gentool": 0, "kenlm": 1, "nltk": 2}
    results.sort(key=lambda r: (r["order"], order_of[r["system"]]))
    report(results, args.orders, train_tokens)
    print(
        "\npeak MB: the process's peak RSS (lmplz: /usr/bin/time -v); +train MB: its growth "
        "during training, over the baseline after imports and reading the data. nltk rows: "
        "perplexity and µs/token on the time-capped sample only."
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"data": str(data), "tokens": args.tokens, **info, "results": results}, indent=1
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
