"""The image-to-image networks of pix2pix (Isola et al. 2017), scaled to small images.

``UNetGenerator`` maps a degraded image (plus a mask channel for inpainting) to a clean one
of the same size: an encoder of stride-2 convolutions, a decoder of nearest-neighbour
up-sampling + 3x3 convolutions (no transposed-convolution checkerboards), and a skip
connection at every resolution, so fine detail need not squeeze through the bottleneck. It
predicts a residual over its input image (clamped to [-1, 1]): a restorer mostly keeps
what it is given. ``PatchDiscriminator`` sees the condition and an image side by side and
gives one real/fake logit per overlapping patch, so it judges texture, while the L1 loss
takes care of the low frequencies.

GroupNorm rather than BatchNorm: per-image statistics behave the same in training and at
restore time (batches of one), and under the gradient penalty of WGAN-GP.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gentool_gan.networks import init_weights


def unet_depth(image_size: int) -> int:
    """Halvings from ``image_size`` down to a bottleneck of at least 4 pixels (16 -> 2,
    28 -> 2, 32 -> 3, 64 -> 4)."""
    return max(1, int(math.floor(math.log2(image_size / 4))))


def level_channels(width: int, level: int) -> int:
    """Feature maps at encoder level ``level`` (0: the first), doubling up to 8 x width."""
    return width * min(2**level, 8)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(channels, 8), channels)


class UNetGenerator(nn.Module):
    """``(N, in_channels, H, W) -> (N, out_channels, H, W)``, for any H and W (padded inside
    to a multiple of ``2**depth``). The first ``image_channels`` input channels are the
    degraded image the residual is added to (a gray one is repeated over RGB outputs; 0:
    no residual, the output is tanh of the last layer)."""

    def __init__(
        self, in_channels: int, out_channels: int, image_channels: int, width: int, depth: int
    ) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.image_channels = image_channels
        self.depth = depth
        chans = [level_channels(width, i) for i in range(depth)]
        self.down = nn.ModuleList()
        for i, c in enumerate(chans):
            layers: list[nn.Module] = [nn.Conv2d(chans[i - 1] if i else in_channels, c, 4, 2, 1)]
            if i:
                layers.append(_norm(c))
            layers.append(nn.LeakyReLU(0.2))
            self.down.append(nn.Sequential(*layers))
        bottom = chans[-1]
        self.bottleneck = nn.Sequential(
            nn.Conv2d(bottom, bottom, 3, 1, 1), _norm(bottom), nn.ReLU()
        )
        self.up = nn.ModuleList()
        for i in reversed(range(depth)):
            out = chans[i - 1] if i else width
            self.up.append(  # input: the level below (chans[i] maps) beside the skip
                nn.Sequential(
                    nn.Upsample(scale_factor=2, mode="nearest"),
                    nn.Conv2d(2 * chans[i], out, 3, 1, 1),
                    _norm(out),
                    nn.ReLU(),
                )
            )
        self.head = nn.Conv2d(width + in_channels, out_channels, 3, 1, 1)
        self.apply(init_weights)  # N(0, 0.02), as in DCGAN and pix2pix

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        unit = 2**self.depth
        pad_h, pad_w = -h % unit, -w % unit
        padded = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x
        skips = []
        feature = padded
        for block in self.down:
            feature = block(feature)  # (N, C_i, H / 2^(i+1), W / 2^(i+1))
            skips.append(feature)
        feature = self.bottleneck(feature)
        for block, skip in zip(self.up, reversed(skips), strict=True):
            feature = block(torch.cat([feature, skip], 1))  # up one level
        residual = self.head(torch.cat([feature, padded], 1))[..., :h, :w]
        if not self.image_channels:  # no input image to keep: the output is drawn whole
            return torch.tanh(residual)
        base = x[:, : self.image_channels]
        if base.shape[1] != self.out_channels:
            base = base.expand(-1, self.out_channels, -1, -1)
        return (base + residual).clamp(-1, 1)


class PatchDiscriminator(nn.Module):
    """``(image, condition) -> (N, 1, h, w)`` logits, one per patch: ``layers`` stride-2
    convolutions, then two stride-1 3x3 ones (pix2pix's 70x70 PatchGAN, shrunk)."""

    def __init__(self, in_channels: int, width: int, layers: int, spectral_norm: bool) -> None:
        super().__init__()

        def conv(c_in: int, c_out: int, kernel: int, stride: int) -> nn.Module:
            layer = nn.Conv2d(c_in, c_out, kernel, stride, 1)
            init_weights(layer)  # before the spectral-norm parametrisation wraps the weight
            return nn.utils.parametrizations.spectral_norm(layer) if spectral_norm else layer

        blocks: list[nn.Module] = []
        channels = in_channels
        for i in range(layers + 1):
            out = level_channels(width, i)
            stride = 2 if i < layers else 1
            kernel = 4 if stride == 2 else 3
            blocks.append(conv(channels, out, kernel, stride))
            if i and not spectral_norm:  # spectral norm replaces the normalisation layers
                blocks.append(_norm(out))
            blocks.append(nn.LeakyReLU(0.2))
            channels = out
        blocks.append(conv(channels, 1, 3, 1))
        self.net = nn.Sequential(*blocks)

    def forward(self, image: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        # image first: gentool_gan.adversarial.gradient_penalty differentiates by it
        return self.net(torch.cat([condition, image], 1))
