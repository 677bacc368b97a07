"""Adversarial training on gentool's engine, shared by image generation and restoration.

The engine runs one loss and one optimizer per step. A GAN fits that by alternating: step
``s`` trains either the discriminator or the generator (``train.n_critic`` discriminator
steps, then one generator step), through one AdamW whose two parameter groups hold the
generator (``lr``) and the discriminator (``lr * train.lr_d_scale``: two-timescale
updates). The network not being trained gets no gradient in that step, and AdamW skips a
parameter without one, so its weights and moments stay as they were.

Everything runs through the prepared model's ``forward`` (DDP under torchrun), which
dispatches on ``batch["phase"]``; some parameters get no gradient in a step, hence
``find_unused_parameters``. ``train.max_steps`` counts both kinds of step.

A subclass of ``AdversarialPair`` implements ``discriminator_loss`` and ``generator_loss``;
a subclass of ``AdversarialTask`` implements ``make_batch`` (and ``write_samples``). This
module needs torch: the kinds' modules import it only when they train or load.
"""

from __future__ import annotations

import contextlib
import copy
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gentool.errors import RecipeError
from gentool.neural.config import TrainConfig
from gentool.neural.engine import TrainingTask
from gentool.runs import is_main_process
from gentool_gan.configs import check_adversarial

LOSSES = ("nonsaturating", "hinge", "wgan-gp", "lsgan")
Phase = Literal["d", "g"]
Stats = dict[str, torch.Tensor]


# -- losses ---------------------------------------------------------------------------------


def d_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str, smoothing: float = 0.0
) -> torch.Tensor:
    """The discriminator's loss on raw outputs (logits or critic scores), batch-averaged.

    nonsaturating: binary cross-entropy, real target ``1 - smoothing`` (one-sided label
    smoothing: fake targets stay 0); hinge: ``relu(1 - D(x)) + relu(1 + D(G(z)))``;
    wgan-gp: ``D(G(z)) - D(x)`` (add ``gradient_penalty`` times train.gp_weight); lsgan
    (least squares, CycleGAN's): ``((D(x) - 1)^2 + D(G(z))^2) / 2``.
    """
    real, fake = real_logits.float(), fake_logits.float()
    if kind == "nonsaturating":
        return F.binary_cross_entropy_with_logits(
            real, torch.full_like(real, 1.0 - smoothing)
        ) + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
    if kind == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    if kind == "wgan-gp":
        return fake.mean() - real.mean()
    if kind == "lsgan":
        return 0.5 * ((real - (1.0 - smoothing)).pow(2).mean() + fake.pow(2).mean())
    raise RecipeError(f"model.loss '{kind}' is unknown; valid: {', '.join(LOSSES)}")


def g_loss(fake_logits: torch.Tensor, kind: str) -> torch.Tensor:
    """The generator's loss: ``-log D(G(z))`` (non-saturating) or ``-D(G(z))``."""
    fake = fake_logits.float()
    if kind == "nonsaturating":
        return F.softplus(-fake).mean()  # = BCE(fake, 1)
    if kind in ("hinge", "wgan-gp"):
        return -fake.mean()
    if kind == "lsgan":
        return (fake - 1.0).pow(2).mean()
    raise RecipeError(f"model.loss '{kind}' is unknown; valid: {', '.join(LOSSES)}")


def gradient_penalty(
    discriminator: nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    *extra_inputs: Any,
    alpha: torch.Tensor | None = None,
) -> torch.Tensor:
    """WGAN-GP: ``(|grad_x D(x)| - 1)^2`` at random points between real and fake images.

    ``extra_inputs`` go to the discriminator after the image (labels, a conditioning
    image); ``alpha`` (B,) are the mixing weights (drawn here when not given: pass
    ``batch["gp_alpha"]`` so that a batch stays a pure function of its index). Zero when
    gradients are off (evaluation).
    """
    if not torch.is_grad_enabled():
        return real.new_zeros(())
    if alpha is None:
        alpha = torch.rand(real.shape[0], device=real.device)
    mix = alpha.to(real.dtype).view(-1, *([1] * (real.dim() - 1)))
    points = (mix * real.detach() + (1 - mix) * fake.detach()).requires_grad_(True)
    scores = discriminator(points, *extra_inputs)
    (grad,) = torch.autograd.grad(scores.float().sum(), points, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1.0) ** 2).mean()


