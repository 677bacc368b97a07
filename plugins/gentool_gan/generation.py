"""The tensors of image generation with a DCGAN (``gentool_gan.generator`` is the kind of
model): the networks and their training task, and sampling: seeded draws, class labels,
latent walks and sample grids. This module needs torch; the kind imports it when used.
"""

from __future__ import annotations

import secrets
from typing import Any

import numpy as np
import torch

from gentool.errors import GentoolError
from gentool.output.images import make_grid, save_image
from gentool.tasks import GenerationRequest
from gentool_gan.adversarial import (
    AdversarialPair,
    AdversarialTask,
    Stats,
    d_loss,
    d_outputs,
    g_loss,
    gradient_penalty,
    sampling,
    seeded,
    spread,
    to_uint8,
)
from gentool_gan.base import count_parameters
from gentool_gan.networks import Discriminator, Generator

REFERENCE_IMAGES = 1000  # training images kept in the run for the memorisation check
GRID_SAMPLES = 64
GRID_SEED = 1234  # the noise of every sample grid: grids of one run are comparable
CHUNK = 256  # images generated per forward pass


class GenerationPair(AdversarialPair):
    """DCGAN's generator and discriminator, with the losses of ``model.loss``."""

    def __init__(
        self,
        generator: Generator,
        discriminator: Discriminator,
        loss: str = "nonsaturating",
        smoothing: float = 0.0,
        gp_weight: float = 10.0,
    ) -> None:
        super().__init__(generator, discriminator)
        self.latent_size = generator.latent_size
        self.num_classes = generator.num_classes
        self.loss_kind = loss
        self.smoothing = smoothing
        self.gp_weight = gp_weight

    def discriminator_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, Stats]:
        real, real_labels = batch["real"], batch.get("label")
        fake_labels = batch.get("fake_label")
        with torch.no_grad():
            fake = self.generator(batch["z"], fake_labels)
        real_logits = self.discriminator(real, real_labels)
        fake_logits = self.discriminator(fake, fake_labels)
        loss = d_loss(real_logits, fake_logits, self.loss_kind, self.smoothing)
        stats = {**d_outputs(real_logits, fake_logits, self.loss_kind)}
        if self.loss_kind == "wgan-gp":
            penalty = gradient_penalty(
                self.discriminator, real, fake, fake_labels, alpha=batch.get("gp_alpha")
            )
            loss = loss + self.gp_weight * penalty
            stats["gp"] = penalty.detach()
        stats["loss_d"] = loss.detach()
        stats["spread_real"] = spread(real, real_labels)
        return loss, stats

    def generator_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, Stats]:
        labels = batch.get("fake_label")
        fake = self.generator(batch["z"], labels)
        loss = g_loss(self.discriminator(fake, labels), self.loss_kind)
        return loss, {"loss_g": loss.detach(), "spread_fake": spread(fake, labels)}


class GenerationTask(AdversarialTask):
    """Real images, and for each batch noise z (and labels to draw, when conditional)."""

    def __init__(self, model: GenerationPair, *args: Any, **kwargs: Any) -> None:
        super().__init__(model, *args, **kwargs)
        self.latent_size = model.latent_size
        self.num_classes = model.num_classes
        self.last_extras: dict[str, float] = {}

    def make_batch(
        self, index: int, rows: slice, generator: torch.Generator, split: str = "train"
    ) -> dict[str, Any]:
        batch = self.real_batch(index, rows, split)
        batch["z"] = self.noise(generator, rows, self.latent_size)
        if self.num_classes:
            k = self.num_classes
            batch["fake_label"] = self.draw(
                generator, rows, lambda n, g: torch.randint(0, k, (n,), generator=g)
            )
        else:
            batch.pop("label", None)
        return batch

    def write_samples(self, pair: AdversarialPair, step: int) -> None:
        assert self.run_dir is not None
        save_image(sample_grid(pair.sampler()), self.run_dir / "samples" / f"step-{step}.png")

    def log_extras(self) -> dict[str, float]:
        self.last_extras = super().log_extras()
        return self.last_extras


def trained_figures(task: GenerationTask, result: Any) -> dict[str, Any]:
    """What a generating kind reports after ``fit`` (``result``), beside the engine's
    summary: the generator's steps, the critic's held-out loss, the last logged window's
    means (D(x), D(G(z)), the losses, diversity) and both networks' sizes."""
    pair = result.model
    return {
        "generator_steps": task.generator_steps(result.steps),
        "val_loss_d": result.val_loss,  # the discriminator's loss on held-out images
        **{k: v for k, v in task.last_extras.items() if not k.startswith("grad_norm")},
        "parameters_g": count_parameters(pair.generator),
        "parameters_d": count_parameters(pair.discriminator),
    }


# -- sampling ---------------------------------------------------------------------------------


