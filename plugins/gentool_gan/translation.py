"""The tensors of image-to-image translation: paired (pix2pix) and unpaired (CycleGAN).
``gentool_gan.translator`` holds the kinds; this module needs torch and is imported when
they train, load or translate.

paired: a U-Net G maps A to B; a PatchGAN D sees (A, B) side by side, real pairs against
(A, G(A)); G minimises the adversarial loss plus ``l1_weight`` x L1 to the true B (Isola et
al. 2017), and ``l2_weight`` x the squared error: L1 pulls an ambiguous pixel to the median
of its colours, the squared error to their mean, which is what PSNR scores. The pairs
travel as one image of A's and B's channels stacked, so a batch of pairs is a batch of the
engine's ordinary images.

cyclegan: G_AB and G_BA, D_A and D_B (unconditional PatchGANs); G minimises the LSGAN
loss of both directions, ``cycle_weight`` x (|G_BA(G_AB(a)) - a| + |G_AB(G_BA(b)) - b|) and,
when A and B have the same channels, ``identity_weight`` x ``cycle_weight`` x (|G_AB(b) - b|
+ |G_BA(a) - a|) (Zhu et al. 2017). D learns from a history pool of ``pool_size`` earlier
fakes: half of each batch's fakes are swapped for pooled ones. The pool is a buffer of the
trained module, so checkpoints hold it and a resumed run equals an uninterrupted one; its
random choices are drawn per batch index, like all of a batch.

Images are translated at the model's ``image_size`` and the result resized back to the
input's size: the networks learnt the scale of the training images.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gentool.errors import DataError
from gentool.output.images import make_grid, save_image
from gentool_gan import quality
from gentool_gan.adversarial import (
    AdversarialPair,
    AdversarialTask,
    Stats,
    d_loss,
    d_outputs,
    g_loss,
    to_device,
    to_uint8,
    unwrap,
)
from gentool_gan.configs import TranslatorConfig, TranslatorTrainConfig
from gentool_gan.pairs import Domain
from gentool_gan.unet import PatchDiscriminator, UNetGenerator, unet_depth

SAMPLES = 8
MAX_PIXELS = 16 * 10**6  # larger inputs are refused: resizing them down loses what matters
PIL_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def residual_base(channels_in: int, channels_out: int) -> int:
    """The input channels G adds its output to: all of them when A and B have the same
    channels, one gray channel repeated over B's, else none (G draws B from scratch)."""
    if channels_in == channels_out:
        return channels_in
    return 1 if channels_in == 1 else 0


def build_generator(channels_in: int, channels_out: int, width: int, depth: int) -> UNetGenerator:
    return UNetGenerator(
        channels_in, channels_out, residual_base(channels_in, channels_out), width, depth
    )


class CycleGenerators(nn.Module):
    """G_AB and G_BA, saved together as ``ab.*`` and ``ba.*``."""

    def __init__(self, channels_a: int, channels_b: int, width: int, depth: int) -> None:
        super().__init__()
        self.ab = build_generator(channels_a, channels_b, width, depth)
        self.ba = build_generator(channels_b, channels_a, width, depth)


class CycleDiscriminators(nn.Module):
    def __init__(self, channels_a: int, channels_b: int, config: TranslatorConfig) -> None:
        super().__init__()
        layers = disc_layers(config)
        self.a = PatchDiscriminator(channels_a, config.width, layers, config.spectral_norm)
        self.b = PatchDiscriminator(channels_b, config.width, layers, config.spectral_norm)


def disc_layers(config: TranslatorConfig) -> int:
    """D's stride-2 layers: ``model.disc_layers``, or by default as many as the U-Net has,
    at most 3 (pix2pix's PatchGAN)."""
    return config.disc_layers or min(3, unet_depth(config.image_size))


def _none(images: torch.Tensor) -> torch.Tensor:
    """No condition: an unconditional PatchDiscriminator sees the image alone."""
    return images[:, :0]


# -- paired -----------------------------------------------------------------------------------