def d_outputs(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str) -> Stats:
    """D(x) and D(G(z)) for the log: probabilities for the BCE loss, raw scores otherwise."""
    real, fake = real_logits.detach().float(), fake_logits.detach().float()
    if kind == "nonsaturating":
        real, fake = torch.sigmoid(real), torch.sigmoid(fake)
    return {"d_real": real.mean(), "d_fake": fake.mean()}


def spread(images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """Mean L2 distance between the distinct pairs of a batch (B, ...): how varied it is;
    with ``labels``, between pairs of the same label only (a conditional generator that
    ignores its noise draws one image per class: varied across classes, collapsed within).

    Report it as stat ``spread_fake`` (generator step) and ``spread_real`` (discriminator
    step); the task logs their ratio as ``diversity``, which falls towards 0 when the
    generator collapses onto a few outputs (about 1 when as varied as the data).
    """
    flat = images.detach().float().flatten(1)
    pairs = ~torch.eye(len(flat), dtype=torch.bool, device=flat.device)
    if labels is not None:
        pairs &= labels[:, None] == labels[None, :]
    distances = torch.cdist(flat, flat) * pairs
    return distances.sum() / pairs.sum().clamp(min=1)  # (0 without a pair; no host sync)


# -- the networks ---------------------------------------------------------------------------


class AdversarialPair(nn.Module):
    """A generator, a discriminator and the generator's moving average, as one module.

    ``forward(batch)`` returns ``(loss, stats)`` of the phase ``batch["phase"]``: subclasses
    implement ``discriminator_loss`` (generate fakes under ``torch.no_grad()``) and
    ``generator_loss``. ``stats`` are detached scalar tensors (``loss_d``, ``d_real``, ...).
    """

    def __init__(self, generator: nn.Module, discriminator: nn.Module) -> None:
        super().__init__()
        self.generator = generator
        self.discriminator = discriminator
        self.ema = copy.deepcopy(generator).requires_grad_(False).eval()
        self.ema_decay = 0.0  # set by the task from train.ema_decay (not saved)

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, Stats]:
        phase = batch["phase"]
        if phase not in ("d", "g"):
            raise ValueError(f"batch phase must be 'd' or 'g', got {phase!r}")
        # Only the network being trained records gradients: the other gets none, so the
        # optimizer leaves it alone (and the backward pass skips its weights).
        self.discriminator.requires_grad_(phase == "d")
        self.generator.requires_grad_(phase == "g")
        if phase == "d":
            return self.discriminator_loss(batch)
        return self.generator_loss(batch)

    def discriminator_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, Stats]:
        raise NotImplementedError

    def generator_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, Stats]:
        raise NotImplementedError

    @torch.no_grad()
    def update_ema(self, decay: float) -> None:
        """``ema = decay * ema + (1 - decay) * generator``; buffers (BatchNorm statistics)
        are copied."""
        ema: list[torch.Tensor] = list(self.ema.parameters())
        live: list[torch.Tensor] = [p.detach() for p in self.generator.parameters()]
        if ema:
            torch._foreach_lerp_(ema, live, 1.0 - decay)
        for target, source in zip(self.ema.buffers(), self.generator.buffers(), strict=True):
            target.copy_(source)

    def sampler(self) -> nn.Module:
        """The generator to sample from: the moving average when it is on."""
        return self.ema if self.ema_decay > 0 else self.generator


def unwrap(model: nn.Module) -> AdversarialPair:
    """The AdversarialPair inside a prepared model (DDP, compile wrappers)."""
    from accelerate.utils import extract_model_from_parallel

    pair = extract_model_from_parallel(model)
    assert isinstance(pair, AdversarialPair), type(pair)
    return pair


# -- the training task ----------------------------------------------------------------------


