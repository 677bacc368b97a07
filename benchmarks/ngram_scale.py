"""`gentool train ngram` against KenLM's `lmplz` on large corpora: time, memory, perplexity.

    flock /tmp/gentool-heavy.lock python benchmarks/ngram_scale.py --sizes 100M 1G
    flock /tmp/gentool-heavy.lock python benchmarks/ngram_scale.py --sizes tinyshakespeare
    python benchmarks/ngram_scale.py --startup          # what a command pays before it works

Each size is a corpus made by benchmarks/make_corpus.py (seed 0; kept in --corpora and made
there when missing), held-out text the same way with seed 1. Both systems get the same file,
order 5, whitespace tokens (what lmplz reads), the same memory budget:

    gentool train ngram --data F --set model.order=5 --set model.tokens=whitespace --memory M
    lmplz -o 5 -S M -T <work> --discount_fallback --text F --arpa <work>/lmplz.arpa

each the whole process under /usr/bin/time -v (wall time, peak RSS, CPU time), one run each
(these take minutes). Held-out perplexity: `gentool evaluate RUN --data heldout --json`
against KenLM's own scorer (the kenlm module's full_scores, as `query` sums it) on lmplz's
ARPA, cut down first to the n-grams the held-out text can use (every n-gram that occurs in
a held-out sentence, and all unigrams): a 1 GB corpus gives a 15 GB ARPA that would need
several GB to load, while scoring reads only those n-grams, so the perplexity is the same.
The work folder (--work) holds the runs, lmplz's ARPA and both systems' temporary files;
each is deleted once measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "benchmarks")]
from ngram import kenlm_ppl  # noqa: E402  (the KenLM side of benchmarks/ngram.py)

TINYSHAKESPEARE = REPO.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"
ORDER = 5


def lscpu() -> dict[str, str]:
    found: dict[str, str] = {}
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return found
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("Model name", "CPU(s)", "Thread(s) per core", "Flags"):
            found[key.strip()] = value.strip()
    return found


def timed(command: list[str], log: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``command`` under /usr/bin/time -v; wall s, peak RSS MB, CPU s, its stderr."""
    report = log.with_suffix(".time")
    full = ["/usr/bin/time", "-v", "-o", str(report), *command]
    started = time.perf_counter()
    done = subprocess.run(full, capture_output=True, text=True, env={**os.environ, **(env or {})})
    wall = time.perf_counter() - started
    log.write_text(done.stdout + done.stderr)
    if done.returncode:
        sys.exit(f"failed ({done.returncode}): {' '.join(command)}\n{done.stderr[-3000:]}")
    text = report.read_text()

    def field(name: str) -> float:
        return float(re.search(rf"{re.escape(name)}[^:]*: ([\d.]+)", text)[1])  # type: ignore[index]

    cpu = field("User time") + field("System time")
    return {
        "wall_s": round(wall, 2),
        "peak_mb": round(field("Maximum resident set size") / 1024),
        "cpu_s": round(cpu, 1),
        "stdout": done.stdout,
        "stderr": done.stderr,
    }


def corpus(size: str, seed: int, folder: Path) -> Path:
    """The generated corpus of ``size`` (made with make_corpus.py if missing)."""
    if size == "tinyshakespeare":
        return split_tinyshakespeare(folder)[0]
    path = folder / (f"en-{size}.txt" if seed == 0 else f"en-heldout-{size}-seed{seed}.txt")
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        make = [sys.executable, str(REPO / "benchmarks" / "make_corpus.py")]
        subprocess.run([*make, "--size", size, "--out", str(path), "--seed", str(seed)], check=True)
    return path


def held_out(size: str, folder: Path) -> Path:
    if size == "tinyshakespeare":
        return split_tinyshakespeare(folder)[1]
    return corpus("1M", 1, folder)


def split_tinyshakespeare(folder: Path) -> tuple[Path, Path]:
    """benchmarks/ngram.py's split: the first 90% of the characters (to a line end), the rest."""
    text = TINYSHAKESPEARE.read_text(encoding="utf-8")
    cut = text.find("\n", int(0.9 * len(text))) + 1
    parts = folder / "tinyshakespeare-train.txt", folder / "tinyshakespeare-heldout.txt"
    for path, part in zip(parts, (text[:cut], text[cut:]), strict=True):
        path.write_text(part, encoding="utf-8")
    return parts


