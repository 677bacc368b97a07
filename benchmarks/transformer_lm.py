"""nanoGPT's CPU run of shakespeare_char through gentool's engine and a plain PyTorch loop;
KV-cache generation; a markdown table.

    python benchmarks/transformer_lm.py [--steps 2000] [--precisions no,bf16] [--quick]

The model and training are nanoGPT's README command for a CPU (config/train_shakespeare_char.py
scaled down): block 64, batch 12, 4 layers, 4 heads, 128 dims, no dropout, 2000 iterations,
AdamW lr 1e-3 -> 1e-4 (cosine) after 100 warmup steps, beta2 0.99, weight decay 0.1, gradient
clipping 1.0; the first 90% of tinyshakespeare's characters train, the last 10% are held out.
gentool's model is a Hugging Face GPT-2 (nanoGPT's architecture, plus biases) with SDPA
attention, built by ``gentool_transformer.gpt2.build_model``.

For each precision (fp32, bf16 autocast), the engine (``gentool.neural.engine.fit``, what
``gentool train --recipe transformer-shakespeare-char`` runs) and a plain PyTorch loop train
the same initial weights on the same batches. The table gives ms/iteration, tokens/s, the
validation loss as nanoGPT estimates it (200 random batches of 12 x 64) and over the whole
held-out split (consecutive 64-token windows), and MFU: the model's FLOP/s by nanoGPT's
``estimate_mfu`` (6N + 12 L H Q T per token, N without position embeddings) divided by this
CPU's measured matmul FLOP/s in that precision (a large ``torch.matmul``, in this run).

Generation: 256 new tokens, greedy, with the KV cache against recomputing every prefix
(``use_cache=False``), same model, same tokens (asserted). The context is 64 positions, so
both slide their window as ``LanguageModel.continue_ids`` does.

Timings on a shared machine are noisy: compare the columns of one run, not runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "plugins")]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"
NANOGPT = {"val_loss": 1.88, "ms_per_iter": 34.0}  # its README's CPU run, on this machine


def matmul_flops(dtype: Any, size: int = 2048, repeats: int = 5) -> float:
    """The best FLOP/s of a (size x size) @ (size x size) matmul in ``dtype``."""
    import torch

    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    torch.matmul(a, b)  # warm up
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best


def model_flops_per_iter(model: Any, batch: int, block: int) -> float:
    """nanoGPT's ``estimate_mfu`` numerator: FLOPs of one forward + backward iteration."""
    config = model.config
    n = sum(p.numel() for p in model.parameters()) - model.transformer.wpe.weight.numel()
    layers, heads, head_dim = config.n_layer, config.n_head, config.n_embd // config.n_head
    per_token = 6 * n + 12 * layers * heads * head_dim * block
    return per_token * block * batch


def autocast(precision: str) -> Any:
    import torch

    if precision == "bf16":
        return torch.autocast("cpu", torch.bfloat16)
    return contextlib.nullcontext()