class PairedPair(AdversarialPair):
    """pix2pix on stacked pairs: ``batch["real"]`` holds A's channels, then B's."""

    def __init__(
        self,
        generator: UNetGenerator,
        discriminator: PatchDiscriminator,
        channels_a: int,
        loss: str,
        train: TranslatorTrainConfig,
    ) -> None:
        super().__init__(generator, discriminator)
        self.channels_a, self.kind = channels_a, loss
        self.smoothing, self.l1_weight = train.label_smoothing, train.l1_weight
        self.l2_weight = train.l2_weight

    def split(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        real = batch["real"]
        return real[:, : self.channels_a], real[:, self.channels_a :]

    def discriminator_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, Stats]:
        a, b = self.split(batch)
        with torch.no_grad():
            fake = self.generator(a)
        real_logits, fake_logits = self.discriminator(b, a), self.discriminator(fake, a)
        loss = d_loss(real_logits, fake_logits, self.kind, self.smoothing)
        return loss, {"loss_d": loss.detach(), **d_outputs(real_logits, fake_logits, self.kind)}

    def generator_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, Stats]:
        a, b = self.split(batch)
        fake = self.generator(a)
        adversarial = g_loss(self.discriminator(fake, a), self.kind)
        error = fake.float() - b.float()
        l1 = error.abs().mean()
        loss = adversarial + self.l1_weight * l1
        stats = {"loss_g": adversarial.detach(), "l1": l1.detach()}
        if self.l2_weight > 0:  # the mean colour where the colour is a guess: what PSNR rewards
            l2 = error.square().mean()
            loss = loss + self.l2_weight * l2
            stats["l2"] = l2.detach()
        return loss, stats


class PairedTask(AdversarialTask):
    """Batches of stacked pairs; the held-out score is the sampling G's L1 to the true B.
    With ``train.flip``, each training pair is mirrored left-right on a coin flip drawn per
    batch index (so a resumed or multi-process run draws the same), pix2pix's augmentation."""

    def __init__(self, model: PairedPair, samples: torch.Tensor, **kw: Any) -> None:
        super().__init__(model, loss_kind=model.kind, **kw)
        self.samples = samples  # uint8 stacked pairs for the sample grids
        self.channels_a = model.channels_a
        self.flip = bool(getattr(self.train, "flip", False))

    def make_batch(
        self, index: int, rows: slice, generator: torch.Generator, split: str = "train"
    ) -> dict[str, Any]:
        batch = self.real_batch(index, rows, split)
        if self.flip and split == "train":
            coins = self.draw(generator, rows, lambda n, g: torch.rand(n, generator=g))
            mirror = (coins < 0.5)[:, None, None, None]
            batch["real"] = torch.where(mirror, batch["real"].flip(-1), batch["real"])
        return batch

    def evaluate(self, model: nn.Module, rows: slice, max_batches: int) -> tuple[float, int]:
        if self.val_images is None or len(self.val_images) < self.batch_items:
            return 0.0, 0
        sampler = unwrap(model).sampler()
        batches = len(self.val_images) // self.batch_items
        batches = min(batches, max_batches) if max_batches else batches
        device = next(model.parameters()).device
        total, count = 0.0, 0
        for index in range(batches):
            real = to_device(self.real_batch(index, rows, "val"), device)["real"]
            a, b = real[:, : self.channels_a], real[:, self.channels_a :]
            total += float((sampler(a) - b).abs().flatten(1).mean(1).sum())
            count += len(real)
        return total, count

    def write_samples(self, pair: AdversarialPair, step: int) -> None:
        assert self.run_dir is not None
        save_image(paired_grid(pair.sampler(), self.channels_a, self.samples),
                   self.run_dir / "samples" / f"step-{step}.png")  # fmt: skip


@torch.no_grad()
def paired_grid(generator: nn.Module, channels_a: int, stacked: torch.Tensor) -> Any:
    """One row per pair: A | G(A) | true B."""
    images = stacked.float() / 127.5 - 1
    a, b = images[:, :channels_a], images[:, channels_a:]
    return grid_rows([[x, y, z] for x, y, z in zip(a, generator(a), b, strict=True)])


# -- cyclegan ---------------------------------------------------------------------------------


