"""The gan family's recipe tables, one pair per kind of model (torch-free).

``[model]``: what the two kinds share is ``GanConfig`` (image size, channels, width, the
adversarial loss); ``GeneratorConfig`` adds the noise and the class labels of a DCGAN,
``RestorerConfig`` the degradation a restorer undoes. ``model.task`` names the kind:
``generate`` trains a generator, ``colorize``/``inpaint``/``upscale`` a restorer.

``[train]``: ``GanTrainConfig`` is the engine's table plus the adversarial settings both
kinds use; ``RestorerTrainConfig`` adds the L1 weight of pix2pix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from gentool.errors import RecipeError
from gentool.neural.config import TrainConfig

RESTORATIONS = ("colorize", "inpaint", "upscale")
TRANSLATIONS = ("paired", "cyclegan")
DomainChannels = Literal["auto", "gray", "rgb", "rgba"]


@dataclass
class GanConfig:
    """The [model] settings of every gan kind."""

    image_size: int = 28  # images are resized and center-cropped to this
    channels: Literal["auto", "gray", "rgb"] = "auto"  # auto: what the data holds
    width: int = 64  # feature maps of the first/last layer (DCGAN's ngf/ndf)
    loss: Literal["nonsaturating", "hinge", "wgan-gp"] = "nonsaturating"
    spectral_norm: bool = False  # spectral normalisation on D's layers
    # a run of this kind to go on from (gentool train gan --init RUN): its [model] table is
    # taken, and training starts from its networks
    init: str = ""


@dataclass
class GeneratorConfig(GanConfig):
    """The [model] table of an image generator (DCGAN; image_size 28, 32 or 64)."""

    task: Literal["generate"] = "generate"
    latent_size: int = 100  # the noise vector z
    conditional: bool = False  # class-conditional G and D (labels from the data)


@dataclass
class RestorerConfig(GanConfig):
    """The [model] table of a restorer (U-Net + PatchGAN)."""

    task: Literal["colorize", "inpaint", "upscale"] = "upscale"
    upscale_factor: int = 4  # upscale: the input is down-sampled by this factor
    mask_size: float = 0.4  # inpaint: the masked square's side, as a fraction of the image


@dataclass
class TranslatorConfig:
    """The [model] table of an image translator: A images (--data) to B images (--target).

    paired: pix2pix (a U-Net G conditioned on A, a PatchGAN D on (A, B) pairs, L1 + the
    adversarial loss); cyclegan: two U-Nets (A->B, B->A) and two PatchGANs, cycle and
    identity losses, LSGAN. Each domain is read with its own channels (auto: what its
    images hold; rgba keeps transparency).
    """

    task: Literal["paired", "cyclegan"] = "paired"
    image_size: int = 64  # both domains are resized and center-cropped to this (32-256)
    channels_a: DomainChannels = "auto"
    channels_b: DomainChannels = "auto"
    width: int = 32  # feature maps of the first/last layer
    loss: Literal["nonsaturating", "hinge", "lsgan"] = "nonsaturating"
    spectral_norm: bool = False
    # a run of this kind to go on from (gentool train gan --init RUN): its [model] table is
    # taken, and training starts from its networks
    init: str = ""
    # D's stride-2 layers (0: min(3, the U-Net's depth)); fewer give D a smaller patch, so it
    # judges stroke texture rather than a whole digit's shape (1 at 28 px: 12-pixel patches)
    disc_layers: int = 0


@dataclass
class ComposerConfig:
    """The [model] table of the music kind: phrases of ``bars`` bars of 4/4 on a sixteenth
    grid, one plane per track (0: as many tracks as most pieces have), pitches from the
    data's range widened to whole octaves. MuseGAN trained with WGAN-GP, as here."""

    bars: int = 4  # a phrase; longer pieces are phrases side by side
    tracks: int = 0  # 0: as many as most pieces have (a chorale's four voices)
    latent_size: int = 64  # the noise vector z (the first half shared by a piece's phrases)
    width: int = 32  # feature maps of the generator's last layer and the critic's first
    loss: Literal["nonsaturating", "hinge", "wgan-gp"] = "wgan-gp"
    spectral_norm: bool = False
    # a run of this kind to go on from (gentool train gan --init RUN): its [model] table is
    # taken, and training starts from its networks
    init: str = ""


@dataclass
class GanTrainConfig(TrainConfig):
    """The [train] table of every gan kind: the engine's settings plus the adversarial ones.

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
    sample_every: int = 500  # write samples/step-N.png every N steps (0: only at the end)


@dataclass
class ComposerTrainConfig(GanTrainConfig):
    """The [train] table of the music kind: MuseGAN's WGAN-GP settings (five critic steps a
    generator step, Adam at 1e-3 with betas 0.5 and 0.9)."""

    max_steps: int = 3000
    batch_size: int = 32
    lr: float = 1e-3
    min_lr: float = 1e-3
    beta2: float = 0.9
    n_critic: int = 5


@dataclass
class RestorerTrainConfig(GanTrainConfig):
    """The [train] table of a restorer: the adversarial settings plus pix2pix's L1 term."""

    l1_weight: float = 100.0  # weight of the L1 loss against the clean image


