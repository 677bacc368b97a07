"""Fine-tuning overhead: ``gentool train transformer --init MODEL`` against a plain
accelerate loop fine-tuning the same model on the same batches; a table.

    OMP_NUM_THREADS=1 python benchmarks/finetune.py [--steps 20] [--batch 4] [--seq-len 64]

The model is GPT-2 small's shape (12 layers, 12 heads, 768 dims, 1,024 positions, a 50,257
vocabulary: 124 M parameters) with random weights from seed 0 and no dropout, saved with a
byte-level BPE tokenizer (2,000 tokens, learnt on the data) as a Hugging Face folder: the
"pretrained" model both start from. Data: the first 200 kB of tinyshakespeare (``--data``).

- gentool: ``api.train("transformer", init=FOLDER, ...)``, the whole fine-tuning path (the
  model loaded from the folder, the text encoded, ``fit``, the run saved). Its training time
  is the engine's own (gentool.json's ``train_seconds``); the rest of the call is reported
  apart ("fixed s": loading, encoding, saving 500 MB of weights).
- accelerate: ``AutoModelForCausalLM.from_pretrained(FOLDER)`` prepared by an
  ``Accelerator(cpu=True)`` with AdamW, and a loop of ``accelerator.backward``, gradient
  clipping, ``step`` and ``zero_grad``, over the very batches gentool trains on (its
  ``WindowTask`` on the same encoded stream, the same seed), with gentool's learning-rate
  schedule and optimizer settings (read back from the gentool run's recipe).

Both run the same number of steps after a 3-step warm-up of the plain loop (oneDNN builds
its kernels on first use); the order alternates between repeats; the table gives medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"

from engine import cpu_description  # noqa: E402  (benchmarks/engine.py)


def save_model(folder: Path, text: str) -> None:
    """GPT-2 small's shape, random weights, no dropout; a BPE tokenizer learnt on ``text``."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from gentool.neural.tokenizers import train_tokenizer

    tokenizer = train_tokenizer("bpe", [text], vocab_size=2000)
    torch.manual_seed(0)
    bos = tokenizer.bos_token_id
    config = GPT2Config(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=bos,
                        eos_token_id=bos)  # fmt: skip
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def gentool_run(folder: Path, data: Path, out: Path, settings: list[str]) -> dict[str, Any]:
    """The whole fine-tuning path; (training seconds, the rest, last loss, the run)."""
    from gentool import api

    started = time.perf_counter()
    run = api.train("transformer", overrides=settings, data=[data], out=out, init=folder)
    wall = time.perf_counter() - started
    metrics = run.meta["metrics"]
    return {"seconds": metrics["train_seconds"], "fixed": wall - metrics["train_seconds"],
            "loss": metrics["train_loss"], "recipe": run.meta["recipe"]}  # fmt: skip


def accelerate_loop(folder: Path, text: str, train: Any, steps: int) -> dict[str, Any]:
    """The reference: the same steps in a plain accelerate loop (see the docstring)."""
    import torch
    from accelerate import Accelerator
    from transformers import AutoModelForCausalLM

    from gentool.neural.config import lr_at
    from gentool.neural.streams import bos_id, split_stream
    from gentool.neural.weights import pretrained_tokenizer
    from gentool_transformer.gpt2 import WindowTask

    tokenizer = pretrained_tokenizer(folder)
    ids, _ = split_stream(tokenizer, text, bos_id(tokenizer), None, train.val_fraction)
    accelerator = Accelerator(cpu=True, mixed_precision="no")
    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="sdpa")
    task = WindowTask(model, ids, None, train.batch_size, train.seq_len, seed=0)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": train.weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ],
        lr=train.lr,
        betas=(train.beta1, train.beta2),
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    rows = slice(0, train.batch_size)
    losses = []
    started = time.perf_counter()
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, train)
        loss = task.loss(model, task.train_batch(step, rows))
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), train.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.detach())
    seconds = time.perf_counter() - started
    last = min(len(losses), train.log_every)
    return {"seconds": seconds, "loss": float(sum(losses[-last:])) / last}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    args = parser.parse_args()

    import torch

    from gentool import threads
    from gentool_transformer.lm import LMTrainConfig

    threads.apply(torch)
    model_name, flags = cpu_description()
    print(f"cpu: {model_name}, {os.cpu_count()} cores; torch {torch.__version__}")
    print(f"lscpu flags: {flags}")
    print(
        f"threads: torch {torch.get_num_threads()} (OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}); {args.steps} steps of {args.batch} x "
        f"{args.seq_len} tokens, {args.repeats} repeats alternating, float32"
    )
    text = args.data.read_text(encoding="utf-8")[:200_000]
    settings = [f"train.max_steps={args.steps}", f"train.batch_size={args.batch}",
                f"train.seq_len={args.seq_len}", "train.lr=1e-4", "train.min_lr=1e-5",
                "train.warmup_steps=2", "train.eval_every=0", "train.checkpoint_every=0",
                f"train.log_every={min(10, args.steps)}", "train.mixed_precision=no"]  # fmt: skip
    times: dict[str, list[float]] = {"gentool": [], "accelerate": [], "fixed": []}
    losses: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder, data = root / "gpt2-small-random", root / "data.txt"
        data.write_text(text, encoding="utf-8")
        save_model(folder, text)
        train = LMTrainConfig(batch_size=args.batch, seq_len=args.seq_len)
        accelerate_loop(folder, text, train, 3)  # warm-up
        for repeat in range(args.repeats):
            order = ("gentool", "accelerate") if repeat % 2 == 0 else ("accelerate", "gentool")
            for name in order:
                if name == "gentool":
                    found = gentool_run(folder, data, root / f"run{repeat}", settings)
                    times["fixed"].append(found["fixed"])
                    train = LMTrainConfig(**found["recipe"]["train"])  # gentool's own settings
                else:
                    found = accelerate_loop(folder, text, train, args.steps)
                times[name].append(found["seconds"])
                losses[name] = found["loss"]
    tokens = args.steps * args.batch * args.seq_len
    gentool_s, plain_s = (statistics.median(times[k]) for k in ("gentool", "accelerate"))
    row = {
        "steps": args.steps,
        "accelerate_tokens_per_s": tokens / plain_s,
        "gentool_tokens_per_s": tokens / gentool_s,
        "overhead": gentool_s / plain_s - 1,
        "accelerate_s_per_step": plain_s / args.steps,
        "gentool_s_per_step": gentool_s / args.steps,
        "gentool_fixed_s": statistics.median(times["fixed"]),
        "losses": losses,
        "runs": times,
    }
    print("| model | steps | accelerate tok/s | gentool tok/s | overhead (gentool / accelerate "
          "- 1) | s/step accelerate / gentool | gentool fixed s | last loss accelerate / "
          "gentool |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---|---:|---|")
    print(
        f"| GPT-2 small shape, random, 124 M | {args.steps} "
        f"| {row['accelerate_tokens_per_s']:,.0f} "
        f"| {row['gentool_tokens_per_s']:,.0f} | {row['overhead']:+.1%} "
        f"| {row['accelerate_s_per_step']:.2f} / {row['gentool_s_per_step']:.2f} "
        f"| {row['gentool_fixed_s']:.1f} | {losses['accelerate']:.4f} / {losses['gentool']:.4f} |"
    )
    if args.json:
        args.json.write_text(json.dumps({"cpu": model_name, **row}, indent=2) + "\n")


if __name__ == "__main__":
    main()