def seeded(*numbers: int) -> torch.Generator:
    """A CPU generator seeded by a hash of ``numbers`` (the run's seed, a batch index)."""
    state = np.random.SeedSequence([n % 2**63 for n in numbers]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


class AdversarialTask(TrainingTask):
    """A ``gentool.neural.engine`` task for an AdversarialPair and a set of real images.

    ``images`` are uint8 ``N x C x H x W`` (labels optional); ``val_images`` are held out:
    ``evaluate`` reports the discriminator's loss on them against fresh fakes (it rises
    above the training figure when D memorises its training images). Batch ``index``
    reads a pure function of the index: the run's images in a fresh permutation per pass,
    and noise from a generator seeded by (seed, index), drawn for the whole global batch
    and cut to this process's rows (``noise``, ``draw``), so that every process count sees
    the same global batch. A batch's uint8 tensors are images: they reach the model as
    floats in [-1, 1], on its device.
    """

    unit: ClassVar[str] = "images"
    find_unused_parameters: ClassVar[bool] = True  # each step trains one of the networks

    def __init__(
        self,
        model: AdversarialPair,
        train: Any,
        images: torch.Tensor,
        labels: torch.Tensor | None = None,
        val_images: torch.Tensor | None = None,
        val_labels: torch.Tensor | None = None,
        seed: int = 0,
        run_dir: Path | None = None,
        loss_kind: str = "nonsaturating",
    ) -> None:
        check_adversarial(train)
        self.model = model
        self.train = train
        self.seed = seed
        self.run_dir = run_dir
        self.loss_kind = loss_kind
        self.images, self.labels = images, labels
        self.val_images, self.val_labels = val_images, val_labels
        self.batch_items = train.batch_size // train.grad_accum  # one global micro-batch
        self.items_per_batch = self.batch_items
        model.ema_decay = train.ema_decay
        self._perms: dict[tuple[str, int], torch.Tensor] = {}
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}

    # -- batches ----------------------------------------------------------------------------
    def phase(self, step: int) -> Phase:
        """Step ``step`` (from 0) trains D for ``n_critic`` steps, then G for one."""
        cycle = self.train.n_critic + 1
        return "g" if step % cycle == cycle - 1 else "d"

    def generator_steps(self, steps: int) -> int:
        """How many of the first ``steps`` steps trained the generator."""
        return steps // (self.train.n_critic + 1)

    def train_batch(self, index: int, rows: slice) -> dict[str, Any]:
        generator = seeded(self.seed, index)
        batch = self.make_batch(index, rows, generator)
        if self.loss_kind == "wgan-gp":
            batch["gp_alpha"] = self.draw(generator, rows, lambda n, g: torch.rand(n, generator=g))
        batch["phase"] = self.phase(index // self.train.grad_accum)
        return batch

    def make_batch(
        self, index: int, rows: slice, generator: torch.Generator, split: str = "train"
    ) -> dict[str, Any]:
        """Batch ``index`` of ``split`` ("train" or "val"), restricted to ``rows``: here the
        real images ("real", uint8) and labels ("label"); subclasses add their noise."""
        return self.real_batch(index, rows, split)

    def real_batch(self, index: int, rows: slice, split: str = "train") -> dict[str, Any]:
        """Real images ``rows`` of batch ``index``: item ``index * B + j`` of the endless
        sequence of shuffled passes over the images (a new permutation each pass)."""
        images, labels = self.split_images(split)
        assert images is not None
        n = len(images)
        positions = torch.arange(
            index * self.batch_items + rows.start, index * self.batch_items + rows.stop
        )
        passes, offsets = positions // n, positions % n
        order = torch.empty_like(positions)
        for p in passes.unique().tolist():
            chosen = passes == p
            order[chosen] = self._permutation(split, int(p), n)[offsets[chosen]]
        batch: dict[str, Any] = {"real": images[order]}
        if labels is not None:
            batch["label"] = labels[order]
        return batch

    def split_images(self, split: str) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The images and labels of ``split``: "train" or "val" (a subclass may add more)."""
        if split == "train":
            return self.images, self.labels
        return self.val_images, self.val_labels

    def _permutation(self, split: str, number: int, n: int) -> torch.Tensor:
        key = (split, number)
        if key not in self._perms:
            if len(self._perms) > 8:
                self._perms.clear()
            # (another split: its own salt, from its name, so its order is its own)
            salt = {"train": 0, "val": 1}.get(split, zlib.crc32(split.encode()))
            self._perms[key] = torch.randperm(n, generator=seeded(self.seed, salt, number, -1))
        return self._perms[key]

    def noise(self, generator: torch.Generator, rows: slice, *shape: int) -> torch.Tensor:
        """Standard normal noise ``(rows, *shape)``, drawn for the whole global batch."""
        return self.draw(generator, rows, lambda n, g: torch.randn(n, *shape, generator=g))

    def draw(self, generator: torch.Generator, rows: slice, sample: Any) -> torch.Tensor:
        """``sample(B, generator)`` for the global batch of B items, cut to ``rows``."""
        return sample(self.batch_items, generator)[rows]

    # -- the loss -----------------------------------------------------------------------------
    def loss(self, model: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        loss, stats = model(to_device(batch, _device(model)))
        for name, value in stats.items():
            self._add(name, value)
        return loss

    def _add(self, name: str, value: torch.Tensor) -> None:
        value = value.detach().float()
        self._sums[name] = self._sums[name] + value if name in self._sums else value
        self._counts[name] = self._counts.get(name, 0) + 1

    def evaluate(self, model: nn.Module, rows: slice, max_batches: int) -> tuple[float, int]:
        """(sum, count) of the discriminator's loss on held-out real images against fakes
        (no gradient penalty); (0, 0) without held-out images."""
        if self.val_images is None or len(self.val_images) < self.batch_items:
            return 0.0, 0
        batches = len(self.val_images) // self.batch_items
        if max_batches:
            batches = min(batches, max_batches)
        device = _device(model)
        total, count = 0.0, 0
        for index in range(batches):
            batch = self.make_batch(index, rows, seeded(self.seed, 2, index), split="val")
            batch["phase"] = "d"
            loss, _ = model(to_device(batch, device))
            size = rows.stop - rows.start
            total += float(loss) * size
            count += size
        return total, count

    # -- the engine's hooks -------------------------------------------------------------------
    def param_groups(self, model: nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
        """G at ``lr``, D at ``lr * lr_d_scale``; weight decay on matrices only."""
        pair = unwrap(model)
        betas = (config.beta1, config.beta2)
        groups = []
        for net, scale in ((pair.generator, 1.0), (pair.discriminator, self.train.lr_d_scale)):
            params = list(net.parameters())  # (requires_grad toggles with the phase)
            for decay, chosen in (
                (config.weight_decay, [p for p in params if p.dim() >= 2]),
                (0.0, [p for p in params if p.dim() < 2]),
            ):
                if chosen:
                    groups.append(
                        {"params": chosen, "lr_scale": scale, "betas": betas, "weight_decay": decay}
                    )
        return groups

    def on_backward(self, model: nn.Module, step: int) -> None:
        """Drop any gradient of the network not trained in this step (DDP may fill them
        with zeros, and AdamW would then move it), and record the trained one's norm."""
        pair = unwrap(model)
        phase = self.phase(step - 1)
        trained, frozen = (
            (pair.discriminator, pair.generator)
            if phase == "d"
            else (pair.generator, pair.discriminator)
        )
        for p in frozen.parameters():
            p.grad = None
        grads = [p.grad for p in trained.parameters() if p.grad is not None]
        if grads:
            norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
            self._add(f"grad_norm_{phase}", norm)

    def on_step_end(self, model: nn.Module, step: int) -> None:
        pair = unwrap(model)
        if self.phase(step - 1) == "g" and self.train.ema_decay > 0:
            pair.update_ema(self.ema_decay_at(step))
        every = self.train.sample_every
        if every and step % every == 0 and self.run_dir is not None and is_main_process():
            with sampling(pair):
                self.write_samples(pair, step)

    def ema_decay_at(self, step: int) -> float:
        """train.ema_decay, ramped up over the first generator updates so that the average
        does not hold on to the random initial weights: min(decay, (1 + k) / (10 + k))."""
        k = self.generator_steps(step)
        return min(self.train.ema_decay, (1 + k) / (10 + k))

    def write_samples(self, pair: AdversarialPair, step: int) -> None:
        """Write ``samples/step-{step}.png`` in the run directory (subclasses)."""

    def log_extras(self) -> dict[str, float]:
        """The mean of each statistic since the last call; ``diversity`` is the ratio of
        the spread of generated images to that of real ones."""
        if not self._sums:
            return {}
        names = list(self._sums)
        means = torch.stack([self._sums[k] / self._counts[k] for k in names]).tolist()
        record = dict(zip(names, means, strict=True))
        self._sums.clear()
        self._counts.clear()
        fake, real = record.pop("spread_fake", None), record.pop("spread_real", None)
        if fake is not None and real:
            record["diversity"] = fake / real
        return record


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Tensors moved to ``device``; uint8 images become floats in [-1, 1]."""
    out: dict[str, Any] = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            value = value.to(device, non_blocking=True)
            if value.dtype == torch.uint8:
                value = value.float() / 127.5 - 1.0
        out[key] = value
    return out


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Floats in [-1, 1] (B, C, H, W) back to uint8 on the CPU."""
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()


@contextlib.contextmanager
def sampling(module: nn.Module) -> Iterator[None]:
    """Eval mode and no gradients for the duration; the previous mode afterwards."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        module.train(was_training)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device
