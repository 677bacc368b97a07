"""The tensors of image restoration with a conditional GAN (pix2pix: a U-Net generator, a
PatchGAN discriminator, L1 + adversarial loss), for ``model.task`` = colorize, inpaint or
upscale; ``gentool_gan.restorer`` is the kind of model. This module needs torch; the kind
imports it when used.

Training pairs are made on the fly from clean images, so any image folder trains a
restorer: each batch degrades its images the task's way, deterministically from the batch
index (``AdversarialTask``'s seeded generator), and the generator learns to undo it.

=========  ==================================  ==============================================
task       degraded input (what G sees)        ``gentool restore`` on a user's image
=========  ==================================  ==============================================
colorize   the luminance Y (ITU-R 601, as      any image: its gray version is coloured; out
           PIL's "L"); needs colour data       comes RGB at the input's size. The model
                                               colours an image_size copy; its chroma is
                                               resized onto the input's own full-resolution
                                               luminance, which is kept exactly
inpaint    a square of side mask_size x        the hole is the image's transparent pixels
           image_size at a random place set    (alpha 0 in an RGBA/LA PNG: erase it in any
           to black, and the mask as an        editor); an image without alpha gets the
           extra channel                       centre square of side mask_size x its short
                                               side. Out: the input's size and colour mode
                                               (alpha dropped); only hole pixels change
upscale    box-averaged down by                a small image comes back upscale_factor
           upscale_factor, then nearest-       times larger in each dimension (a 7x7 digit
           neighbour back up (pixelated)       -> 28x28), any size: the network is fully
                                               convolutional and runs at the output size
=========  ==================================  ==============================================

The generator's output is projected onto what must not change: colorize keeps the input
luminance (only chroma is learnt), inpaint keeps the known pixels (the output is
composited into the hole). ``gentool evaluate --data CLEAN`` degrades clean images the
training way (fixed seed), restores them and reports PSNR and SSIM (``gentool_gan.quality``)
of the restored images and of the degraded inputs against the clean ones, on 8-bit images.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gentool.data.images import read_images
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
    gradient_penalty,
    seeded,
    to_device,
    to_uint8,
    unwrap,
)
from gentool_gan.configs import RestorerConfig, RestorerTrainConfig
from gentool_gan.unet import PatchDiscriminator, UNetGenerator

EVAL_SEED = 0  # the hole positions of `evaluate` (inpaint)
SAMPLES = 8  # images in a sample grid
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, PIL's RGB -> "L"
MAX_PIXELS = 16 * 10**6  # upscale output: the U-Net's activations grow with it
GRAY_MODES = ("L", "LA", "1", "I", "I;16", "F")


# -- degradations (tensors in [-1, 1], N x C x H x W) --------------------------------------


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> (N, 1, H, W); the weights sum to 1, so [-1, 1] stays [-1, 1]."""
    weights = torch.tensor(LUMA, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    return (rgb * weights).sum(1, keepdim=True)


def hole_side(config: RestorerConfig, size: int) -> int:
    return max(1, min(size, round(config.mask_size * size)))


def hole_masks(corners: torch.Tensor, size: int, side: int) -> torch.Tensor:
    """(N, 2) top-left corners (row, column) -> (N, 1, size, size) masks, 1 in the hole."""
    span = torch.arange(size)
    rows = (span >= corners[:, :1]) & (span < corners[:, :1] + side)  # (N, size)
    cols = (span >= corners[:, 1:]) & (span < corners[:, 1:] + side)
    return (rows[:, :, None] & cols[:, None, :]).float().unsqueeze(1)


def random_corners(n: int, size: int, side: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randint(0, size - side + 1, (n, 2), generator=generator)


def pixelate(images: torch.Tensor, factor: int) -> torch.Tensor:
    """Box-average down by ``factor``, nearest-neighbour back up: blocks of factor^2."""
    return F.interpolate(F.avg_pool2d(images, factor), scale_factor=factor, mode="nearest")


def degrade(task: str, clean: torch.Tensor, mask: torch.Tensor | None, factor: int) -> torch.Tensor:
    """The generator's input for clean images: colorize (N, 1), inpaint (N, C + 1: the
    image with a black hole, then the mask), upscale (N, C)."""
    if task == "colorize":
        return luminance(clean)
    if task == "inpaint":
        assert mask is not None
        return torch.cat([clean * (1 - mask) - mask, mask], 1)
    return pixelate(clean, factor)


def degraded_view(task: str, condition: torch.Tensor, channels: int) -> torch.Tensor:
    """The degraded image as a picture, ``channels`` deep (the 'before' of a restoration)."""
    if task == "inpaint":
        return condition[:, :-1]
    return condition.expand(-1, channels, -1, -1) if condition.shape[1] != channels else condition


class RestorationGenerator(nn.Module):
    """A U-Net whose output is projected onto what the task must keep: ``(N, C_in, H, W)``
    degraded input -> ``(N, C, H, W)`` restored image in [-1, 1]."""

    def __init__(self, task: str, channels: int, width: int, depth: int) -> None:
        super().__init__()
        self.task = task
        in_channels = {"colorize": 1, "inpaint": channels + 1, "upscale": channels}[task]
        image_channels = 1 if task == "colorize" else channels
        self.in_channels = in_channels
        self.unet = UNetGenerator(in_channels, channels, image_channels, width, depth)

    def forward(self, condition: torch.Tensor) -> torch.Tensor:
        out = self.unet(condition)
        if self.task == "colorize":  # keep Y: shift R, G, B equally (chroma is unchanged)
            out = (out + condition - luminance(out)).clamp(-1, 1)
        elif self.task == "inpaint":  # keep the known pixels
            mask = condition[:, -1:]
            out = mask * out + (1 - mask) * condition[:, :-1]
        return out


# -- training -------------------------------------------------------------------------------


class RestorationPair(AdversarialPair):
    """pix2pix's objective: D sees (condition, image) pairs; G minimises the adversarial
    loss plus ``l1_weight`` x L1 to the clean image."""

    def __init__(
        self,
        generator: RestorationGenerator,
        discriminator: PatchDiscriminator,
        model: RestorerConfig,
        train: RestorerTrainConfig,
    ) -> None:
        super().__init__(generator, discriminator)
        self.task, self.factor = model.task, model.upscale_factor
        self.kind = model.loss
        self.smoothing, self.l1_weight, self.gp_weight = (
            train.label_smoothing,
            train.l1_weight,
            train.gp_weight,
        )

    def condition(self, batch: dict[str, Any]) -> torch.Tensor:
        return degrade(self.task, batch["real"], batch.get("mask"), self.factor)

    def discriminator_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, Stats]:
        real, condition = batch["real"], self.condition(batch)
        with torch.no_grad():
            fake = self.generator(condition)
        real_logits = self.discriminator(real, condition)  # (N, 1, h, w): one per patch
        fake_logits = self.discriminator(fake, condition)
        loss = d_loss(real_logits, fake_logits, self.kind, self.smoothing)
        stats = {"loss_d": loss.detach(), **d_outputs(real_logits, fake_logits, self.kind)}
        if self.kind == "wgan-gp":
            penalty = gradient_penalty(
                self.discriminator, real, fake, condition, alpha=batch.get("gp_alpha")
            )
            loss = loss + self.gp_weight * penalty
            stats["gp"] = penalty.detach()
        return loss, stats

    def generator_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, Stats]:
        real, condition = batch["real"], self.condition(batch)
        fake = self.generator(condition)
        adversarial = g_loss(self.discriminator(fake, condition), self.kind)
        l1 = (fake.float() - real.float()).abs().mean()
        loss = adversarial + self.l1_weight * l1
        return loss, {"loss_g": adversarial.detach(), "l1": l1.detach()}