class CyclePair(AdversarialPair):
    """CycleGAN: ``generator`` is CycleGenerators, ``discriminator`` CycleDiscriminators;
    the history pools are buffers (``pool_a``: fakes of A, ``pool_b``: fakes of B)."""

    def __init__(
        self,
        generators: CycleGenerators,
        discriminators: CycleDiscriminators,
        channels: tuple[int, int],
        config: TranslatorConfig,
        train: TranslatorTrainConfig,
    ) -> None:
        super().__init__(generators, discriminators)
        self.kind, self.smoothing = config.loss, train.label_smoothing
        self.cycle_weight, self.identity_weight = train.cycle_weight, train.identity_weight
        self.same_channels = channels[0] == channels[1]
        size, pool = config.image_size, train.pool_size
        self.register_buffer("pool_a", torch.zeros(pool, channels[0], size, size))
        self.register_buffer("pool_b", torch.zeros(pool, channels[1], size, size))
        self.register_buffer("pool_count", torch.zeros(2, dtype=torch.long))  # (A's, B's)

    @torch.no_grad()
    def from_pool(
        self, which: int, fakes: torch.Tensor, coins: torch.Tensor, picks: torch.Tensor
    ) -> torch.Tensor:
        """CycleGAN's image pool: while it fills, a fake goes in and is used; then, on a
        coin flip, a random pooled image is used instead and the fake takes its place."""
        pool: Any = self.pool_a if which == 0 else self.pool_b
        counts: Any = self.pool_count
        size = len(pool)
        if size == 0:
            return fakes
        out = fakes.clone()
        for i in range(len(fakes)):
            count = int(counts[which])
            if count < size:
                pool[count] = fakes[i]
                counts[which] += 1
            elif coins[i] < 0.5:
                j = int(picks[i]) % size
                out[i] = pool[j]
                pool[j] = fakes[i]
        return out

    def discriminator_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, Stats]:
        a, b = batch["real"], batch["real_b"]
        g: Any = self.generator
        d: Any = self.discriminator
        with torch.no_grad():
            fake_b = self.from_pool(1, g.ab(a), batch["coin_b"], batch["pick_b"])
            fake_a = self.from_pool(0, g.ba(b), batch["coin_a"], batch["pick_a"])
        real_b, fake_b_logits = d.b(b, _none(b)), d.b(fake_b, _none(fake_b))
        real_a, fake_a_logits = d.a(a, _none(a)), d.a(fake_a, _none(fake_a))
        loss_b = d_loss(real_b, fake_b_logits, self.kind, self.smoothing)
        loss_a = d_loss(real_a, fake_a_logits, self.kind, self.smoothing)
        loss = loss_a + loss_b
        stats = {"loss_d": loss.detach(), **d_outputs(real_b, fake_b_logits, self.kind)}
        return loss, stats

    def generator_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, Stats]:
        a, b = batch["real"], batch["real_b"]
        g: Any = self.generator
        d: Any = self.discriminator
        fake_b, fake_a = g.ab(a), g.ba(b)
        adversarial = g_loss(d.b(fake_b, _none(fake_b)), self.kind) + g_loss(
            d.a(fake_a, _none(fake_a)), self.kind
        )
        cycle = (g.ba(fake_b) - a).abs().mean() + (g.ab(fake_a) - b).abs().mean()
        loss = adversarial + self.cycle_weight * cycle
        stats = {"loss_g": adversarial.detach(), "cycle": cycle.detach()}
        if self.same_channels and self.identity_weight > 0:
            identity = (g.ab(b) - b).abs().mean() + (g.ba(a) - a).abs().mean()
            loss = loss + self.identity_weight * self.cycle_weight * identity
            stats["identity"] = identity.detach()
        return loss, stats