def plain_loop(task: Any, config: Any) -> float:
    """The reference: the same training written directly in PyTorch. Returns seconds."""
    import torch
    import torch.nn.functional as F

    from gentool.neural.config import lr_at

    model = task.model
    model.train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": rest}],
        lr=config.lr,
        betas=(config.beta1, config.beta2),
        foreach=True,
    )
    rows = slice(0, config.batch_size)
    losses = torch.zeros(())
    started = time.perf_counter()
    for step in range(config.max_steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, config)
        batch = task.train_batch(step, rows)
        with autocast(config.mixed_precision):
            logits = model(input_ids=batch["input_ids"], use_cache=False).logits
        loss = F.cross_entropy(logits.float().flatten(0, 1), batch["labels"].flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses += loss.detach()
        if (step + 1) % config.log_every == 0:
            float(losses)  # the engine syncs to log as often
            losses.zero_()
    return time.perf_counter() - started


def estimated_val_loss(model: Any, val: Any, precision: str, batches: int = 200) -> float:
    """nanoGPT's ``estimate_loss``: the mean loss of ``batches`` random 12 x 64 val batches."""
    import torch
    import torch.nn.functional as F

    generator = torch.Generator().manual_seed(1337)
    model.eval()
    losses = []
    with torch.no_grad(), autocast(precision):
        for _ in range(batches):
            starts = torch.randint(len(val) - 64, (12,), generator=generator)
            chunk = val[starts[:, None] + torch.arange(65)]
            logits = model(input_ids=chunk[:, :-1], use_cache=False).logits
            losses.append(
                float(F.cross_entropy(logits.float().flatten(0, 1), chunk[:, 1:].flatten()))
            )
    return sum(losses) / len(losses)


def whole_val_loss(task: Any, precision: str) -> float:
    import torch

    task.model.eval()
    with torch.no_grad(), autocast(precision):
        total, count = task.evaluate(task.model, slice(0, task.rows), 0)
    return total / count


def generation(lm: Any, new_tokens: int) -> dict[str, float]:
    """tokens/s for greedy generation with the KV cache and recomputing every prefix."""
    from gentool.tasks import GenerationRequest

    request = GenerationRequest(temperature=0, max_tokens=new_tokens)
    prompt = [lm.bos]
    lm.continue_ids(prompt, GenerationRequest(temperature=0, max_tokens=8))  # warm up
    started = time.perf_counter()
    cached = lm.continue_ids(prompt, request)
    cached_s = time.perf_counter() - started
    started = time.perf_counter()
    uncached = lm.continue_ids(prompt, request, use_cache=False)
    uncached_s = time.perf_counter() - started
    assert cached.tolist() == uncached.tolist(), "the KV cache changed the greedy output"
    return {"cached_tok_s": new_tokens / cached_s, "uncached_tok_s": new_tokens / uncached_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--precisions", default="no,bf16", help="comma-separated: no, bf16")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--eval-iters", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="100 steps, 20 eval batches")
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.eval_iters = 100, 20

    import torch

    from gentool.model import Runtime
    from gentool.neural.engine import fit
    from gentool.neural.tokenizers import encode_text, train_tokenizer
    from gentool_transformer.gpt2 import WindowTask, build_model
    from gentool_transformer.lm import LanguageModel, LMConfig, LMTrainConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    text = args.data.read_text(encoding="utf-8")
    tokenizer = train_tokenizer("char", [text])
    bos = int(tokenizer.convert_tokens_to_ids(tokenizer.bos_token))  # type: ignore[arg-type]
    ids = torch.tensor([bos, *encode_text(tokenizer, text)])
    cut = len(ids) - int(len(ids) * 0.1)
    model_config = LMConfig(
        d_model=128, num_layers=4, num_heads=4, d_ff=512, context_length=64, dropout=0.0
    )

    def task() -> WindowTask:
        torch.manual_seed(0)
        model = build_model(model_config, len(tokenizer), bos)
        return WindowTask(model, ids[:cut], ids[cut:], rows=12, seq_len=64, seed=0)

    peak = {"no": matmul_flops(torch.float32), "bf16": matmul_flops(torch.bfloat16)}
    results: dict[str, dict[str, float]] = {}
    engine_task = None
    for precision in args.precisions.split(","):
        config = LMTrainConfig(
            max_steps=args.steps,
            batch_size=12,
            seq_len=64,
            lr=1e-3,
            min_lr=1e-4,
            warmup_steps=100,
            beta2=0.99,
            weight_decay=0.1,
            grad_clip=1.0,
            eval_every=0,
            checkpoint_every=0,
            log_every=10,
            mixed_precision=precision,
        )
        plain = task()
        seconds = plain_loop(plain, config)
        results[f"plain {precision}"] = {"seconds": seconds} | losses(
            plain, ids[cut:], precision, args
        )
        engine_task = task()
        with tempfile.TemporaryDirectory() as run_dir:
            runtime = Runtime(device="cpu", progress=False)
            fitted = fit(engine_task, config, runtime, Path(run_dir), log=lambda m: None)
        results[f"engine {precision}"] = {"seconds": fitted.seconds} | losses(
            engine_task, ids[cut:], precision, args
        )
        flops = model_flops_per_iter(engine_task.model, 12, 64)
        for name in (f"plain {precision}", f"engine {precision}"):
            r = results[name]
            r["ms_per_iter"] = 1000 * r["seconds"] / args.steps
            r["tokens_per_s"] = args.steps * 12 * 64 / r["seconds"]
            r["mfu"] = flops * args.steps / r["seconds"] / peak[precision]
    assert engine_task is not None
    lm = LanguageModel(engine_task.model.eval(), tokenizer, model_config, {})
    gen = generation(lm, args.new_tokens)

    params = sum(p.numel() for p in engine_task.model.parameters())
    print(
        f"nanoGPT shakespeare_char CPU config: GPT-2 4 x 128 (4 heads), {params / 1e6:.2f}M "
        f"parameters, batch 12 x block 64, {args.steps} iterations; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}; "
        f"matmul peak: fp32 {peak['no'] / 1e9:.0f} GFLOP/s, bf16 {peak['bf16'] / 1e9:.0f} GFLOP/s"
    )
    print()
    print(
        "| loop | precision | ms/iter | tokens/s | val loss (200 batches) | val loss (whole) "
        "| MFU |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        loop, precision = name.split()
        print(
            f"| {loop} | {'fp32' if precision == 'no' else precision} | {r['ms_per_iter']:.1f} | "
            f"{r['tokens_per_s']:,.0f} | {r['val_estimate']:.4f} | {r['val_whole']:.4f} | "
            f"{r['mfu']:.1%} |"
        )
    print(
        f"| nanoGPT (README, this machine) | fp32 | {NANOGPT['ms_per_iter']:.0f} | "
        f"{12 * 64 / NANOGPT['ms_per_iter'] * 1000:,.0f} | {NANOGPT['val_loss']:.2f} | | |"
    )
    for precision in args.precisions.split(","):
        ratio = results[f"plain {precision}"]["seconds"] / results[f"engine {precision}"]["seconds"]
        print(f"\nengine speed / plain loop speed, {precision}: {ratio:.2f}")
    print(
        f"\ngeneration, {args.new_tokens} new tokens (greedy, same tokens): KV cache "
        f"{gen['cached_tok_s']:,.0f} tok/s, no cache {gen['uncached_tok_s']:,.0f} tok/s "
        f"({gen['cached_tok_s'] / gen['uncached_tok_s']:.1f}x)"
    )
    if args.json:
        record = {"results": results, "peak_flops": peak, "generation": gen}
        args.json.write_text(json.dumps(record, indent=2) + "\n")


def losses(task: Any, val: Any, precision: str, args: argparse.Namespace) -> dict[str, float]:
    return {
        "val_estimate": estimated_val_loss(task.model, val, precision, args.eval_iters),
        "val_whole": whole_val_loss(task, precision),
    }


if __name__ == "__main__":
    main()
