"""The ``gan`` family's recipe tables, and the dispatch between its two kinds of model: a
run holds either an image generator (``generation.ImageGenerator``, model.task=generate)
or a restorer (``restoration.Restorer``, model.task=colorize|inpaint|upscale), both
subclasses of ``GanFamily`` that set ``self.tasks`` to what they do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gentool.data.images import default_images_path
from gentool.errors import RunError
from gentool.family import GENERATE_IMAGE, RESTORE_IMAGE, SCORE_IMAGES, Family, TrainingContext
from gentool.neural.engine import TrainConfig


@dataclass
class GanModelConfig:
    """The recipe's [model] table."""

    task: Literal["generate", "colorize", "inpaint", "upscale"] = "generate"
    image_size: int = 28  # images are resized and center-cropped to this (28, 32 or 64)
    channels: Literal["auto", "gray", "rgb"] = "auto"  # auto: what the data holds
    latent_size: int = 100  # generate: the noise vector z
    width: int = 64  # feature maps of the first/last layer (DCGAN's ngf/ndf)
    conditional: bool = False  # generate: class-conditional G and D (labels from the data)
    loss: Literal["nonsaturating", "hinge", "wgan-gp"] = "nonsaturating"
    spectral_norm: bool = False  # spectral normalisation on D's layers
    upscale_factor: int = 4  # upscale: the input is down-sampled by this factor
    mask_size: float = 0.4  # inpaint: the masked square's side, as a fraction of the image


@dataclass
class GanTrainConfig(TrainConfig):
    """The recipe's [train] table: the engine's settings plus the adversarial ones.

    ``lr`` is the generator's learning rate; the discriminator's is ``lr * lr_d_scale``.
    """

    max_steps: int = 2000
    batch_size: int = 64
    lr: float = 2e-4
    min_lr: float = 2e-4
    warmup_steps: int = 0
    beta1: float = 0.5
    beta2: float = 0.999
    weight_decay: float = 0.0
    grad_clip: float = 0.0
    lr_d_scale: float = 1.0  # TTUR: e.g. 2-4 with hinge loss
    n_critic: int = 1  # discriminator updates per generator update (5 for wgan-gp)
    label_smoothing: float = 0.0  # one-sided: real targets are 1 - this
    gp_weight: float = 10.0  # wgan-gp: the gradient penalty's weight
    ema_decay: float = 0.999  # the generator's moving average, used for sampling (0: off)
    l1_weight: float = 100.0  # restoration: weight of the L1 loss against the clean image
    sample_every: int = 500  # write samples/step-N.png every N steps (0: only at the end)


class GanFamily(Family):
    name = "gan"
    description = "DCGAN image generation (class-conditional too); colorize/inpaint/upscale"
    tasks: tuple[str, ...] = (GENERATE_IMAGE, SCORE_IMAGES, RESTORE_IMAGE)
    config_class = GanModelConfig
    train_config_class = GanTrainConfig
    default_data = default_images_path()  # 1,000 MNIST digits: `gentool train gan` just works

    @classmethod
    def train(cls, config: GanModelConfig, context: TrainingContext) -> Family:
        if config.task == "generate":
            from gentool_gan.generation import ImageGenerator

            return ImageGenerator.train(config, context)
        from gentool_gan.restoration import Restorer

        return Restorer.train(config, context)

    @classmethod
    def load(cls, directory: Path, config: GanModelConfig) -> Family:
        try:
            stored = json.loads((directory / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise RunError(f"'{directory}' has no readable config.json; retrain the run") from err
        if not isinstance(stored, dict):
            raise RunError(
                f"'{directory}/config.json' does not hold a JSON object; retrain the run"
            )
        if stored.get("task", "generate") == "generate":
            from gentool_gan.generation import ImageGenerator

            return ImageGenerator.load(directory, config)
        from gentool_gan.restoration import Restorer

        return Restorer.load(directory, config)
