"""The ``gan`` family: two kinds of model trained adversarially on images.

- ``generator`` (model.task=generate, the default): DCGAN image generation, optionally
  class-conditional (``gentool_gan.generator``);
- ``restorer`` (model.task=colorize, inpaint or upscale): image-to-image restoration with a
  U-Net and a PatchGAN (``gentool_gan.restorer``);
- ``paired`` and ``cyclegan`` (model.task=paired or cyclegan): image-to-image translation
  from domain A (--data) to B (--target), pix2pix from pairs or CycleGAN without
  (``gentool_gan.translator``);
- ``music`` (chosen by the data: MIDI files): multi-track piano-roll phrases in the spirit
  of MuseGAN, written as MIDI (``gentool_gan.composer``).

Both train on gentool's engine (``adversarial.py``: alternating discriminator and generator
steps) and save safetensors with a config.json. The kinds' modules import no torch, so that
registering them does not: the networks and their tasks are in ``generation.py``,
``restoration.py``, ``networks.py``, ``unet.py``, ``metrics.py`` and ``quality.py``.
"""

from collections.abc import Callable

import gentool
from gentool_gan.composer import PianoRollGenerator
from gentool_gan.configs import (
    ComposerConfig,
    ComposerTrainConfig,
    GanTrainConfig,
    GeneratorConfig,
    RestorerConfig,
    RestorerTrainConfig,
    TranslatorConfig,
    TranslatorTrainConfig,
)
from gentool_gan.generator import ImageGenerator
from gentool_gan.restorer import Restorer
from gentool_gan.translator import CycleTranslator, PairedTranslator

__all__ = [
    "ComposerConfig",
    "ComposerTrainConfig",
    "PianoRollGenerator",
    "CycleTranslator",
    "PairedTranslator",
    "TranslatorConfig",
    "TranslatorTrainConfig",
    "GanTrainConfig",
    "GeneratorConfig",
    "ImageGenerator",
    "Restorer",
    "RestorerConfig",
    "RestorerTrainConfig",
]


@gentool.hookimpl
def register_models(register: Callable[[type], None]) -> None:
    register(ImageGenerator)  # first: `gentool train gan` with no model.task trains it
    register(Restorer)
    register(PairedTranslator)
    register(CycleTranslator)
    register(PianoRollGenerator)  # trains on music: the data chooses it
