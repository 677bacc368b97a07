"""The tensors of the gan's music kind (``gentool_gan.composer``): a generator and a
discriminator of multi-track piano-roll phrases, their training task, and sampling.

In the spirit of MuseGAN (Dong et al. 2018): one image per phrase, ``tracks x time x
pitch``, generated from noise by transposed convolutions that unfold time bar -> half bar
-> beat -> sixteenth and pitch octave -> semitone (a (1, 12) kernel), then a 1 x 1
convolution per track. The discriminator folds them back the same way. The networks see
all tracks at once, as MuseGAN's "composer" model does. Images reach the networks as
floats in [-1, 1] (off / on), as the image generator's do, so the adversarial machinery
(``GenerationPair``, ``GenerationTask``, the engine) is the DCGAN's.
"""

from __future__ import annotations

import dataclasses
import secrets
from typing import Any

import numpy as np
import torch
from torch import nn

from gentool_gan.adversarial import AdversarialPair, sampling, seeded
from gentool_gan.generation import GenerationPair, GenerationTask
from gentool_gan.networks import init_weights
from gentool_gan.rolls import STEPS_PER_BAR, Layout, binarize

SAMPLE_SEED = 1234  # the noise of the piano roll written during training: rolls compare
CALIBRATION = 256  # phrases drawn to set the thresholds at the end of training


class RollGenerator(nn.Module):
    """z (B, latent_size) -> phrases (B, tracks, bars * 16, pitches) in [-1, 1]."""

    num_classes = 0  # (GenerationPair reads it: never class-conditional)

    def __init__(self, tracks: int, bars: int, pitches: int, latent_size: int, width: int):
        super().__init__()
        self.latent_size, self.shape = latent_size, (tracks, bars * STEPS_PER_BAR, pitches)
        octaves = pitches // 12
        self.first = (8 * width, bars, octaves)
        self.project = nn.Sequential(
            nn.Linear(latent_size, 8 * width * bars * octaves, bias=False),
            nn.BatchNorm1d(8 * width * bars * octaves),
            nn.ReLU(True),
        )

        def up(before: int, after: int, kernel: tuple[int, int]) -> list[nn.Module]:
            return [
                nn.ConvTranspose2d(before, after, kernel, kernel, bias=False),
                nn.BatchNorm2d(after),
                nn.ReLU(True),
            ]

        self.net = nn.Sequential(
            *up(8 * width, 4 * width, (2, 1)),  # bars -> half bars
            *up(4 * width, 2 * width, (2, 1)),  # -> beats
            *up(2 * width, width, (4, 1)),  # -> sixteenths
            *up(width, width, (1, 12)),  # octaves -> semitones
            nn.Conv2d(width, tracks, 1),  # one plane per track
            nn.Tanh(),
        )
        self.apply(init_weights)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(self.project(z).view(len(z), *self.first))

    @torch.no_grad()
    def start_sparse(self, density: float) -> None:
        """Start the output at the data's share of sounding cells (the last convolution's
        bias): a roll is mostly silence, and a generator that must learn silence first by
        driving its features to zero leaves them dead (ReLU) and draws nothing after."""
        p = min(max(density, 1e-3), 0.5)
        last = self.net[-2]
        assert isinstance(last, nn.Conv2d) and last.bias is not None
        last.bias.fill_(float(np.arctanh(2 * p - 1)))


class RollDiscriminator(nn.Module):
    """phrases (B, tracks, bars * 16, pitches) -> one raw score each (B,). No BatchNorm:
    WGAN-GP's penalty is per phrase (spectral norm instead, when asked for)."""

    num_classes = 0

    def __init__(
        self, tracks: int, bars: int, pitches: int, width: int, spectral_norm: bool = False
    ):
        super().__init__()
        octaves = pitches // 12
        self.features = nn.Sequential(
            nn.Conv2d(tracks, width, (1, 12), (1, 12)),  # semitones -> octaves
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(width, 2 * width, (4, 1), (4, 1)),  # sixteenths -> beats
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(2 * width, 4 * width, (2, 1), (2, 1)),  # -> half bars
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(4 * width, 8 * width, (2, 1), (2, 1)),  # -> bars
            nn.LeakyReLU(0.2, True),
        )
        self.score = nn.Linear(8 * width * bars * octaves, 1)
        self.apply(init_weights)
        if spectral_norm:
            for module in self.modules():
                if isinstance(module, (nn.Conv2d, nn.Linear)):
                    nn.utils.parametrizations.spectral_norm(module)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.score(self.features(images).flatten(1)).flatten()


