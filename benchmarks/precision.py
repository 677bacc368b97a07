"""Training speed in float32 against bf16 autocast, for every neural family; a markdown table.

    python benchmarks/precision.py [--families rnn-lstm,gan] [--steps N] [--quick]
    python benchmarks/precision.py --emulate-avx2     # as on a CPU without AVX-512

Each family trains the model of its shipped recipe (the translator on batches of 32 pairs,
not 128, so that its slowest case stays within a minute or two) through ``gentool.api.train``,
what ``gentool train`` runs, with ``--mixed-precision no`` and with ``bf16`` in this process,
``--repeats`` times each in alternating order (the first run of a process pays for lazy
initialisation). Every step is logged (``train.log_every=1``); a run's figure is the median
of its per-step rates after the first ``WARMUP`` steps (which include oneDNN's kernel
creation), and the table shows the best run of each precision (the machine may be shared:
the best is the least disturbed). No evaluation, checkpoints or sample grids run. The
header says what ``--mixed-precision auto`` picks on this machine.

``--emulate-avx2`` runs the same in a child process whose oneDNN, ATen and MKL are held to
AVX2 (``ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2``):
roughly a CPU without AVX-512, so without native bf16 (a rough check: the cache sizes,
clock and core count stay this machine's).

Data: tinyshakespeare for the text models and Multi30k for the translator (from
``../shared/data``; the embedded sample and a made-up pair corpus when absent), the
embedded MNIST digits for the GANs. The machine may be shared: read the ratio more than
the absolute figures, and rerun when they disagree.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "plugins")]
SHARED = REPO.parent / "shared" / "data"
WARMUP = 3  # steps left out of each figure
AVX2 = {
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
}
QUIET = [
    "train.eval_every=0",
    "train.checkpoint_every=0",
    "train.log_every=1",
    "train.val_fraction=0",
]


@dataclass
class Case:
    name: str
    recipe: str
    steps: int
    unit: str  # what the rate counts: tokens or images
    settings: list[str] = field(default_factory=list)
    data: str = "text"  # text, pairs or digits


CASES = [
    Case("rnn-lstm", "rnn-shakespeare-char", 16, "tokens"),
    Case("rnn-gru", "rnn-shakespeare-char", 16, "tokens", ["model.cell=gru"]),
    Case("rnn-rnn", "rnn-shakespeare-char", 16, "tokens", ["model.cell=rnn"]),
    Case("transformer-lm", "transformer-shakespeare-char", 40, "tokens"),
    Case(
        "translator",
        "transformer-multi30k-en-de",
        10,
        "tokens",
        ["train.batch_size=32", "train.bleu_pairs=0"],
        data="pairs",
    ),
    Case("gan", "gan-mnist-dcgan", 40, "images", ["train.sample_every=0"], data="digits"),
    Case("gan-upscale", "gan-mnist-upscale", 30, "images", ["train.sample_every=0"], data="digits"),
]


def data_arguments(kind: str, tmp: Path) -> dict[str, Any]:
    """``api.train``'s data arguments for a case."""
    from gentool import api
    from gentool.data import default_text_path

    if kind == "digits":
        return {"data": [REPO / "gentool" / "embedded" / "digits.npz"]}
    if kind == "text":
        shakespeare = SHARED / "tinyshakespeare" / "input.txt"
        return {"data": [shakespeare if shakespeare.is_file() else default_text_path()]}
    multi30k = SHARED / "multi30k"
    if (multi30k / "train.en.gz").is_file():
        pairs = api.ParallelPaths(multi30k / "train.en.gz", multi30k / "train.de.gz")
        return {"parallel": pairs}
    lines = default_text_path().read_text(encoding="utf-8").splitlines()
    tsv = tmp / "pairs.tsv"  # a stand-in: each line "translates" to itself reversed
    tsv.write_text("".join(f"{x}\t{x[::-1]}\n" for x in lines if x.strip()), encoding="utf-8")
    return {"data": [tsv]}