@dataclass
class TranslatorTrainConfig(GanTrainConfig):
    """The [train] table of a translator. paired: the L1 weight of pix2pix. cyclegan: the
    cycle and identity weights, the history pool, and CycleGAN's schedule (``lr`` for the
    first ``decay_from`` of the steps, then linear decay to ``min_lr``)."""

    max_steps: int = 2000
    batch_size: int = 16
    ema_decay: float = 0.0  # (a moving average helps little with L1/cycle terms)
    l1_weight: float = 100.0  # paired: weight of L1 to the true B
    l2_weight: float = 0.0  # paired: weight of the squared error to the true B
    flip: bool = False  # paired: mirror each training pair left-right on a coin flip
    cycle_weight: float = 10.0  # cyclegan: weight of |G_BA(G_AB(a)) - a| (and B's)
    identity_weight: float = 0.5  # cyclegan: x cycle_weight, |G_AB(b) - b| (same channels)
    pool_size: int = 50  # cyclegan: generated images D sees again (0: none)
    lr_schedule: Literal["cosine", "linear"] = "cosine"  # linear: CycleGAN's
    min_lr: float = 0.0
    decay_from: float = 0.5  # linear: the share of steps at constant lr


def check_translator(config: TranslatorConfig, train: TranslatorTrainConfig) -> None:
    """Reject translation settings that cannot train, naming the key and a valid value."""
    if config.task not in TRANSLATIONS:
        raise RecipeError(
            f"model.task '{config.task}' is not a translation; valid: {', '.join(TRANSLATIONS)}"
        )
    if not 16 <= config.image_size <= 256:
        raise RecipeError(f"model.image_size must be in 16-256, got {config.image_size}; e.g. 64")
    check_width(config)
    if config.disc_layers < 0:
        raise RecipeError(f"model.disc_layers must not be negative, got {config.disc_layers}")
    for key in ("l1_weight", "l2_weight", "cycle_weight", "identity_weight"):
        if getattr(train, key) < 0:
            raise RecipeError(f"train.{key} must not be negative, got {getattr(train, key)}")
    if train.pool_size < 0:
        raise RecipeError(f"train.pool_size must not be negative, got {train.pool_size}")
    if not 0 <= train.decay_from <= 1:
        raise RecipeError(f"train.decay_from must be in [0, 1], got {train.decay_from}")


def check_adversarial(train: Any) -> None:
    """Reject adversarial settings that cannot train, naming the key."""
    if train.n_critic < 1:
        raise RecipeError(f"train.n_critic must be at least 1, got {train.n_critic}")
    if train.lr_d_scale <= 0:
        raise RecipeError(f"train.lr_d_scale must be positive, got {train.lr_d_scale}")
    if not 0 <= train.label_smoothing < 0.5:
        raise RecipeError(
            f"train.label_smoothing must be in [0, 0.5), got {train.label_smoothing}; e.g. 0.1"
        )
    if not 0 <= train.ema_decay < 1:
        raise RecipeError(f"train.ema_decay must be in [0, 1), got {train.ema_decay}; e.g. 0.999")
    if train.gp_weight < 0:
        raise RecipeError(f"train.gp_weight must not be negative, got {train.gp_weight}")
    if train.sample_every < 0:
        raise RecipeError(f"train.sample_every must not be negative, got {train.sample_every}")


def check_width(config: GanConfig | TranslatorConfig | ComposerConfig) -> None:
    if config.width < 1:
        raise RecipeError(f"model.width must be at least 1, got {config.width}")


def check_generator(config: GeneratorConfig) -> None:
    """Reject generator settings that cannot train (image_size is checked by the network's
    layout, which lists the sizes it has)."""
    check_width(config)
    if config.latent_size < 1:
        raise RecipeError(f"model.latent_size must be at least 1, got {config.latent_size}")


def check_composer(config: ComposerConfig) -> None:
    """Reject music settings that cannot train, naming the key and a valid value."""
    check_width(config)
    if not 1 <= config.bars <= 16:
        raise RecipeError(f"model.bars must be in 1-16, got {config.bars}; e.g. 4")
    if not 0 <= config.tracks <= 16:
        raise RecipeError(f"model.tracks must be in 0-16 (0: from the data), got {config.tracks}")
    if config.latent_size < 2:
        raise RecipeError(f"model.latent_size must be at least 2, got {config.latent_size}")


def check_restorer(config: RestorerConfig) -> None:
    """Reject restoration settings that cannot train, naming the key and a valid value."""
    if config.task not in RESTORATIONS:
        raise RecipeError(
            f"model.task '{config.task}' is not a restoration; valid: {', '.join(RESTORATIONS)}"
        )
    if config.image_size < 8:
        raise RecipeError(f"model.image_size must be at least 8, got {config.image_size}")
    check_width(config)
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