# -- gentool -----------------------------------------------------------------------------------
def run_gentool(data: Path, heldout: Path, memory: str, work: Path) -> dict[str, Any]:
    run = work / "gentool-run"
    gentool = [sys.executable, "-m", "gentool"]
    opts = f"--set model.order={ORDER} --set model.tokens=whitespace --memory {memory} --force"
    train = [*gentool, "train", "ngram", "--data", str(data), "--out", str(run), *opts.split()]
    result = timed([*train, "--json"], work / "gentool-train.log", env={"OMP_NUM_THREADS": "1"})
    stages = re.search(r"; (tokenize .*? s); memory", result["stderr"])
    metrics = json.loads(result["stdout"])["metrics"]
    evaluate = subprocess.run(
        [*gentool, "evaluate", str(run), "--data", str(heldout), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    scores = json.loads(evaluate.stdout)["metrics"]
    model_bytes = (run / "model.safetensors").stat().st_size
    shutil.rmtree(run)
    return {
        **{k: result[k] for k in ("wall_s", "peak_mb", "cpu_s")},
        "stages": stages[1] if stages else "",
        "ngrams": metrics["ngrams"],
        "tokens": metrics["tokens"],
        "model_mb": round(model_bytes / 2**20),
        "ppl": scores["perplexity"],
        "ppl_excl": scores["perplexity_excluding_oov"],
    }


# -- lmplz ---------------------------------------------------------------------------------------
def needed_ngrams(heldout: Path) -> set[bytes]:
    """Every n-gram (n >= 2) of the held-out sentences as KenLM scores them, <s> first."""
    needed: set[bytes] = set()
    for line in heldout.read_bytes().split(b"\n")[:-1]:
        words = [b"<s>", *line.split(), b"</s>"]
        for n in range(2, ORDER + 1):
            needed.update(b" ".join(words[i : i + n]) for i in range(len(words) - n + 1))
    return needed


def cut_arpa(arpa: Path, needed: set[bytes], out: Path) -> list[int]:
    """Write the ARPA's unigrams and the n-grams in ``needed`` to ``out``; the full
    model's n-gram counts. Every prefix and suffix of a kept n-gram is kept (they are
    n-grams of the same sentence), so the cut model scores the held-out text the same."""
    counts: list[int] = []
    kept: list[list[bytes]] = []
    order = 0
    with open(arpa, "rb") as f:
        for line in f:
            if line.startswith(b"ngram "):
                counts.append(int(line.split(b"=")[1]))
            elif line.startswith(b"\\") and line.rstrip().endswith(b"-grams:"):
                order = int(line[1 : line.index(b"-")])
                kept.append([])
            elif (
                order
                and line.strip()
                and not line.startswith(b"\\")
                and (order == 1 or line.split(b"\t", 2)[1].rstrip(b"\n") in needed)
            ):
                kept[order - 1].append(line)
    with open(out, "wb") as f:
        f.write(b"\\data\\\n")
        f.writelines(b"ngram %d=%d\n" % (n, len(lines)) for n, lines in enumerate(kept, 1))
        for n, lines in enumerate(kept, 1):
            f.write(b"\n\\%d-grams:\n" % n)
            f.writelines(lines)
        f.write(b"\n\\end\\\n")
    return counts


def run_lmplz(lmplz: str, data: Path, heldout: Path, memory: str, work: Path) -> dict[str, Any]:
    import kenlm

    arpa = work / "lmplz.arpa"
    command = [lmplz, "-o", str(ORDER), "-S", memory, "-T", str(work), "--discount_fallback"]
    result = timed([*command, "--text", str(data), "--arpa", str(arpa)], work / "lmplz.log")
    arpa_bytes = arpa.stat().st_size
    started = time.perf_counter()
    small = work / "lmplz-heldout.arpa"
    counts = cut_arpa(arpa, needed_ngrams(heldout), small)
    arpa.unlink()
    lines = heldout.read_text(encoding="utf-8").split("\n")[:-1]
    ppl, ppl_excl, _, _ = kenlm_ppl(kenlm.Model(str(small)), lines)
    small.unlink()
    return {
        **{k: result[k] for k in ("wall_s", "peak_mb", "cpu_s")},
        "ngrams": counts,
        "model_mb": round(arpa_bytes / 2**20),
        "ppl": ppl,
        "ppl_excl": ppl_excl,
        "cut_s": round(time.perf_counter() - started, 1),
    }


# -- start-up ----------------------------------------------------------------------------------
def startup(work: Path) -> None:
    """Wall time of what every command pays, and the imports, with bytecode caches (as an
    installed package has them; PYTHONDONTWRITEBYTECODE would add compiling to each run)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    gentool = [sys.executable, "-m", "gentool"]
    cases = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import numpy'": [sys.executable, "-c", "import numpy"],
        "gentool --version": [*gentool, "--version"],
        "gentool --help (loads every plugin)": [*gentool, "--help"],
        "gentool train ngram (the embedded sample)": [
            *gentool,
            "train",
            "ngram",
            "--out",
            str(work / "startup-run"),
            "--force",
        ],
        "gentool train ngram --data tinyshakespeare": [
            *gentool,
            "train",
            "ngram",
            "--data",
            str(TINYSHAKESPEARE),
            "--out",
            str(work / "startup-tiny"),
            "--force",
        ],
    }
    print("| command | wall s (best of 5) |\n|---|---|")
    for name, command in cases.items():
        best = min(_wall(command, env) for _ in range(5))
        print(f"| `{name}` | {best:.3f} |")
    imports = subprocess.run(
        cases["gentool train ngram (the embedded sample)"],
        capture_output=True,
        text=True,
        env={**env, "PYTHONPROFILEIMPORTTIME": "1"},
    ).stderr
    rows = [line.split("|") for line in imports.splitlines() if line.startswith("import time:")]
    modules = [(int(r[0].split(":")[1]), int(r[1]), r[2].rstrip()) for r in rows[1:]]
    top = [(cumulative, name) for _, cumulative, name in modules if not name.startswith("  ")]
    print("\nimports of `gentool train ngram` (top level, cumulative µs):")
    for micros, name in sorted(top, reverse=True)[:10]:
        print(f"  {micros:>8,} {name.strip()}")
    print(f"  {sum(m for m, _ in top):>8,} all")
    ours = [(own, name.strip()) for own, _, name in modules if name.strip().startswith("gentool")]
    print(f"  {sum(m for m, _ in ours):>8,} gentool's own modules (self time); the largest:")
    for micros, name in sorted(ours, reverse=True)[:6]:
        print(f"  {micros:>8,}   {name}")


def _wall(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, capture_output=True, env=env, check=True)
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", nargs="+", default=["100M", "1G"], help="100M, 1G, tinyshakespeare")
    ap.add_argument("--memory", default="2G", help="both systems' budget (lmplz -S)")
    ap.add_argument("--corpora", type=Path, default=Path("/work/corpora"))
    ap.add_argument(
        "--work", type=Path, help="scratch folder [default: a temporary one in --corpora]"
    )
    kenlm_bin = Path(os.environ.get("KENLM_BIN", "/nonexistent"), "lmplz")
    ap.add_argument("--lmplz", default=shutil.which("lmplz") or str(kenlm_bin))
    ap.add_argument("--startup", action="store_true", help="measure start-up and imports only")
    ap.add_argument("--json", type=Path, help="also write the results as JSON")
    args = ap.parse_args()
    cpu = lscpu()
    print(
        f"machine: {cpu.get('Model name')}, {cpu.get('CPU(s)')} CPUs, {platform.system()}, "
        f"python {platform.python_version()}; lmplz {args.lmplz}\n"
        f"flags: {cpu.get('Flags')}\n"
        "threads: gentool OMP_NUM_THREADS=1 (numpy sorts and gathers on one core; above 64 MB "
        "of text it tokenizes on 2 worker processes); lmplz: its pipeline threads "
        "(CPU s / wall s shows the cores each kept busy)\n"
    )
    args.corpora.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="ngram-scale-", dir=args.work or args.corpora))
    try:
        if args.startup:
            startup(work)
            return
        results = []
        for size in args.sizes:
            data, heldout = corpus(size, 0, args.corpora), held_out(size, args.corpora)
            print(f"{size}: {data} ({data.stat().st_size / 2**20:,.0f} MiB)", flush=True)
            g = run_gentool(data, heldout, args.memory, work)
            print(f"  gentool: {g}", flush=True)
            k = run_lmplz(args.lmplz, data, heldout, args.memory, work)
            print(f"  lmplz:   {k}", flush=True)
            results.append({"size": size, "bytes": data.stat().st_size, "gentool": g, "lmplz": k})
        report(results, args.memory)
        if args.json:
            args.json.write_text(json.dumps({"lscpu": cpu, "results": results}, indent=1) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(results: list[dict[str, Any]], memory: str) -> None:
    print(
        "\n| corpus | tokens | system | wall s | CPU s | peak RSS MB | model MB | "
        "held-out ppl (incl. OOV) | ppl excl. OOV |\n|---|---|---|---|---|---|---|---|---|"
    )
    for r in results:
        for name in ("gentool", "lmplz"):
            x = r[name]
            print(
                f"| {r['size']} | {r['gentool']['tokens']:,} | {name} | {x['wall_s']:.1f} | "
                f"{x['cpu_s']:.1f} | {x['peak_mb']:,} | {x['model_mb']:,} | {x['ppl']:.4f} | "
                f"{x['ppl_excl']:.4f} |"
            )
    print()
    for r in results:
        g, k = r["gentool"], r["lmplz"]
        same = "same" if g["ngrams"] == k["ngrams"] else f"{g['ngrams']} vs {k['ngrams']}"
        print(
            f"{r['size']}: gentool/lmplz wall {g['wall_s'] / k['wall_s']:.2f}x, peak RSS "
            f"{g['peak_mb'] / k['peak_mb']:.2f}x (budget {memory}); perplexity ratio "
            f"{g['ppl'] / k['ppl']:.8f} (excl. OOV {g['ppl_excl'] / k['ppl_excl']:.8f}); "
            f"n-gram counts {same}; gentool stages: {g['stages']}"
        )


if __name__ == "__main__":
    main()
