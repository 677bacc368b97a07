"""The training engine against a plain PyTorch DCGAN loop on MNIST; a markdown table.

    python benchmarks/gan.py [--steps 200] [--repeats 3] [--width 32] [--batch 64] [--quick]
    python benchmarks/gan.py --fid-floor    # evaluate's figures for real digits: the floor

Both loops train the same DCGAN (``gentool_gan.networks``, 28 px, non-saturating loss,
one-sided label smoothing 0.1, EMA generator) from the same initial weights on the same
batches (``GenerationTask.train_batch``: real digits and noise), alternating one
discriminator step and one generator step, batch ``--batch``. The plain loop is the
textbook one: two Adam optimizers, the discriminator frozen for the generator's step, the
moving average updated after it. The engine adds what gentool's training gives every
family: the phase dispatch through one module, gradient norms, per-step statistics for
the log, checkpoint/signal bookkeeping. They alternate ``--repeats`` times; the table
reports the median images/s of each (a step = one update of one network on ``--batch``
images) and the engine's overhead. The machine may be shared: compare the ratio, not the
absolute figures, and rerun when the two columns' spreads overlap.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "plugins")]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "mnist_t10k" / "t10k-images-idx3-ubyte.gz"


def plain_loop(task: Any, pair: Any, steps: int, batch: int) -> float:
    """The same training written directly in PyTorch. Returns seconds."""
    import torch
    import torch.nn.functional as F

    g, d, ema = pair.generator, pair.discriminator, pair.ema
    opt_g = torch.optim.AdamW(g.parameters(), lr=2e-4, betas=(0.5, 0.999), weight_decay=0.0)
    opt_d = torch.optim.AdamW(d.parameters(), lr=2e-4, betas=(0.5, 0.999), weight_decay=0.0)
    rows = slice(0, batch)
    pair.train()
    started = time.perf_counter()
    for step in range(steps):
        data = task.train_batch(step, rows)
        z = data["z"]
        if step % 2 == 0:  # discriminator
            real = data["real"].float() / 127.5 - 1
            with torch.no_grad():
                fake = g(z)
            real_logits, fake_logits = d(real), d(fake)
            loss = F.binary_cross_entropy_with_logits(
                real_logits, torch.full_like(real_logits, 0.9)
            ) + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
            opt_d.zero_grad(set_to_none=True)
            loss.backward()
            opt_d.step()
        else:  # generator, with the discriminator frozen
            d.requires_grad_(False)
            fake_logits = d(g(z))
            loss = F.softplus(-fake_logits).mean()
            opt_g.zero_grad(set_to_none=True)
            loss.backward()
            opt_g.step()
            d.requires_grad_(True)
            with torch.no_grad():
                k = (step + 1) // 2
                decay = min(0.999, (1 + k) / (10 + k))
                for e, p in zip(ema.parameters(), g.parameters(), strict=True):
                    e.lerp_(p, 1 - decay)
                for e, b in zip(ema.buffers(), g.buffers(), strict=True):
                    e.copy_(b)
        if (step + 1) % 50 == 0:
            float(loss.detach())  # the engine syncs to log as often
    return time.perf_counter() - started


def fid_floor(data: Path) -> None:
    """What ``gentool evaluate RUN --data gentool/embedded/digits.npz`` gives for real digits:
    the figures a perfect generator would reach, in the same feature space."""
    from gentool.data.images import default_images_path, read_images
    from gentool_gan import metrics

    real = read_images([default_images_path()], 28, "gray")
    space = metrics.feature_space(real, default_images_path().name, 28)
    others = read_images([data], 28, "gray").images[1000:2000]
    real_features, _ = space(real.images)
    other_features, other_probs = space(others)
    kid_mean, kid_std = metrics.kid(other_features, real_features)
    print(f"| feature space | `{space.name}` (classifier accuracy {space.accuracy:.2f}) |")
    print("|---|---:|")
    floor = metrics.fid(other_features, real_features)
    print(f"| FID, real t10k 1,000-1,999 vs digits.npz | {floor:.1f} |")
    print(f"| KID | {kid_mean:.0f} ± {kid_std:.0f} |")
    for key, value in metrics.coverage(other_probs).items():
        print(f"| {key} | {value:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="40 steps, 2 repeats, width 16")
    parser.add_argument(
        "--fid-floor",
        action="store_true",
        help="instead: FID/KID of real digits (t10k 1,000-1,999) against the embedded ones",
    )
    args = parser.parse_args()
    if args.fid_floor:
        fid_floor(args.data)
        return
    if args.quick:
        args.steps, args.repeats, args.width = 40, 2, 16

    import torch

    from gentool.data.images import read_images
    from gentool.model import Runtime
    from gentool.neural.engine import fit
    from gentool_gan.configs import GanTrainConfig
    from gentool_gan.generation import GenerationPair, GenerationTask
    from gentool_gan.networks import Discriminator, Generator

    images = torch.from_numpy(read_images([args.data], 28, "gray").images)
    torch.manual_seed(0)
    initial = GenerationPair(
        Generator(28, 1, 100, args.width), Discriminator(28, 1, args.width), smoothing=0.1
    )
    config = GanTrainConfig(
        max_steps=args.steps,
        batch_size=args.batch,
        log_every=50,
        eval_every=0,
        checkpoint_every=0,
        sample_every=0,
        label_smoothing=0.1,
    )

    def task() -> GenerationTask:
        return GenerationTask(copy.deepcopy(initial), config, images, seed=0)

    times: dict[str, list[float]] = {"plain": [], "engine": []}
    load = os.getloadavg()[0]
    for _ in range(args.repeats):
        plain = task()
        times["plain"].append(plain_loop(plain, plain.model, args.steps, args.batch))
        engine = task()
        with tempfile.TemporaryDirectory() as run_dir:
            runtime = Runtime(device="cpu", progress=False)
            result = fit(engine, config, runtime, Path(run_dir), log=lambda m: None)
        times["engine"].append(args.steps * args.batch / result.items_per_second)
    rates = {k: [args.steps * args.batch / s for s in v] for k, v in times.items()}
    median = {k: statistics.median(v) for k, v in rates.items()}
    overhead = median["plain"] / median["engine"] - 1

    print(
        f"DCGAN 28 px, width {args.width}, batch {args.batch}, {args.steps} steps (D and G "
        f"alternating), {args.repeats} repeats; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
        f"load average {load:.1f} -> {os.getloadavg()[0]:.1f}"
    )
    print()
    print("| loop | images/s (median) | range | relative |")
    print("| --- | ---: | ---: | ---: |")
    for name, label in (("plain", "plain PyTorch"), ("engine", "gentool engine")):
        low, high = min(rates[name]), max(rates[name])
        ratio = median[name] / median["plain"]
        print(f"| {label} | {median[name]:,.0f} | {low:,.0f}-{high:,.0f} | {ratio:.3f} |")
    print()
    print(f"engine overhead: {overhead:+.1%} (target: under 10%)")


if __name__ == "__main__":
    main()
