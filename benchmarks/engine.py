"""The training engine's overhead over a plain PyTorch loop, with no family involved; a table.

    OMP_NUM_THREADS=1 python benchmarks/engine.py [--steps 100] [--repeats 3] [--precisions no,bf16]

Two models, built here from seed 0 with random weights:

- ``gpt``: nanoGPT's CPU shape for shakespeare_char (a Hugging Face GPT-2, SDPA attention:
  4 layers, 4 heads, 128 dims, block 64, batch 12, no dropout), on random windows of the
  data (nanoGPT's sampling); ``--gpt small`` makes it GPT-2 small's 12 x 768 instead.
- ``lstm``: a character LSTM (2 x 256, embeddings 128), batch 32 x 64 characters read as
  streams, the hidden state carried from window to window (the engine's carried-state path).

Data: tinyshakespeare's characters (``--data``; random characters when it is missing).
After a short warm-up, each model trains ``--steps`` steps (AdamW, warmup + cosine, clipping
1.0, a loss read every 10 steps) twice per repeat, the order alternating: by a plain loop
written below, which calls the same ``TrainingTask`` methods for its batches and loss, and by
``gentool.neural.engine.fit`` (CPU, no evaluation or checkpoint during the run). Throughput
is tokens over the training time (the engine's own ``FitResult.seconds``, which leaves out
its set-up and final evaluation, reported apart as "fixed s"); the table gives the medians,
the overhead (plain / engine - 1), the same from the process's CPU time (the engine's whole
``fit`` call, set-up included: on a shared machine CPU time is steadier than wall time) and
the last logged loss of each loop, which should agree: they compute the same steps.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO)]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"
LOG_EVERY = 10


def load_ids(path: Path) -> tuple[Any, int]:
    """The data as character ids, and the vocabulary size."""
    import torch

    if not path.is_file():
        return torch.randint(65, (1_000_000,), generator=torch.Generator().manual_seed(0)), 65
    text = path.read_text(encoding="utf-8")
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    return torch.tensor([index[c] for c in text]), len(chars)


def gpt_task(ids: Any, vocab: int, args: argparse.Namespace, config: Any) -> Any:
    import torch
    import torch.nn.functional as F
    from transformers import GPT2Config, GPT2LMHeadModel

    from gentool.neural.engine import TrainingTask

    layers, heads, dims = (12, 12, 768) if args.gpt == "small" else (4, 4, 128)
    block = 64

    class Windows(TrainingTask):
        """nanoGPT's batches: ``batch_size`` random windows, drawn from the batch's index."""

        def __init__(self) -> None:
            torch.manual_seed(0)
            gpt = GPT2Config(
                vocab_size=vocab, n_positions=block, n_layer=layers, n_head=heads, n_embd=dims,
                resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=None,
                eos_token_id=None,
            )  # fmt: skip
            self.model = GPT2LMHeadModel._from_config(gpt, attn_implementation="sdpa")
            self.micro = config.batch_size // config.grad_accum
            self.items_per_batch = self.micro * block

        def train_batch(self, index: int, rows: slice) -> tuple[Any, Any]:
            generator = torch.Generator().manual_seed(index)
            starts = torch.randint(len(ids) - block - 1, (self.micro,), generator=generator)
            window = torch.stack([ids[s : s + block + 1] for s in starts[rows].tolist()])
            return window[:, :-1], window[:, 1:]

        def loss(self, model: Any, batch: tuple[Any, Any]) -> Any:
            logits = model(input_ids=batch[0]).logits
            return F.cross_entropy(logits.float().flatten(0, 1), batch[1].flatten())

        def evaluate(self, model: Any, rows: slice, max_batches: int) -> tuple[float, int]:
            return 0.0, 0

    return Windows()


def lstm_task(ids: Any, vocab: int, args: argparse.Namespace, config: Any) -> Any:
    import torch
    import torch.nn.functional as F
    from torch import nn

    from gentool.neural.engine import TrainingTask

    seq, rows_total = 64, config.batch_size // config.grad_accum

    class CharLSTM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(vocab, 128)
            self.lstm = nn.LSTM(128, 256, num_layers=2, batch_first=True)
            self.head = nn.Linear(256, vocab)

        def forward(self, x: Any, state: Any) -> tuple[Any, Any]:
            out, state = self.lstm(self.embed(x), state)
            return self.head(out), state

    class Streams(TrainingTask):
        """``batch_size`` streams of the data, window after window, the state carried."""

        carries_state = True

        def __init__(self) -> None:
            torch.manual_seed(0)
            self.model = CharLSTM()
            length = len(ids) // rows_total
            self.streams = ids[: rows_total * length].view(rows_total, length)
            self.windows = (length - 1) // seq
            self.items_per_batch = rows_total * seq
            self.state: tuple[Any, Any] | None = None

        def train_batch(self, index: int, rows: slice) -> tuple[Any, Any, bool]:
            window = index % self.windows
            chunk = self.streams[rows, window * seq : (window + 1) * seq + 1]
            return chunk[:, :-1], chunk[:, 1:], window == 0

        def loss(self, model: Any, batch: tuple[Any, Any, bool]) -> Any:
            logits, state = model(batch[0], None if batch[2] else self.state)
            self.state = (state[0].detach(), state[1].detach())
            return F.cross_entropy(logits.float().flatten(0, 1), batch[1].flatten())

        def evaluate(self, model: Any, rows: slice, max_batches: int) -> tuple[float, int]:
            return 0.0, 0

        def carried_state(self) -> dict[str, Any] | None:
            if self.state is None:
                return None
            return {"h": self.state[0].transpose(0, 1), "c": self.state[1].transpose(0, 1)}

        def restore_carried_state(self, state: dict[str, Any]) -> None:
            self.state = (state["h"].transpose(0, 1), state["c"].transpose(0, 1))

    return Streams()


def plain_loop(task: Any, config: Any) -> tuple[float, float, float]:
    """The reference: the same steps in plain PyTorch: (seconds, CPU seconds, last loss)."""
    import torch

    from gentool.neural.config import lr_at

    model = task.model
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ],
        lr=config.lr,
        betas=(config.beta1, config.beta2),
        foreach=True,
    )
    bf16 = config.mixed_precision == "bf16"
    rows = slice(0, config.batch_size)
    losses, logged = torch.zeros(()), float("nan")
    started, cpu = time.perf_counter(), time.process_time()
    for step in range(config.max_steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, config)
        batch = task.train_batch(step, rows)
        with torch.autocast("cpu", torch.bfloat16) if bf16 else contextlib.nullcontext():
            loss = task.loss(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses += loss.detach()
        if (step + 1) % LOG_EVERY == 0:
            logged = float(losses) / LOG_EVERY  # the engine reads the loss as often
            losses.zero_()
    return time.perf_counter() - started, time.process_time() - cpu, logged


def engine_run(task: Any, config: Any) -> tuple[float, float, float, float]:
    """``fit`` on the task: (training seconds, the rest of the call's seconds, CPU seconds of
    the whole call, last loss)."""
    from gentool.model import Runtime
    from gentool.neural.engine import fit

    with tempfile.TemporaryDirectory() as run_dir:
        started, cpu = time.perf_counter(), time.process_time()
        result = fit(
            task, config, Runtime(device="cpu", progress=False), Path(run_dir), lambda m: None
        )
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return result.seconds, wall - result.seconds, cpu, float(result.train_loss or "nan")


def cpu_description() -> tuple[str, str]:
    """lscpu's model name and flags (the flags decide which kernels torch runs)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or platform.machine(), "?"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return fields.get("Model name", "?").strip(), fields.get("Flags", "?").strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--models", default="gpt,lstm", help="comma-separated: gpt, lstm")
    parser.add_argument("--gpt", choices=["nanogpt", "small"], default="nanogpt")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precisions", default="no", help="comma-separated: no, bf16")
    parser.add_argument("--threads", type=int, help="torch threads (default: OMP_NUM_THREADS)")
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    args = parser.parse_args()

    import torch

    from gentool.neural.config import TrainConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    model_name, flags = cpu_description()
    print(f"cpu: {model_name}, {os.cpu_count()} cores; torch {torch.__version__}")
    print(f"lscpu flags: {flags}")
    print(
        f"threads: torch {torch.get_num_threads()} "
        f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}); "
        f"{args.steps} steps, {args.repeats} repeats, alternating plain / engine"
    )
    ids, vocab = load_ids(args.data)
    builders = {"gpt": (gpt_task, 12), "lstm": (lstm_task, 32)}
    rows = []
    for name in args.models.split(","):
        build, batch = builders[name]
        for precision in args.precisions.split(","):
            config = TrainConfig(
                max_steps=args.steps, batch_size=batch, lr=1e-3, min_lr=1e-4,
                warmup_steps=min(100, args.steps // 4), weight_decay=0.1, beta2=0.99,
                grad_clip=1.0, mixed_precision=precision, log_every=LOG_EVERY,
                eval_every=0, checkpoint_every=0,
            )  # fmt: skip
            rows.append(measure(name, build, ids, vocab, args, config))
            print_row(rows[-1])
    if args.json:
        args.json.write_text(json.dumps({"cpu": model_name, "rows": rows}, indent=2) + "\n")


def measure(
    name: str, build: Any, ids: Any, vocab: int, args: argparse.Namespace, config: Any
) -> dict[str, Any]:
    from dataclasses import replace

    # Warm up (oneDNN builds its kernels on first use), then alternate which loop goes first.
    plain_loop(build(ids, vocab, args, config), replace(config, max_steps=5))
    keys = ("plain", "engine", "fixed", "plain_cpu", "engine_cpu")
    times: dict[str, list[float]] = {key: [] for key in keys}
    losses: dict[str, float] = {}
    for repeat in range(args.repeats):
        for loop in ("plain", "engine") if repeat % 2 == 0 else ("engine", "plain"):
            task = build(ids, vocab, args, config)
            if loop == "plain":
                seconds, cpu, losses["plain"] = plain_loop(task, config)
            else:
                seconds, fixed, cpu, losses["engine"] = engine_run(task, config)
                times["fixed"].append(fixed)
            times[loop].append(seconds)
            times[f"{loop}_cpu"].append(cpu)
    tokens = args.steps * task.items_per_batch
    label = f"gpt ({args.gpt})" if name == "gpt" else name
    parameters = sum(p.numel() for p in task.model.parameters())
    plain, engine = (tokens / statistics.median(times[k]) for k in ("plain", "engine"))
    cpu = statistics.median(times["engine_cpu"]) / statistics.median(times["plain_cpu"]) - 1
    return {
        "model": label,
        "parameters": parameters,
        "precision": config.mixed_precision,
        "plain_tokens_per_s": plain,
        "engine_tokens_per_s": engine,
        "overhead": plain / engine - 1,
        "cpu_overhead": cpu,
        "plain_ms_per_step": 1000 * statistics.median(times["plain"]) / args.steps,
        "engine_ms_per_step": 1000 * statistics.median(times["engine"]) / args.steps,
        "engine_fixed_s": statistics.median(times["fixed"]),
        "plain_loss": losses["plain"],
        "engine_loss": losses["engine"],
        "runs": times,
    }


HEADER = False


def print_row(row: dict[str, Any]) -> None:
    global HEADER
    if not HEADER:
        HEADER = True
        print(
            "| model | params | precision | plain tok/s | engine tok/s | overhead | CPU-time "
            "overhead | engine fixed s | last loss plain / engine |"
        )
        print("|---|---:|---|---:|---:|---:|---:|---:|---|")
    print(
        f"| {row['model']} | {row['parameters'] / 1e6:.2f} M | {row['precision']} "
        f"| {row['plain_tokens_per_s']:,.0f} | {row['engine_tokens_per_s']:,.0f} "
        f"| {row['overhead']:+.1%} | {row['cpu_overhead']:+.1%} | {row['engine_fixed_s']:.2f} "
        f"| {row['plain_loss']:.4f} / {row['engine_loss']:.4f} |",
        flush=True,
    )


if __name__ == "__main__":
    main()
