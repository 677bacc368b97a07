"""The ``gan`` family: DCGAN image generation (optionally class-conditional), and
image-to-image restoration (colorize, inpaint, upscale) with a U-Net and a PatchGAN.

``gentool_gan.generation`` holds the image generator, ``gentool_gan.restoration`` the
restorers; both train on gentool's engine and save safetensors with a config.json.
"""

from collections.abc import Callable

import gentool
from gentool_gan.family import GanFamily, GanModelConfig, GanTrainConfig

__all__ = ["GanFamily", "GanModelConfig", "GanTrainConfig"]


@gentool.hookimpl
def register_models(register: Callable[[type], None]) -> None:
    register(GanFamily)