class CycleTask(AdversarialTask):
    """Batches of A (``real``) and of B (``real_b``, its own shuffled passes) and the pool's
    coin flips; the held-out score is the sampling generators' cycle L1 on A and B."""

    def __init__(
        self,
        model: CyclePair,
        images_b: torch.Tensor,
        val_images_b: torch.Tensor | None,
        samples: torch.Tensor,
        **kw: Any,
    ) -> None:
        super().__init__(model, loss_kind=model.kind, **kw)
        self.images_b, self.val_images_b = images_b, val_images_b
        self.samples = samples  # uint8 A images for the sample grids

    def split_images(self, split: str) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        if split == "train_b":
            return self.images_b, None
        if split == "val_b":
            return self.val_images_b, None
        return super().split_images(split)

    def make_batch(
        self, index: int, rows: slice, generator: torch.Generator, split: str = "train"
    ) -> dict[str, Any]:
        batch = self.real_batch(index, rows, split)
        batch["real_b"] = self.real_batch(index, rows, f"{split}_b")["real"]
        for side in ("a", "b"):
            batch[f"coin_{side}"] = self.draw(
                generator, rows, lambda n, g: torch.rand(n, generator=g)
            )
            batch[f"pick_{side}"] = self.draw(
                generator, rows, lambda n, g: torch.randint(0, 2**31 - 1, (n,), generator=g)
            )
        return batch

    def learning_rate(self, step: int, config: Any) -> float:
        return scheduled_lr(step, config)

    def evaluate(self, model: nn.Module, rows: slice, max_batches: int) -> tuple[float, int]:
        if (
            self.val_images is None
            or self.val_images_b is None
            or min(len(self.val_images), len(self.val_images_b)) < self.batch_items
        ):
            return 0.0, 0
        sampler: Any = unwrap(model).sampler()
        batches = min(len(self.val_images), len(self.val_images_b)) // self.batch_items
        batches = min(batches, max_batches) if max_batches else batches
        device = next(model.parameters()).device
        total, count = 0.0, 0
        for index in range(batches):
            a = to_device(self.real_batch(index, rows, "val"), device)["real"]
            b = to_device(self.real_batch(index, rows, "val_b"), device)["real"]
            error = (sampler.ba(sampler.ab(a)) - a).abs().flatten(1).mean(1)
            error = error + (sampler.ab(sampler.ba(b)) - b).abs().flatten(1).mean(1)
            total += float(error.sum())
            count += len(a)
        return total, count

    def write_samples(self, pair: AdversarialPair, step: int) -> None:
        assert self.run_dir is not None
        save_image(cycle_grid(pair.sampler(), self.samples),
                   self.run_dir / "samples" / f"step-{step}.png")  # fmt: skip


def scheduled_lr(step: int, config: Any) -> float:
    """``lr_schedule=linear`` (CycleGAN's): ``lr`` for the first ``decay_from`` of the steps,
    then a straight line to ``min_lr`` at the last; else the engine's cosine."""
    from gentool.neural.config import lr_at

    if getattr(config, "lr_schedule", "cosine") != "linear":
        return lr_at(step, config)
    if step < config.warmup_steps:
        return float(config.lr * (step + 1) / config.warmup_steps)
    start = max(config.warmup_steps, int(config.max_steps * config.decay_from))
    if step < start:
        return float(config.lr)
    progress = (step - start + 1) / max(1, config.max_steps - start)
    return float(config.lr + (config.min_lr - config.lr) * min(1.0, progress))


@torch.no_grad()
def cycle_grid(generators: Any, images_a: torch.Tensor) -> Any:
    """One row per A image: A | G_AB(A) | G_BA(G_AB(A))."""
    a = images_a.float() / 127.5 - 1
    b = generators.ab(a)
    return grid_rows([[x, y, z] for x, y, z in zip(a, b, generators.ba(b), strict=True)])


# -- pictures ---------------------------------------------------------------------------------


def grid_rows(rows: list[list[torch.Tensor]]) -> Any:
    """A grid of (C, H, W) tensors in [-1, 1], one row per list; every tile in RGBA when any
    is, so that gray, RGB and RGBA tiles sit together."""
    tiles = [to_image(t[None]) for row in rows for t in row]
    mode = "RGBA" if any(t.mode == "RGBA" for t in tiles) else "RGB"
    return make_grid([t.convert(mode) for t in tiles], columns=len(rows[0]))


def to_tensor(image: Any, channels: int) -> torch.Tensor:
    """A PIL image in ``channels`` (1, 3, 4) -> (1, C, H, W) in [-1, 1]."""
    array = np.asarray(image.convert(PIL_MODES[channels]), dtype=np.float32)
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    return torch.from_numpy(array.copy())[None] / 127.5 - 1


