"""Token caches at scale: `gentool train rnn` and `gentool train transformer` on a large
corpus, the whole process, a first start (tokenizing into the cache) and a second (reading
it), against gentool before the token caches (the whole corpus read and encoded in memory).

    python benchmarks/token_cache.py --data /work/corpora/en-100M.txt /work/corpora/en-1G.txt \
        --peer-src /path/to/gentool-before --json out.json

For each corpus, in a fresh cache folder: rnn (first start: learns the char tokenizer and
tokenizes into the cache; second start: reads both from the cache), then the transformer LM
(its first start learns its own tokenizer, which equals the rnn's, so it reads the same
token file; then a second start). Each run trains ``--steps`` steps (logged every step, no
validation split, no checkpoints) with the families' default sizes and char tokens, under
``/usr/bin/time -v`` (peak RSS), and the time from the process's start to its first step
is read off ``metrics.jsonl`` as it appears. Tokenization throughput is what the first
start logs. The peer is the same command run from a checkout of gentool before the token
caches (``--peer-src``: its repository root) on corpora up to ``--peer-max-mb``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "benchmarks")]
from ngram_scale import lscpu  # noqa: E402

FAMILIES = {"rnn": "rnn", "transformer LM": "transformer"}
TOKENIZED = re.compile(
    r"tokens: ([\d,.]+) M characters tokenized into ([\d,]+) (\w+) ids in ([\d.]+) s"
)
# The peer's gentool from its own source tree, not this one's editable install (whose import
# hook would win over PYTHONPATH).
PEER = """\
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f)]
sys.path[:0] = [sys.argv.pop(1), sys.argv.pop(1)]
from gentool.cli import main
sys.argv[0] = "gentool"
main()
"""


def train(
    family: str, data: Path, out: Path, cache: Path, steps: int, src: Path | None = None
) -> dict[str, Any]:
    """One whole ``gentool train`` process: wall s, CPU s, peak RSS MB, seconds to its first
    step, what it said about tokenizing."""
    args = ["--set", f"train.max_steps={steps}", "--set", "train.log_every=1"]
    args += ["--set", "train.val_fraction=0", "--set", "train.checkpoint_every=0"]
    args += ["--set", "train.eval_every=0", "--set", f"train.warmup_steps={steps}"]
    env = {**os.environ, "GENTOOL_CACHE": str(cache)}
    report = out.with_suffix(".time")
    command = ["/usr/bin/time", "-v", "-o", str(report), sys.executable]
    if src is None:
        command += ["-m", "gentool"]
    else:  # the peer: that checkout's gentool and plugins
        command += ["-c", PEER, str(src), str(src / "plugins")]
    command += ["train", family, "--data", str(data), "--out", str(out), *args]
    started = time.perf_counter()
    first = None
    with tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, env=env)
        metrics = out / "metrics.jsonl"
        while process.poll() is None:
            if first is None and metrics.exists() and metrics.stat().st_size:
                first = time.perf_counter() - started
            time.sleep(0.05)
        wall = time.perf_counter() - started
        err.seek(0)
        log = err.read()
    if process.returncode:
        sys.exit(f"failed ({process.returncode}): {' '.join(command)}\n{log[-3000:]}")
    text = report.read_text()

    def field(name: str) -> float:
        return float(re.search(rf"{re.escape(name)}[^:]*: ([\d.]+)", text)[1])  # type: ignore[index]

    result: dict[str, Any] = {
        "wall_s": round(wall, 2),
        "cpu_s": round(field("User time") + field("System time"), 1),
        "peak_mb": round(field("Maximum resident set size") / 1024),
        "first_step_s": round(first if first is not None else wall, 2),
        "cached": "read from the cache" in log,
    }
    if found := TOKENIZED.search(log):
        mchars, seconds = float(found[1].replace(",", "")), float(found[4])
        result.update(
            tokens=int(found[2].replace(",", "")),
            dtype=found[3],
            tokenize_s=seconds,
            tokenize_mb_s=round(mchars / max(seconds, 0.05), 1),
        )
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, nargs="+", default=[Path("/work/corpora/en-100M.txt")])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    ap.add_argument("--peer-src", type=Path, help="a checkout of gentool before token caches")
    ap.add_argument("--peer-max-mb", type=float, default=110)
    ap.add_argument("--peer-only", action="store_true", help="measure the peer alone")
    ap.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    cpu = lscpu()
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    print(f"CPU: {cpu.get('Model name')}, {cpu.get('CPU(s)')} CPUs; OMP_NUM_THREADS={threads}")
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
    print(f"flags: {' '.join(f for f in wanted if f in cpu.get('Flags', '').split())}")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=args.work) as scratch:
        work = Path(scratch)
        for data in args.data:
            mb = data.stat().st_size / 1e6
            cache = work / f"cache-{data.stem}"
            for name in [] if args.peer_only else args.families:
                family = FAMILIES[name]
                for start in ("first", "second"):
                    out = work / f"{data.stem}-{family}-{start}"
                    result = train(family, data, out, cache, args.steps)
                    rows.append({"corpus": data.name, "mb": mb, "system": f"gentool {name}",
                                 "start": start, **result})  # fmt: skip
                    print(json.dumps(rows[-1]), flush=True)
            if args.peer_src is not None and mb <= args.peer_max_mb:
                for name in args.families:
                    out = work / f"{data.stem}-{FAMILIES[name]}-peer"
                    result = train(FAMILIES[name], data, out, work / "peer-cache", args.steps,
                                   args.peer_src)  # fmt: skip
                    rows.append({"corpus": data.name, "mb": mb, "start": "every",
                                 "system": f"before token caches, {name}", **result})  # fmt: skip
                    print(json.dumps(rows[-1]), flush=True)
    print()
    print("| corpus | system | start | wall s | CPU s | first step s | peak RSS MB | tokenize "
          "M chars/s |\n|---|---|---|---|---|---|---|---|")  # fmt: skip
    for r in rows:
        speed = r.get("tokenize_mb_s", "")
        print(
            f"| {r['corpus']} | {r['system']} | {r['start']} | {r['wall_s']} | {r['cpu_s']} | "
            f"{r['first_step_s']} | {r['peak_mb']:,} | {speed} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"lscpu": cpu, "threads": threads, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