class RestorationTask(AdversarialTask):
    """Batches of clean images (and hole masks for inpaint); the held-out score is the
    sampling generator's L1 to the clean images (in [-1, 1] units), which a restorer
    should drive down, rather than the discriminator's loss."""

    def __init__(
        self, model: RestorationPair, config: RestorerConfig, samples: torch.Tensor, **kw: Any
    ) -> None:
        super().__init__(model, loss_kind=config.loss, **kw)
        self.config = config
        self.samples = samples  # uint8 clean images for the sample grids

    def make_batch(
        self, index: int, rows: slice, generator: torch.Generator, split: str = "train"
    ) -> dict[str, Any]:
        batch = self.real_batch(index, rows, split)
        if self.config.task == "inpaint":
            size = batch["real"].shape[-1]
            side = hole_side(self.config, size)
            corners = self.draw(generator, rows, lambda n, g: random_corners(n, size, side, g))
            batch["mask"] = hole_masks(corners, size, side)
        return batch

    def evaluate(self, model: nn.Module, rows: slice, max_batches: int) -> tuple[float, int]:
        if self.val_images is None or len(self.val_images) < self.batch_items:
            return 0.0, 0
        sampler = unwrap(model).sampler()
        batches = len(self.val_images) // self.batch_items
        batches = min(batches, max_batches) if max_batches else batches
        total, count = 0.0, 0
        device = next(model.parameters()).device
        for index in range(batches):
            batch = to_device(
                self.make_batch(index, rows, seeded(self.seed, 2, index), "val"), device
            )
            real = batch["real"]
            restored = sampler(
                degrade(self.config.task, real, batch.get("mask"), self.config.upscale_factor)
            )
            total += float((restored - real).abs().flatten(1).mean(1).sum())
            count += len(real)
        return total, count

    def write_samples(self, pair: AdversarialPair, step: int) -> None:
        assert self.run_dir is not None
        grid = sample_grid(pair.sampler(), self.config, self.samples)
        save_image(grid, self.run_dir / "samples" / f"step-{step}.png")