def to_image(tensor: torch.Tensor) -> Any:
    """(1, C, H, W) in [-1, 1] -> a PIL image in L, RGB or RGBA."""
    from PIL import Image

    array = to_uint8(tensor)[0].permute(1, 2, 0).numpy()
    return Image.fromarray(np.ascontiguousarray(array[..., 0] if array.shape[-1] == 1 else array))


@torch.no_grad()
def translate_images(
    generator: nn.Module, images: Sequence[Any], size: int, channels_in: int
) -> list[Any]:
    """Each image translated at ``size`` x ``size``, the result resized to its own size."""
    from PIL import Image

    out = []
    for image in images:
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise DataError(
                f"a {width}x{height} image is more than {MAX_PIXELS // 10**6} million pixels; "
                f"this model works at {size}x{size}: scale the image down first"
            )
        small = image.convert(PIL_MODES[channels_in]).resize((size, size), Image.Resampling.BICUBIC)
        result = to_image(generator(to_tensor(small, channels_in)))
        out.append(result if result.size == (width, height) else result.resize(
            (width, height), Image.Resampling.BICUBIC))  # fmt: skip
    return out


def side_by_side(before: Any, after: Any) -> Any:
    """``before`` and ``after`` next to each other (``--grid``)."""
    mode = "RGBA" if "A" in before.mode + after.mode else "RGB"
    return make_grid([before.convert(mode), after.convert(mode)], columns=2)


# -- scoring ------------------------------------------------------------------------------------


def floats(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).float() / 127.5 - 1


@torch.no_grad()
def run_batches(generator: nn.Module, images: torch.Tensor) -> torch.Tensor:
    return torch.cat([generator(part) for part in images.split(64)])


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> [0, 1] through 8 bits, what a saved image holds."""
    return to_uint8(images).double() / 255


def image_quality(made: torch.Tensor, true: torch.Tensor, name: str) -> dict[str, float]:
    """PSNR (dB), SSIM and mean absolute error (0-1 scale) of ``made`` against ``true``."""
    x, y = to_unit(made), to_unit(true)
    return {
        f"psnr{name}": float(quality.psnr(x, y).clamp(max=100).mean()),
        f"ssim{name}": float(quality.ssim(x, y).mean()),
        f"l1{name}": float((x - y).abs().mean()),
    }


def baseline_colours(a: np.ndarray, b: np.ndarray) -> dict[str, list[float]]:
    """The mean colour of B inside A's dark shapes and outside them (A's luminance below or
    above the middle): what the trivial baseline fills a silhouette and its ground with."""
    dark = a.astype(np.float64).mean(1) < 128  # (N, H, W)
    pixels = b.transpose(0, 2, 3, 1).astype(np.float64)  # (N, H, W, C)
    inside = pixels[dark].mean(0) if dark.any() else pixels.reshape(-1, b.shape[1]).mean(0)
    outside = pixels[~dark].mean(0) if (~dark).any() else inside
    return {"inside": inside.round(3).tolist(), "outside": outside.round(3).tolist()}


def baseline(a: np.ndarray, colours: dict[str, list[float]]) -> torch.Tensor:
    """Every A image's dark shape filled with one colour, the rest with another ([-1, 1])."""
    dark = torch.from_numpy(a.astype(np.float64).mean(1) < 128)[:, None]  # (N, 1, H, W)
    inside = torch.tensor(colours["inside"]).view(1, -1, 1, 1)
    outside = torch.tensor(colours["outside"]).view(1, -1, 1, 1)
    return (torch.where(dark, inside, outside) / 127.5 - 1).float()


def channels_of(generator: Any) -> tuple[int, int]:
    """(input, output) channels of a U-Net."""
    return int(generator.down[0][0].in_channels), int(generator.out_channels)


def check_channels(generator: nn.Module, channels_a: int, channels_b: int) -> None:
    want = channels_of(generator)
    if want != (channels_a, channels_b):
        raise DataError(
            f"this model translates {want[0]}-channel images to {want[1]}-channel ones; the "
            f"data holds {channels_a} and {channels_b} channels: give data like the training "
            "data's (or set model.channels_a/channels_b when training)"
        )