def build_pair(
    spec: dict[str, Any], smoothing: float = 0.0, gp_weight: float = 10.0
) -> GenerationPair:
    """The networks ``spec`` (a run's config.json) describes, freshly initialised."""
    tracks, bars, pitches = len(spec["track_names"]), spec["bars"], spec["pitches"]
    width = spec["width"]
    generator = RollGenerator(tracks, bars, pitches, spec["latent_size"], width)
    discriminator = RollDiscriminator(tracks, bars, pitches, width, spec["spectral_norm"])
    pair = GenerationPair(
        generator,  # type: ignore[arg-type]
        discriminator,  # type: ignore[arg-type]
        spec["loss"],
        smoothing,
        gp_weight,
    )
    pair.ema_decay = 1.0 if spec.get("ema", True) else 0.0  # (only its sign matters here)
    return pair


class RollTask(GenerationTask):
    """Phrases as images (the DCGAN's task); the samples written during training are a
    piano roll of one phrase from fixed noise."""

    layout: Layout

    def write_samples(self, pair: AdversarialPair, step: int) -> None:
        from gentool.music.pianoroll import save_pianoroll
        from gentool_gan.rolls import roll_score

        assert self.run_dir is not None
        layout = dataclasses.replace(
            self.layout, thresholds=calibrated(pair, self.layout, self.images.numpy())
        )
        roll = phrases(pair, SAMPLE_SEED, 1, layout)[0]
        save_pianoroll(roll_score(roll, layout), self.run_dir / "samples" / f"step-{step}.png")


def phrases(
    pair: GenerationPair,
    seed: int | None,
    count: int,
    layout: Layout,
    per_piece: int = 1,
    temperature: float = 1.0,
) -> np.ndarray:
    """``count`` pieces of ``per_piece`` phrases each, as bool rolls (count, tracks, steps,
    pitches), the phrases of a piece side by side in time.

    The first half of the noise is drawn once a piece and the second once a phrase, so the
    phrases of a piece share whatever the first half decides (the generator was trained on
    single phrases: this is a cheap way to keep a piece from wandering, not a learnt one).
    ``temperature`` scales the noise (below 1: the truncation trick, safer and less varied).
    """
    generator = seeded(seed if seed is not None else secrets.randbits(63))
    latent = pair.latent_size
    shared = latent // 2
    z = torch.randn(count, per_piece, latent, generator=generator)
    z[:, :, :shared] = z[:, :1, :shared]
    images = outputs(pair, z.flatten(0, 1) * temperature)
    rolls = np.stack([binarize(image, layout) for image in images])
    tracks, steps, pitches = rolls.shape[1:]
    rolls = rolls.reshape(count, per_piece, tracks, steps, pitches)
    return rolls.transpose(0, 2, 1, 3, 4).reshape(count, tracks, per_piece * steps, pitches)


def outputs(pair: GenerationPair, z: torch.Tensor) -> np.ndarray:
    """The sampler's raw phrases (N, tracks, steps, pitches), floats in [-1, 1]."""
    net = pair.sampler()
    device = next(net.parameters()).device
    out = []
    with sampling(net):
        for start in range(0, len(z), 256):
            out.append(net(z[start : start + 256].to(device)).float().cpu())
    return torch.cat(out).numpy()


def calibrated(pair: GenerationPair, layout: Layout, real: np.ndarray) -> list[float]:
    """The thresholds (``rolls.calibrate``) at which CALIBRATION phrases from fixed noise
    sound as often, track by track, as the training phrases ``real`` do."""
    from gentool_gan.rolls import calibrate, sounding

    z = torch.randn(CALIBRATION, pair.latent_size, generator=seeded(SAMPLE_SEED, 1))
    return calibrate(outputs(pair, z), layout, sounding(real, layout))