def sample_grid(generator: nn.Module, config: RestorerConfig, clean: torch.Tensor) -> Any:
    """One row per image: degraded | restored | clean (the holes at the evaluation seed)."""
    from PIL import Image

    device = next(generator.parameters()).device
    images = clean.to(device).float() / 127.5 - 1
    degraded, restored = restore_batch(generator, config, images)
    tiles = []
    for row in zip(degraded, restored, images, strict=True):
        for picture in row:
            array = to_uint8(picture[None])[0].permute(1, 2, 0).numpy()
            tiles.append(Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array))
    return make_grid(tiles, columns=3)


@torch.no_grad()
def restore_batch(
    generator: nn.Module, config: RestorerConfig, clean: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Degrade clean images (in [-1, 1]) the training way, at the fixed evaluation seed, and
    restore them: (degraded pictures, restored images)."""
    mask = None
    if config.task == "inpaint":
        size = clean.shape[-1]
        side = hole_side(config, size)
        corners = random_corners(len(clean), size, side, torch.Generator().manual_seed(EVAL_SEED))
        mask = hole_masks(corners, size, side).to(clean.device)
    condition = degrade(config.task, clean, mask, config.upscale_factor)
    restored = torch.cat([generator(part) for part in condition.split(256)])
    return degraded_view(config.task, condition, clean.shape[1]), restored


def check_colour(images: np.ndarray, source: str) -> None:
    """Colorize learns colour from the data: gray images (or RGB ones that hold only gray
    pixels) are a DataError."""
    colour = images.shape[1] == 3 and bool(
        np.any(images[:, 0] != images[:, 1]) or np.any(images[:, 1] != images[:, 2])
    )
    if not colour:
        raise DataError(
            f"{source} holds only gray images; model.task=colorize learns colour from colour "
            "images: give a folder of colour pictures"
        )


# -- restoring and scoring ----------------------------------------------------------------------


def build_generator(config: RestorerConfig, channels: int, depth: int) -> RestorationGenerator:
    return RestorationGenerator(config.task, channels, config.width, depth)


@torch.no_grad()
def restore_images(
    generator: RestorationGenerator, config: RestorerConfig, images: Sequence[Any]
) -> list[Any]:
    """One restored PIL image per input (see the module's table for each task)."""
    restore_one = {"colorize": colorize, "inpaint": inpaint, "upscale": upscale}[config.task]
    return [restore_one(generator, config, image) for image in images]


def evaluate_restorer(
    generator: RestorationGenerator, config: RestorerConfig, paths: Sequence[Path]
) -> dict[str, Any]:
    """PSNR (dB) and SSIM of the restored images and of the degraded inputs ('before')
    against the clean ones, means over images; upscale adds bicubic interpolation of
    the down-sampled images, the classic reference."""
    colorize = config.task == "colorize"
    mode: Literal["auto", "gray", "rgb"] = "auto" if colorize else config.channels
    images = read_images(list(paths), config.image_size, mode).images
    if colorize:
        check_colour(images, ", ".join(map(str, paths)))
    clean = torch.from_numpy(images).float() / 127.5 - 1
    degraded, restored = restore_batch(generator, config, clean)
    results = {"before": degraded, "after": restored}
    if config.task == "upscale":
        small = F.avg_pool2d(clean, config.upscale_factor)
        results["bicubic"] = F.interpolate(
            small, scale_factor=config.upscale_factor, mode="bicubic"
        ).clamp(-1, 1)
    reference = to_unit(clean)
    metrics: dict[str, Any] = {"task": config.task, "images": len(clean)}
    for name, pictures in results.items():
        pictures = to_unit(pictures)
        metrics[f"psnr_{name}"] = float(quality.psnr(pictures, reference).mean())
        metrics[f"ssim_{name}"] = float(quality.ssim(pictures, reference).mean())
    metrics["psnr_gain"] = metrics["psnr_after"] - metrics["psnr_before"]
    return metrics


# -- one image ------------------------------------------------------------------------------------


def colorize(generator: RestorationGenerator, config: RestorerConfig, image: Any) -> Any:
    from PIL import Image

    gray = image.convert("L")
    size = config.image_size
    small = to_tensor(gray.resize((size, size), Image.Resampling.BICUBIC))
    colour = generator(small)  # (1, 3, S, S)
    chroma = colour - luminance(colour)  # what colour adds to the gray
    chroma = F.interpolate(chroma, size=(gray.height, gray.width), mode="bicubic")
    return to_image((to_tensor(gray) + chroma).clamp(-1, 1))


def upscale(generator: RestorationGenerator, config: RestorerConfig, image: Any) -> Any:
    out_mode = image_mode(image)
    factor = config.upscale_factor
    width, height = image.width * factor, image.height * factor
    if width * height > MAX_PIXELS:
        raise DataError(
            f"a {image.width}x{image.height} image upscales to {width}x{height}, more than "
            f"{MAX_PIXELS // 10**6} million pixels; crop it into smaller pieces first"
        )
    small = to_tensor(image.convert(model_mode(config)))
    pixelated = F.interpolate(small, scale_factor=factor, mode="nearest")
    return to_image(generator(pixelated)).convert(out_mode)


def inpaint(generator: RestorationGenerator, config: RestorerConfig, image: Any) -> Any:
    from PIL import Image

    out_mode = image_mode(image)
    hole = hole_of(image, config.mask_size)  # (1, 1, H, W), 1 in the hole
    full = to_tensor(image.convert(model_mode(config)))
    full = full * (1 - hole) - hole
    size = config.image_size
    small = to_tensor(to_image(full).resize((size, size), Image.Resampling.BICUBIC))
    small_hole = (F.interpolate(hole, size=(size, size), mode="area") > 0).float()
    small = small * (1 - small_hole) - small_hole  # a pixel partly in the hole is hole
    filled = generator(torch.cat([small, small_hole], 1))
    filled = F.interpolate(filled, size=full.shape[-2:], mode="bicubic").clamp(-1, 1)
    return to_image(hole * filled + (1 - hole) * full).convert(out_mode)


def model_mode(config: RestorerConfig) -> str:
    """The PIL mode the model works in: "RGB" or "L"."""
    return "RGB" if config.channels == "rgb" else "L"


# -- PIL <-> tensors ----------------------------------------------------------------------------


def image_mode(image: Any) -> str:
    """The colour mode of the output for ``image``: "L" for gray ones, "RGB" otherwise."""
    return "L" if image.mode in GRAY_MODES else "RGB"


def to_tensor(image: Any) -> torch.Tensor:
    """An "L" or "RGB" PIL image -> (1, C, H, W) in [-1, 1]."""
    array = np.asarray(image, dtype=np.float32)
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    return torch.from_numpy(array.copy())[None] / 127.5 - 1


def to_image(tensor: torch.Tensor) -> Any:
    """(1, C, H, W) in [-1, 1] -> an "L" or "RGB" PIL image."""
    from PIL import Image

    array = to_uint8(tensor)[0].permute(1, 2, 0).numpy()
    return Image.fromarray(array[..., 0] if array.shape[-1] == 1 else np.ascontiguousarray(array))


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> [0, 1], through 8 bits (what a saved image holds)."""
    return to_uint8(images).double() / 255


def hole_of(image: Any, mask_size: float) -> torch.Tensor:
    """The hole to fill (1, 1, H, W): transparent pixels when the image has an alpha
    channel, else the centre square of side mask_size x the short side."""
    width, height = image.size
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        alpha = np.asarray(image.convert("RGBA"), dtype=np.uint8)[..., 3]
        return torch.from_numpy((alpha == 0).astype(np.float32))[None, None]
    side = max(1, round(mask_size * min(width, height)))
    hole = torch.zeros(1, 1, height, width)
    top, left = (height - side) // 2, (width - side) // 2
    hole[..., top : top + side, left : left + side] = 1
    return hole