def measure(case: Case, precision: str, steps: int, tmp: Path, extra: list[str]) -> float:
    """The median per-step rate (items/s) of ``case`` trained in ``precision``."""
    import json

    from gentool import api
    from gentool.model import Runtime

    out = Path(tempfile.mkdtemp(dir=tmp)) / "run"
    overrides = [
        *QUIET,
        f"train.max_steps={steps}",
        f"train.warmup_steps={min(steps, 5)}",
        f"train.mixed_precision={precision}",
        *case.settings,
        *extra,
    ]
    api.train(
        recipe=case.recipe,
        overrides=overrides,
        out=out,
        runtime=Runtime(device="cpu", progress=False),
        **data_arguments(case.data, tmp),
    )
    rates = [
        record[f"{case.unit}_per_s"]
        for line in (out / "metrics.jsonl").read_text().splitlines()
        for record in [json.loads(line)]
        if "step" in record and record["step"] > WARMUP and f"{case.unit}_per_s" in record
    ]
    return statistics.median(rates)


def cpu_description() -> tuple[str, str]:
    """lscpu's model name and flags (platform's processor name where lscpu is missing)."""
    import platform

    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or platform.machine(), "?"
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return fields.get("Model name", "?").strip(), fields.get("Flags", "?").strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--families", default=",".join(c.name for c in CASES))
    parser.add_argument("--steps", type=int, help="steps per run [default: per family]")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each precision")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a recipe override for every family, after the benchmark's own (repeatable)",
    )
    parser.add_argument("--quick", action="store_true", help="6 steps, 1 run each: a smoke test")
    parser.add_argument(
        "--emulate-avx2", action="store_true", help="run as on a CPU without AVX-512"
    )
    args = parser.parse_args()
    if args.emulate_avx2:
        argv = [a for a in sys.argv[1:] if a != "--emulate-avx2"]
        child = subprocess.run([sys.executable, __file__, *argv], env={**os.environ, **AVX2})
        sys.exit(child.returncode)

    import torch

    from gentool.neural.devices import native_bf16_cpu, resolve_precision

    chosen = [c for c in CASES if c.name in args.families.split(",")]
    if args.quick:
        args.repeats = 1
    model, flags = cpu_description()
    held = {k: os.environ[k] for k in AVX2 if k in os.environ}
    print(f"CPU: {model}; {os.cpu_count()} logical CPUs")
    print(f"lscpu flags: {flags}")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads "
        f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}); "
        f"held to: {' '.join(f'{k}={v}' for k, v in held.items()) or 'nothing (native)'}"
    )
    print(f"native bf16: {native_bf16_cpu() or 'none'}; auto picks: ", end="")
    print(resolve_precision("auto", "cpu")[0].replace("no", "fp32"), "\n", flush=True)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in chosen:
            steps = 6 if args.quick else args.steps or case.steps
            runs: dict[str, list[float]] = {"no": [], "bf16": []}
            for repeat in range(args.repeats):
                for precision in ("no", "bf16")[:: 1 if repeat % 2 == 0 else -1]:
                    started = time.perf_counter()
                    runs[precision].append(
                        measure(case, precision, steps, Path(tmp), args.overrides)
                    )
                    print(
                        f"  {case.name} {precision}: {runs[precision][-1]:,.0f} {case.unit}/s "
                        f"({time.perf_counter() - started:.0f} s)",
                        file=sys.stderr,
                        flush=True,
                    )
            rows.append((case, {k: max(v) for k, v in runs.items()}))
    print("| family | recipe | unit | fp32 /s | bf16 /s | bf16 / fp32 |")
    print("|---|---|---|---|---|---|")
    for case, rates in rows:
        shown = case.settings + args.overrides
        settings = f" ({', '.join(shown)})" if shown else ""
        print(
            f"| {case.name} | {case.recipe}{settings} | {case.unit} | {rates['no']:,.0f} | "
            f"{rates['bf16']:,.0f} | {rates['bf16'] / rates['no']:.2f}x |"
        )


if __name__ == "__main__":
    main()