def evaluate_paired(
    generator: nn.Module,
    a: Domain,
    b: Domain,
    colours: dict[str, list[float]] | None,
    target_name: str,
    inception: Any = None,
) -> dict[str, Any]:
    """PSNR/SSIM/L1 of G(A) against the true B; the same for the mean-colour baseline;
    FID/KID of G(A) against B in B's feature space (``_direction``), or in ``inception``
    (an ``inception.InceptionSpace``) when given."""
    check_channels(generator, a.channels, b.channels)
    made = run_batches(generator, floats(a.images))
    true = floats(b.images)
    metrics: dict[str, Any] = {"pairs": len(a), **image_quality(made, true, "")}
    if colours is not None and len(colours["inside"]) == b.channels:
        metrics.update(image_quality(baseline(a.images, colours), true, "_baseline"))
    if min(len(a), len(b)) >= 4:  # (FID/KID need a few images on each side)
        size = int(a.images.shape[-1])
        metrics.update(_direction(generator, a, b, target_name, size, "a2b", inception))
    return metrics


def _features(domain: Domain, name: str, size: int) -> Any:
    """gentool_gan's feature space of a domain: a classifier trained on it when it has
    labels, else the fixed random CNN (``metrics.feature_space``)."""
    from gentool.data.images import ImageSet
    from gentool_gan.metrics import feature_space

    return feature_space(ImageSet(domain.images, domain.labels, domain.classes), name, size)


def _direction(
    generator: nn.Module, source: Domain, target: Domain, target_name: str, size: int, tag: str,
    inception: Any = None,
) -> dict[str, Any]:  # fmt: skip
    """FID/KID of ``generator(source)`` against real ``target`` in the target's feature
    space, and class preservation: the share of translations that a classifier trained
    on the target domain assigns to their source image's class (both domains labelled
    with the same class names)."""
    from gentool_gan.metrics import fid, kid

    made = to_uint8(run_batches(generator, floats(source.images))).numpy()
    if min(len(made), len(target)) < 4:
        raise DataError("FID and KID need at least 4 images in each domain; give more")
    space = inception if inception is not None else _features(target, target_name, size)
    real_features, _ = space(target.images)
    made_features, probs = space(made)
    kid_mean, _ = kid(made_features, real_features)
    out: dict[str, Any] = {
        f"feature_space_{tag[-1]}": space.name,
        f"fid_{tag}_{space.name}": fid(made_features, real_features),
        f"kid_{tag}_{space.name}": kid_mean,
    }
    if (
        space.accuracy is not None
        and source.labels is not None
        and source.classes == target.classes
    ):
        out[f"class_preservation_{tag}"] = float((probs.argmax(1) == source.labels).mean())
        out[f"classifier_accuracy_{tag[-1]}"] = space.accuracy
    return out


def evaluate_cycle(
    generators: Any, a: Domain, b: Domain, a_names: list[str], b_name: str,
    inception: Any = None,
) -> dict[str, Any]:  # fmt: skip
    """Cycle reconstruction (PSNR/SSIM/L1 of G_BA(G_AB(a)) against a, and of B's cycle),
    FID/KID of each direction against the real other domain (in each domain's classifier
    space, or both in ``inception``), class preservation both ways where both domains have
    the same labels (classifier spaces only)."""
    check_channels(generators.ab, a.channels, b.channels)
    size = int(a.images.shape[-1])
    real_a, real_b = floats(a.images), floats(b.images)
    cycle_a = run_batches(generators.ba, run_batches(generators.ab, real_a))
    cycle_b = run_batches(generators.ab, run_batches(generators.ba, real_b))
    metrics: dict[str, Any] = {"images_a": len(a), "images_b": len(b)}
    metrics.update(image_quality(cycle_a, real_a, "_cycle_a"))
    metrics.update(image_quality(cycle_b, real_b, "_cycle_b"))
    metrics.update(_direction(generators.ab, a, b, Path(b_name).name, size, "a2b", inception))
    metrics.update(_direction(generators.ba, b, a, Path(a_names[0]).name, size, "b2a", inception))
    return metrics