def generate_images(
    pair: GenerationPair, classes: list[str], request: GenerationRequest, interpolation: str
) -> list[Any]:
    """``num_samples`` PIL images (times ``interpolate`` frames: each sample a row walking
    from one latent to another, by ``interpolation``, "slerp" or "linear"), drawn from
    noise seeded by ``request.seed``; ``classes`` are a conditional model's class names."""
    from PIL import Image

    seed = request.seed if request.seed is not None else secrets.randbits(63)
    labels = labels_for(classes, request.class_label, request.num_samples)
    frames = request.interpolate if request.interpolate > 1 else 0
    generator = seeded(seed)
    z = torch.randn(request.num_samples, pair.latent_size, generator=generator)
    if frames:
        end = torch.randn(request.num_samples, pair.latent_size, generator=generator)
        t = torch.linspace(0, 1, frames)
        walk = slerp if interpolation == "slerp" else lerp
        z = walk(z[:, None, :], end[:, None, :], t[None, :, None]).flatten(0, 1)
        labels = None if labels is None else labels.repeat_interleave(frames)
    images = sample(pair, z, labels)
    mode = "L" if images.shape[1] == 1 else "RGB"
    arrays = images.permute(0, 2, 3, 1).numpy()
    return [Image.fromarray(a[..., 0] if mode == "L" else a, mode) for a in arrays]


def labels_for(classes: list[str], class_label: int | None, count: int) -> torch.Tensor | None:
    """The labels to draw for a model of ``classes`` ([] when unconditional): every
    sample ``class_label``, or the classes in turn."""
    k = len(classes)
    if class_label is not None and not k:
        raise GentoolError(
            f"--class {class_label}: this model is not class-conditional (it was trained "
            "without model.conditional); drop --class"
        )
    if not k:
        return None
    if class_label is None:
        return torch.arange(count) % k
    if not 0 <= class_label < k:
        raise GentoolError(
            f"--class {class_label}: this model draws classes 0-{k - 1} ({', '.join(classes)})"
        )
    return torch.full((count,), class_label, dtype=torch.long)


def sample(
    pair: GenerationPair, z: torch.Tensor, labels: torch.Tensor | None = None
) -> torch.Tensor:
    """uint8 images (N, C, H, W) for latents ``z`` (N, latent_size), from the sampler."""
    net = pair.sampler()
    device = next(net.parameters()).device
    out = []
    with sampling(net):
        for start in range(0, max(1, len(z)), CHUNK):  # (no latents: one empty batch)
            y = None if labels is None else labels[start : start + CHUNK].to(device)
            out.append(to_uint8(net(z[start : start + CHUNK].to(device), y)))
    return torch.cat(out)


def random_images(pair: GenerationPair, classes: list[str], count: int, seed: int) -> torch.Tensor:
    """``count`` uint8 samples (classes in turn when conditional), seeded."""
    z = torch.randn(count, pair.latent_size, generator=seeded(seed))
    return sample(pair, z, labels_for(classes, None, count))


# -- building and training ----------------------------------------------------------------


def build_pair(
    spec: dict[str, Any], smoothing: float = 0.0, gp_weight: float = 10.0
) -> GenerationPair:
    """The networks ``spec`` (a run's config.json) describes, freshly initialised."""
    size, channels, width = spec["image_size"], spec["channels"], spec["width"]
    num_classes = spec["num_classes"]
    generator = Generator(size, channels, spec["latent_size"], width, num_classes)
    discriminator = Discriminator(
        size,
        channels,
        width,
        num_classes,
        batch_norm=spec["loss"] != "wgan-gp" and not spec["spectral_norm"],
        spectral_norm=spec["spectral_norm"],
    )
    pair = GenerationPair(generator, discriminator, spec["loss"], smoothing, gp_weight)
    pair.ema_decay = 1.0 if spec.get("ema", True) else 0.0  # (only its sign matters here)
    return pair


def reference_images(images: np.ndarray, seed: int) -> np.ndarray:
    """Up to REFERENCE_IMAGES of the training images (a seeded choice), kept in the run
    for the memorisation check of ``gentool evaluate``."""
    if len(images) <= REFERENCE_IMAGES:
        return np.ascontiguousarray(images)
    chosen = np.sort(np.random.default_rng(seed).permutation(len(images))[:REFERENCE_IMAGES])
    return np.ascontiguousarray(images[chosen])


def sample_grid(generator: torch.nn.Module, count: int = GRID_SAMPLES) -> Any:
    """A grid of ``count`` samples from fixed noise; one class per column when conditional."""
    from PIL import Image

    k: int = getattr(generator, "num_classes", 0)
    latent: int = getattr(generator, "latent_size")  # noqa: B009 (typed: a Generator's)
    columns = min(k, 10) if k else None
    labels = torch.arange(count) % columns if columns else None
    z = torch.randn(count, latent, generator=seeded(GRID_SEED))
    device = next(generator.parameters()).device
    with sampling(generator):
        images = to_uint8(generator(z.to(device), None if labels is None else labels.to(device)))
    arrays = images.permute(0, 2, 3, 1).numpy()
    pictures = [Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a) for a in arrays]
    return make_grid(pictures, columns=columns)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation (Gaussian latents keep their norm along the way); linear
    where a and b are (nearly) parallel."""
    cos = (a * b).sum(-1, keepdim=True) / (
        a.norm(dim=-1, keepdim=True) * b.norm(dim=-1, keepdim=True)
    )
    omega = torch.arccos(cos.clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    if float(so.abs().min()) < 1e-6:
        return lerp(a, b, t)
    return torch.sin((1 - t) * omega) / so * a + torch.sin(t * omega) / so * b


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return (1 - t) * a + t * b
