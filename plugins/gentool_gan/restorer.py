"""The gan ``restorer`` kind: image restoration (model.task = colorize, inpaint, upscale)
with a U-Net generator and a PatchGAN discriminator (pix2pix).

Training pairs are made on the fly from clean images, so any image folder trains a
restorer; ``gentool restore`` undoes the task's degradation on a user's image, and
``gentool evaluate`` reports PSNR and SSIM before and after. ``restoration.py`` holds the
tensors (and the table of what each task does), imported when the model trains or
restores: this module, which the plugin imports to register the kind, needs no torch.

A run holds ``model.safetensors`` (the generator that restores: the moving average when
train.ema_decay > 0), ``config.json`` (the [model] table, channels resolved, and the U-Net's
depth) and ``samples.png`` (degraded | restored | clean).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gentool import runs
from gentool.data.images import Channels
from gentool.errors import RecipeError
from gentool.model import FromRun, TrainingContext
from gentool.tasks import ImageRestoration, ImageScoring
from gentool_gan.base import GanModel, ImageData, names
from gentool_gan.configs import (
    RESTORATIONS,
    RestorerConfig,
    RestorerTrainConfig,
    check_restorer,
)

if TYPE_CHECKING:
    from gentool.neural.engine import FitResult
    from gentool_gan.restoration import RestorationGenerator, RestorationTask

SAMPLES = 8  # images in a sample grid


class Restorer(GanModel, ImageRestoration, ImageScoring, FromRun):
    """A trained restorer: its generator (the moving average when train.ema_decay > 0).

    ``gentool restore RUN IMAGE -o OUT`` by task: colorize gives an RGB image of the input's
    size (its luminance kept); inpaint fills the transparent pixels of an RGBA/LA image, or
    the centre square (side mask_size x the short side) of one without alpha, and keeps the
    input's size and mode; upscale returns an image upscale_factor times larger.
    """

    kind = "restorer"
    description = "U-Net + PatchGAN restoration: model.task=colorize|inpaint|upscale"
    config_class = RestorerConfig
    train_config_class = RestorerTrainConfig
    selected_by = {"task": RESTORATIONS}

    def __init__(
        self,
        generator: RestorationGenerator,
        config: RestorerConfig,
        spec: dict[str, Any],
        metrics: dict[str, Any] | None = None,
        samples: Any = None,
    ) -> None:
        self.generator = generator.eval().requires_grad_(False)
        self.config = config  # channels resolved to "gray" or "rgb"
        self.spec = spec
        self.metrics = metrics or {}
        self.samples = samples  # the final sample grid (a PIL image), written by save

    @property
    def network(self) -> RestorationGenerator:
        return self.generator

    # -- training -----------------------------------------------------------------------------
    @classmethod
    def check_config(cls, config: RestorerConfig, train: RestorerTrainConfig) -> None:
        check_restorer(config)
        super().check_config(config, train)

    @classmethod
    def read_channels(cls, config: RestorerConfig) -> Channels:
        # colorize reads "auto" so that gray data is seen (and refused), not made RGB
        return "auto" if config.task == "colorize" else config.channels

    @classmethod
    def check_data(
        cls, config: RestorerConfig, data: ImageData, context: TrainingContext[Any]
    ) -> None:
        from gentool_gan.restoration import check_colour

        if config.task == "colorize":
            check_colour(data.train.images, f"the training data ({names(context.data)})")

    @classmethod
    def make_task(
        cls,
        config: RestorerConfig,
        context: TrainingContext[RestorerTrainConfig],
        data: ImageData,
    ) -> tuple[RestorationTask, dict[str, Any]]:
        import torch

        from gentool_gan.restoration import RestorationPair, RestorationTask, build_generator
        from gentool_gan.unet import PatchDiscriminator, unet_depth

        images, val = data.train.images, data.val
        channels = images.shape[1]
        config = dataclasses.replace(config, channels="rgb" if channels == 3 else "gray")
        depth = unet_depth(config.image_size)
        generator = build_generator(config, channels, depth)
        discriminator = PatchDiscriminator(
            generator.in_channels + channels, config.width, min(3, depth), config.spectral_norm
        )
        task = RestorationTask(
            RestorationPair(generator, discriminator, config, context.train),
            config,
            torch.from_numpy(images[:SAMPLES]),
            train=context.train,
            images=torch.from_numpy(images),
            val_images=torch.from_numpy(val.images) if val is not None else None,
            seed=context.seed,
            run_dir=context.run_dir,
        )
        spec = {"model_type": cls.family, **dataclasses.asdict(config), "depth": depth}
        return task, spec

    @classmethod
    def trained(
        cls, spec: dict[str, Any], task: RestorationTask, result: FitResult, metrics: dict[str, Any]
    ) -> Restorer:
        from gentool_gan.adversarial import unwrap
        from gentool_gan.restoration import sample_grid

        sampler = unwrap(result.model).sampler()  # the moving average when train.ema_decay > 0
        metrics.update(
            val_l1=result.val_loss,  # the restoring generator's L1 on held-out images
            parameters=sum(p.numel() for p in sampler.parameters()),  # (what the run holds)
        )
        samples = sample_grid(sampler, task.config, task.samples)
        return cls(sampler, task.config, spec, metrics, samples)  # type: ignore[arg-type]

    # -- persistence --------------------------------------------------------------------------
    @classmethod
    def load(cls, directory: Path, config: RestorerConfig) -> Restorer:
        from gentool_gan.restoration import build_generator

        spec = cls.read_spec(directory)
        saved, depth = saved_config(spec, directory)
        channels = 3 if saved.channels == "rgb" else 1
        generator = cls.load_network(lambda: build_generator(saved, channels, depth), directory)
        return cls(generator, saved, spec)

    # -- tasks --------------------------------------------------------------------------------
    def restore(self, images: Sequence[Any]) -> list[Any]:
        """One restored PIL image per input (see ``restoration``'s table for each task)."""
        from gentool_gan.restoration import restore_images

        return restore_images(self.generator, self.config, images)

    def evaluate_images(
        self,
        paths: Sequence[Path],
        feature_space: str = "classifier",
        feature_weights: Path | None = None,
    ) -> dict[str, Any]:
        """PSNR (dB) and SSIM of the restored images and of the degraded inputs ('before')
        against the clean ones; upscale adds bicubic interpolation, the classic reference."""
        from gentool_gan.restoration import evaluate_restorer

        if feature_space != "classifier" or feature_weights is not None:
            raise RecipeError(
                "a restorer is scored by PSNR and SSIM against the clean images, in no feature "
                "space: drop --feature-space and --feature-weights"
            )
        return evaluate_restorer(self.generator, self.config, paths)

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


def saved_config(spec: dict[str, Any], directory: Path) -> tuple[RestorerConfig, int]:
    """The [model] table and U-Net depth a restorer's config.json records, checked (a run
    of gentool 0.1 recorded the generator's keys too: they are dropped)."""
    from gentool_gan.unet import unet_depth

    try:
        known = {f.name for f in dataclasses.fields(RestorerConfig)}
        config = RestorerConfig(**{k: v for k, v in spec.items() if k in known})
        check_restorer(config)
        depth = spec.get("depth", unet_depth(config.image_size))
        # image_size is not in the weights' shapes, depth is: they must agree, so that
        # the images this model reads and makes are the size it was trained on.
        if depth != unet_depth(config.image_size):
            raise ValueError(f"depth {depth} does not fit image_size {config.image_size}")
    except (ValueError, TypeError, AttributeError, OverflowError, RecipeError) as err:
        raise runs.damaged(
            directory, f"config.json is not a gan restorer's config ({err})"
        ) from None
    return config, depth
