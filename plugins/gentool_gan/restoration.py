"""Image restoration with a conditional GAN (pix2pix: a U-Net generator, a PatchGAN
discriminator, L1 + adversarial loss): ``model.task`` = colorize, inpaint or upscale.

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

import json
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gentool import runs
from gentool.data.images import read_images
from gentool.errors import DataError, RecipeError
from gentool.family import RESTORE_IMAGE, SCORE_IMAGES, TrainingContext
from gentool.output.images import make_grid, save_image
from gentool.neural.engine import TrainingTask, check_setup, fit
from gentool.neural.weights import check_weights
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
from gentool_gan.family import GanFamily, GanModelConfig, GanTrainConfig
from gentool_gan.unet import PatchDiscriminator, UNetGenerator, unet_depth

TASKS = ("colorize", "inpaint", "upscale")
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


def hole_side(config: GanModelConfig, size: int) -> int:
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
        model: GanModelConfig,
        train: GanTrainConfig,
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
        self, model: RestorationPair, config: GanModelConfig, samples: torch.Tensor, **kw: Any
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


def sample_grid(generator: nn.Module, config: GanModelConfig, clean: torch.Tensor) -> Any:
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
    generator: nn.Module, config: GanModelConfig, clean: torch.Tensor
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


def check_config(config: GanModelConfig) -> None:
    """Reject restoration settings that cannot train, naming the key and a valid value."""
    if config.task not in TASKS:
        raise RecipeError(f"model.task '{config.task}' is not a restoration; valid: {TASKS}")
    if config.image_size < 8:
        raise RecipeError(f"model.image_size must be at least 8, got {config.image_size}")
    if config.width < 1:
        raise RecipeError(f"model.width must be at least 1, got {config.width}")
    if config.conditional:
        raise RecipeError(
            f"model.conditional applies to model.task=generate, not {config.task}; drop it"
        )
    if config.task == "upscale":
        factor, size = config.upscale_factor, config.image_size
        if factor < 2 or size % factor or size // factor < 2:
            raise RecipeError(
                f"model.upscale_factor={factor} must be at least 2 and divide "
                f"model.image_size={size} into at least 2 pixels; e.g. 4 with image_size 28"
            )
    if config.task == "inpaint" and not 0 < config.mask_size < 1:
        raise RecipeError(f"model.mask_size must be in (0, 1), got {config.mask_size}; e.g. 0.4")
    if config.task == "colorize" and config.channels == "gray":
        raise RecipeError("model.task=colorize needs colour images; drop model.channels=gray")


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


# -- the family -------------------------------------------------------------------------------


class Restorer(GanFamily):
    """A trained restorer: its generator (the moving average when train.ema_decay > 0).

    ``gentool restore RUN IMAGE -o OUT`` by task: colorize gives an RGB image of the input's
    size (its luminance kept); inpaint fills the transparent pixels of an RGBA/LA image, or
    the centre square (side mask_size x the short side) of one without alpha, and keeps the
    input's size and mode; upscale returns an image upscale_factor times larger.
    """

    # GanFamily.tasks is inferred as a 3-tuple; Family declares tuple[str, ...]
    tasks = (RESTORE_IMAGE, SCORE_IMAGES)

    def __init__(
        self,
        generator: RestorationGenerator,
        config: GanModelConfig,
        metrics: dict[str, Any] | None = None,
        samples: Any = None,
    ) -> None:
        self.generator = generator.eval().requires_grad_(False)
        self.config = config  # channels resolved to "gray" or "rgb"
        self.metrics = metrics or {}
        self.samples = samples  # the final sample grid (a PIL image), written by save

    @property
    def channels(self) -> int:
        return 3 if self.config.channels == "rgb" else 1

    # -- training -------------------------------------------------------------------------
    @classmethod
    def train(cls, config: GanModelConfig, context: TrainingContext) -> Restorer:
        train: GanTrainConfig = context.train
        run_dir = context.run_dir
        assert run_dir is not None
        check_config(config)
        check_setup(train, context.runtime)
        # colorize reads "auto" so that gray data is seen (and refused), not made RGB
        channels = "auto" if config.task == "colorize" else config.channels
        images = read_images(context.data, config.image_size, channels).images
        if config.task == "colorize":
            check_colour(images, f"the training data ({', '.join(map(str, context.data))})")
        config = GanModelConfig(
            **{**asdict(config), "channels": "rgb" if images.shape[1] == 3 else "gray"}
        )
        if context.val is not None:
            mode = config.channels
            val: np.ndarray | None = read_images([context.val], config.image_size, mode).images
        else:
            cut = len(images) - int(len(images) * train.val_fraction)
            images, val = (images[:cut], images[cut:]) if cut < len(images) else (images, None)
        torch.manual_seed(context.seed)
        c = images.shape[1]
        depth = unet_depth(config.image_size)
        generator = RestorationGenerator(config.task, c, config.width, depth)
        condition_channels = generator.in_channels
        discriminator = PatchDiscriminator(
            condition_channels + c, config.width, min(3, depth), config.spectral_norm
        )
        pair = RestorationPair(generator, discriminator, config, train)
        task = RestorationTask(
            pair,
            config,
            torch.from_numpy(images[:SAMPLES]),
            train=train,
            images=torch.from_numpy(images),
            val_images=torch.from_numpy(val) if val is not None else None,
            seed=context.seed,
            run_dir=run_dir,
        )
        engine_task = cast("TrainingTask", task)  # its model is an AdversarialPair: a Module
        result = fit(
            engine_task, train, context.runtime, run_dir, context.log, tracker_config=context.recipe
        )
        trained = task.model
        assert isinstance(trained, AdversarialPair)
        sampler = trained.sampler()
        assert isinstance(sampler, RestorationGenerator)
        samples = sample_grid(sampler, config, torch.from_numpy(images[:SAMPLES]))
        metrics = {
            "steps": result.steps,
            "train_loss": result.train_loss,
            "val_l1": result.val_loss,
            "train_images": len(images),
            "val_images": 0 if val is None else len(val),
            "images_per_s": result.items_per_second,
            "train_seconds": result.seconds,
            "mixed_precision": result.mixed_precision,
            "parameters": sum(p.numel() for p in sampler.parameters()),
        }
        return cls(sampler, config, metrics, samples)

    # -- persistence ----------------------------------------------------------------------
    def save(self, directory: Path) -> dict[str, Any]:
        tensors = {k: v.detach().cpu().numpy() for k, v in self.generator.state_dict().items()}
        runs.save_tensors(directory / runs.TENSOR_FILE, tensors, self.name)
        runs.write_json(
            directory / "config.json",
            {"model_type": self.name, **asdict(self.config), "depth": self.generator.unet.depth},
        )
        if self.samples is not None:
            save_image(self.samples, directory / "samples.png")
        return self.metrics

    @classmethod
    def load(cls, directory: Path, config: GanModelConfig) -> Restorer:
        try:
            stored = json.loads((directory / "config.json").read_text(encoding="utf-8"))
            known = {f.name for f in fields(GanModelConfig)}
            config = GanModelConfig(**{k: v for k, v in stored.items() if k in known})
            check_config(config)
            channels = 3 if config.channels == "rgb" else 1
            depth = stored.get("depth", unet_depth(config.image_size))
            # image_size is not in the weights' shapes, depth is: they must agree, so that
            # the images this model reads and makes are the size it was trained on.
            if depth != unet_depth(config.image_size):
                raise ValueError(f"depth {depth} does not fit image_size {config.image_size}")
        except (OSError, ValueError, TypeError, AttributeError, OverflowError, RecipeError) as err:
            raise runs.damaged(
                directory, f"config.json is not a gan restorer's config ({err})"
            ) from None

        def build() -> RestorationGenerator:
            return RestorationGenerator(config.task, channels, config.width, depth)

        check_weights(build, directory / runs.TENSOR_FILE)  # before building it for real
        generator = build()
        tensors = runs.load_tensors(directory / runs.TENSOR_FILE, cls.name)
        generator.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in tensors.items()})
        return cls(generator, config)

    # -- tasks ----------------------------------------------------------------------------
    def restore(self, images: Sequence[Any]) -> list[Any]:
        """One restored PIL image per input (see the module's table for each task)."""
        restore_one = {
            "colorize": self._colorize,
            "inpaint": self._inpaint,
            "upscale": self._upscale,
        }[self.config.task]
        with torch.no_grad():
            return [restore_one(image) for image in images]

    def evaluate_images(self, paths: Sequence[Path]) -> dict[str, Any]:
        """PSNR (dB) and SSIM of the restored images and of the degraded inputs ('before')
        against the clean ones, means over images; upscale adds bicubic interpolation of
        the down-sampled images, the classic reference."""
        colorize = self.config.task == "colorize"
        mode: Literal["auto", "gray", "rgb"] = "auto" if colorize else self.config.channels
        images = read_images(list(paths), self.config.image_size, mode).images
        if colorize:
            check_colour(images, ", ".join(map(str, paths)))
        clean = torch.from_numpy(images).float() / 127.5 - 1
        degraded, restored = restore_batch(self.generator, self.config, clean)
        results = {"before": degraded, "after": restored}
        if self.config.task == "upscale":
            small = F.avg_pool2d(clean, self.config.upscale_factor)
            results["bicubic"] = F.interpolate(
                small, scale_factor=self.config.upscale_factor, mode="bicubic"
            ).clamp(-1, 1)
        reference = to_unit(clean)
        metrics: dict[str, Any] = {"task": self.config.task, "images": len(clean)}
        for name, pictures in results.items():
            pictures = to_unit(pictures)
            metrics[f"psnr_{name}"] = float(quality.psnr(pictures, reference).mean())
            metrics[f"ssim_{name}"] = float(quality.ssim(pictures, reference).mean())
        metrics["psnr_gain"] = metrics["psnr_after"] - metrics["psnr_before"]
        return metrics

    def describe(self) -> dict[str, Any]:
        facts: dict[str, Any] = {
            "task": self.config.task,
            "image_size": self.config.image_size,
            "channels": self.config.channels,
            "width": self.config.width,
            "depth": self.generator.unet.depth,
            "parameters": sum(p.numel() for p in self.generator.parameters()),
        }
        if self.config.task == "upscale":
            facts["upscale_factor"] = self.config.upscale_factor
        if self.config.task == "inpaint":
            facts["mask_size"] = self.config.mask_size
        return facts

    # -- one image ------------------------------------------------------------------------
    def _colorize(self, image: Any) -> Any:
        from PIL import Image

        gray = image.convert("L")
        size = self.config.image_size
        small = to_tensor(gray.resize((size, size), Image.Resampling.BICUBIC))
        colour = self.generator(small)  # (1, 3, S, S)
        chroma = colour - luminance(colour)  # what colour adds to the gray
        chroma = F.interpolate(chroma, size=(gray.height, gray.width), mode="bicubic")
        return to_image((to_tensor(gray) + chroma).clamp(-1, 1))

    def _upscale(self, image: Any) -> Any:
        out_mode = image_mode(image)
        factor = self.config.upscale_factor
        width, height = image.width * factor, image.height * factor
        if width * height > MAX_PIXELS:
            raise DataError(
                f"a {image.width}x{image.height} image upscales to {width}x{height}, more than "
                f"{MAX_PIXELS // 10**6} million pixels; crop it into smaller pieces first"
            )
        small = to_tensor(image.convert(self.model_mode))
        pixelated = F.interpolate(small, scale_factor=factor, mode="nearest")
        return to_image(self.generator(pixelated)).convert(out_mode)

    def _inpaint(self, image: Any) -> Any:
        from PIL import Image

        out_mode = image_mode(image)
        hole = hole_of(image, self.config.mask_size)  # (1, 1, H, W), 1 in the hole
        full = to_tensor(image.convert(self.model_mode))
        full = full * (1 - hole) - hole
        size = self.config.image_size
        small = to_tensor(to_image(full).resize((size, size), Image.Resampling.BICUBIC))
        small_hole = (F.interpolate(hole, size=(size, size), mode="area") > 0).float()
        small = small * (1 - small_hole) - small_hole  # a pixel partly in the hole is hole
        filled = self.generator(torch.cat([small, small_hole], 1))
        filled = F.interpolate(filled, size=full.shape[-2:], mode="bicubic").clamp(-1, 1)
        return to_image(hole * filled + (1 - hole) * full).convert(out_mode)

    @property
    def model_mode(self) -> str:
        return "RGB" if self.config.channels == "rgb" else "L"


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
