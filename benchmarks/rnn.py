"""The training engine against a plain PyTorch loop, and recurrent-state generation; a table.

    python benchmarks/rnn.py [--steps 60] [--hidden 384] [--layers 2] [--batch 32] [--seq 128]

Data: the first 90% of tinyshakespeare's characters train, the last 10% are held out (the
engine's own split, train.val_fraction=0.1). Both loops train the same character LSTM from the
same initial weights on the same batches (truncated BPTT, hidden state carried, AdamW, warmup +
cosine, gradient clipping); they alternate, --repeats times each, and the table reports the
median tokens/s of each and their ratio. The held-out loss is over the whole 10%, after
--steps steps. Generation: 256 new tokens with the recurrent state carried (one step per
token) against re-running the model over the whole prefix for every token.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "plugins")]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"


def build(args: argparse.Namespace, vocab: int) -> Any:
    import torch

    from gentool_rnn.modeling import RnnConfig, RnnForCausalLM

    torch.manual_seed(0)
    return RnnForCausalLM(
        RnnConfig(
            vocab_size=vocab,
            cell="lstm",
            embedding_size=args.embedding,
            hidden_size=args.hidden,
            num_layers=args.layers,
            dropout=args.dropout,
        )
    )


def plain_loop(task: Any, config: Any) -> float:
    """The reference: the same training written directly in PyTorch. Returns seconds."""
    import contextlib

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
    state = None
    losses = torch.zeros(())
    started = time.perf_counter()
    for step in range(config.max_steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, config)
        batch = task.train_batch(step, rows)
        bf16 = config.mixed_precision == "bf16"
        autocast = torch.autocast("cpu", torch.bfloat16) if bf16 else contextlib.nullcontext()
        with autocast:
            out = model(input_ids=batch["input_ids"], state=None if batch["reset"] else state)
        loss = F.cross_entropy(out.logits.float().flatten(0, 1), batch["labels"].flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        state = out.state.detach()
        losses += loss.detach()
        if (step + 1) % config.log_every == 0:
            float(losses)  # the engine syncs to log as often
            losses.zero_()
    return time.perf_counter() - started


def held_out_loss(task: Any, model: Any) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        total, count = task.evaluate(model, slice(0, task.val.shape[0]), 0)
    return total / count


def generation(model: Any, bos: int, new_tokens: int) -> dict[str, float]:
    """tokens/s for greedy generation with the state carried, and re-running the prefix."""
    import torch

    model.eval()
    prompt = torch.tensor([[bos]])
    with torch.no_grad():
        started = time.perf_counter()
        carried = model.generate(
            prompt, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False
        )
        carried_s = time.perf_counter() - started
        ids = prompt
        started = time.perf_counter()
        for _ in range(new_tokens):  # no state: every token runs over the whole prefix
            logits = model(input_ids=ids, use_cache=False).logits[:, -1]
            ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], dim=1)
        rerun_s = time.perf_counter() - started
    assert torch.equal(carried, ids), "state carrying changed the greedy output"
    return {"carried_tok_s": new_tokens / carried_s, "rerun_tok_s": new_tokens / rerun_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=384)
    parser.add_argument("--embedding", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument(
        "--mixed-precision", choices=["no", "bf16"], default="no", help="for both loops"
    )
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    args = parser.parse_args()

    import torch

    from gentool.model import Runtime
    from gentool.neural.engine import fit
    from gentool.neural.tokenizers import encode_text, train_tokenizer
    from gentool_rnn.family import RnnTrainConfig
    from gentool_rnn.task import StreamTask

    text = args.data.read_text(encoding="utf-8")
    tokenizer = train_tokenizer("char", [text])
    bos = tokenizer.convert_tokens_to_ids(tokenizer.bos_token)
    ids = torch.tensor([bos, *encode_text(tokenizer, text)])
    cut = len(ids) - int(len(ids) * 0.1)
    config = RnnTrainConfig(
        max_steps=args.steps,
        batch_size=args.batch,
        seq_len=args.seq,
        warmup_steps=min(50, args.steps // 4),
        eval_every=0,
        checkpoint_every=0,
        log_every=10,
        mixed_precision=args.mixed_precision,
    )

    def task() -> StreamTask:
        model = build(args, len(tokenizer))
        return StreamTask(model, ids[:cut], ids[cut:], args.batch, args.seq)

    times: dict[str, list[float]] = {"plain": [], "engine": []}
    losses: dict[str, float] = {}
    for _ in range(args.repeats):
        plain = task()
        times["plain"].append(plain_loop(plain, config))
        losses["plain"] = held_out_loss(plain, plain.model)
        engine = task()
        with tempfile.TemporaryDirectory() as run_dir:
            runtime = Runtime(device="cpu", progress=False)
            result = fit(engine, config, runtime, Path(run_dir), log=lambda m: None)
        times["engine"].append(args.steps * engine.items_per_batch / result.items_per_second)
        losses["engine"] = float(result.val_loss or math.nan)
    tokens = args.steps * args.batch * args.seq
    rates = {k: tokens / statistics.median(v) for k, v in times.items()}
    gen = generation(engine.model, bos, args.new_tokens)

    print(
        f"char LSTM {args.layers}x{args.hidden} (emb {args.embedding}), batch {args.batch} x "
        f"seq {args.seq}, {args.steps} steps, autocast {args.mixed_precision}, "
        f"torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}"
    )
    print(f"{'':28} {'plain PyTorch':>14} {'gentool engine':>15}")
    print(f"{'training tokens/s':28} {rates['plain']:>14,.0f} {rates['engine']:>15,.0f}")
    overhead = rates["plain"] / rates["engine"] - 1
    print(f"{'engine overhead':28} {'':>14} {overhead:>+14.1%}")
    print(f"{'held-out loss (nats/char)':28} {losses['plain']:>14.4f} {losses['engine']:>15.4f}")
    print(
        f"generation, {args.new_tokens} tokens: state carried {gen['carried_tok_s']:,.0f} tok/s, "
        f"prefix re-run {gen['rerun_tok_s']:,.0f} tok/s "
        f"({gen['carried_tok_s'] / gen['rerun_tok_s']:.1f}x)"
    )
    if args.json:
        record = {"rates": rates, "overhead": overhead, "losses": losses, "generation": gen}
        args.json.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
