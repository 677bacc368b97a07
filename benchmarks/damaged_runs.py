"""Refusing a run whose config.json lies, against transformers' own loading; a table.

    python benchmarks/damaged_runs.py [--cap-gb 6] [--timeout 60] [--json PATH]

Trains one tiny run of each neural kind (rnn, transformer LM and translator, gan generator
and upscaler), then gives each a config.json claiming more than its model.safetensors holds,
with gentool.json's checksums updated to match (a deliberate lie, or a damaged download).
Each load runs in a fresh subprocess under an address-space cap (--cap-gb) and a time limit
(--timeout), and reports its outcome, its time and how much its peak RSS grew over the
imports: gentool's ``api.load``
for every run, and for the Hugging Face runs the named peer, transformers'
``AutoModelFor*.from_pretrained`` of the same directory (what gentool called before it
checked the config against the header). The honest run is the first row of each kind.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "plugins")]

TINY = ["train.max_steps=2", "train.checkpoint_every=0", "train.warmup_steps=1"]
KINDS: dict[str, list[str]] = {
    "rnn": ["model.hidden_size=32", "model.embedding_size=16", "train.batch_size=4"],
    "lm": ["model.d_model=32", "model.num_layers=2", "model.num_heads=4", "model.d_ff=64",
           "model.context_length=64", "train.batch_size=4", "train.seq_len=16"],
    "mt": ["model.arch=encoder-decoder", "model.d_model=32", "model.num_layers=1",
           "model.num_heads=4", "model.d_ff=64", "model.vocab_size=300", "train.batch_size=8"],
    "gan": ["model.width=8", "model.latent_size=16", "train.batch_size=8"],
    "up": ["model.task=upscale", "model.image_size=16", "model.width=8", "train.batch_size=4",
           "train.val_fraction=0"],
}  # fmt: skip
LIES: list[tuple[str, dict[str, Any]]] = [
    ("rnn", {"vocab_size": 1 << 22}),  # ~0.8 GB of float32 weights if built
    ("rnn", {"hidden_size": 1 << 40}),
    ("rnn", {"num_layers": 100_000}),
    ("lm", {"n_embd": 1 << 14}),  # ~0.4 GB
    ("lm", {"n_layer": 10**6}),
    ("mt", {"max_position_embeddings": 1 << 22}),  # positions are recomputed, not saved
    ("mt", {"d_model": 1 << 16}),
    ("gan", {"latent_size": 1 << 30}),
    ("up", {"width": 1 << 16}),
]
HF = {"rnn": "AutoModelForCausalLM", "lm": "AutoModelForCausalLM", "mt": "AutoModelForSeq2SeqLM"}


def train(root: Path) -> dict[str, Path]:
    from gentool import api
    from gentool.testing import sample_lines

    pairs = root / "pairs.tsv"
    pairs.write_text("".join(f"{x}\t{x.upper()}\n" for x in sample_lines(200)), "utf-8")
    runs = {}
    for kind, settings in KINDS.items():
        data = [pairs] if kind == "mt" else []
        family = {"rnn": "rnn", "lm": "transformer", "mt": "transformer"}.get(kind, "gan")
        api.train(family, overrides=[*TINY, *settings], data=data, out=root / kind)
        runs[kind] = root / kind
    return runs


def lie(run: Path, to: Path, change: dict[str, Any]) -> Path:
    """A copy of ``run`` whose config.json says ``change``, its checksum updated to match."""
    import shutil

    shutil.copytree(run, to)
    config = json.loads((to / "config.json").read_text("utf-8"))
    config.update(change)
    data = json.dumps(config).encode()
    (to / "config.json").write_bytes(data)
    meta = json.loads((to / "gentool.json").read_text("utf-8"))
    meta["files"]["config.json"] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (to / "gentool.json").write_text(json.dumps(meta), "utf-8")
    return to


def case(run: str, loader: str) -> None:
    """In a fresh process: load ``run`` with ``loader``; print one JSON line."""
    import torch  # noqa: F401  (the imports are the baseline)
    import transformers

    import gentool_rnn.modeling  # noqa: F401
    from gentool import api
    from gentool.neural import require_neural

    require_neural()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    try:
        if loader == "gentool":
            api.load(run)
        else:
            getattr(transformers, loader).from_pretrained(run)
        outcome = "loaded"
    except Exception as err:  # noqa: BLE001 (what each loader raises is the measurement)
        first = str(err).strip().splitlines()[0].replace(f"run '{run}' is damaged: ", "")
        outcome = f"{type(err).__name__}: {first[:90]}"
    seconds = time.perf_counter() - started
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
    print(json.dumps({"outcome": outcome, "seconds": seconds, "peak_mb": grown}))


def measure(run: Path, loader: str, cap: int, timeout: float) -> dict[str, Any]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    try:
        done = subprocess.run(
            [sys.executable, __file__, "--case", str(run), "--loader", loader],
            capture_output=True,
            text=True,
            preexec_fn=limit,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"outcome": f"still loading after {timeout:g} s: killed", "seconds": None,
                "peak_mb": None}  # fmt: skip
    lines = [x for x in done.stdout.splitlines() if x.startswith("{")]
    if not lines:  # killed, or failed outside the measured call
        last = (done.stderr.strip().splitlines() or ["?"])[-1][:90]
        return {"outcome": f"exit {done.returncode}: {last}", "seconds": None, "peak_mb": None}
    return dict(json.loads(lines[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cap-gb", type=float, default=6.0, help="address-space cap per load")
    parser.add_argument("--timeout", type=float, default=60, help="seconds per load (and import)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--loader", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.case:
        case(args.case, args.loader)
        return
    cap = int(args.cap_gb * (1 << 30))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        runs = train(root)
        cases = [(kind, {}) for kind in KINDS] + LIES
        cases.sort(key=lambda c: list(KINDS).index(c[0]))
        for i, (kind, change) in enumerate(cases):
            run = lie(runs[kind], root / f"lie-{i}", change) if change else runs[kind]
            for loader in ["gentool", *([HF[kind]] if kind in HF else [])]:
                row = {"kind": kind, "config": change or "(honest)", "loader": loader}
                rows.append(row | measure(run, loader, cap, args.timeout))
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((x.split(":", 1)[1].strip() for x in cpu.splitlines() if "Model name" in x), "?")
    flags = next((x.split(":", 1)[1].split() for x in cpu.splitlines() if "Flags" in x), [])
    print(f"CPU: {model}; avx512 flags: {' '.join(f for f in flags if 'avx512' in f) or 'none'}")
    print(f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}; address space capped at "
          f"{args.cap_gb:g} GB per load")  # fmt: skip
    print()
    print("| run | config.json says | loader | outcome | seconds | +peak MB |")
    print("| --- | --- | --- | --- | ---: | ---: |")
    for row in rows:
        seconds = "" if row["seconds"] is None else f"{row['seconds']:.3f}"
        peak = "" if row["peak_mb"] is None else f"{row['peak_mb']:,.0f}"
        said = row["config"] if isinstance(row["config"], str) else json.dumps(row["config"])
        outcome = row["outcome"].replace("|", "/")
        print(f"| {row['kind']} | {said} | {row['loader']} | {outcome} | {seconds} | {peak} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2), "utf-8")


if __name__ == "__main__":
    main()
