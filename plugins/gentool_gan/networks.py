"""DCGAN's generator and discriminator (Radford et al. 2015) for 28, 32 and 64 px images,
gray or RGB, optionally class-conditional.

The generator upsamples a noise vector z with strided transposed convolutions (BatchNorm
and ReLU between them, tanh at the end); the discriminator mirrors it with strided
convolutions and LeakyReLU(0.2). ``width`` is the feature maps of the generator's last
hidden layer and the discriminator's first (DCGAN's ngf/ndf); each step towards the 4 x 4
(or 7 x 7) end doubles it.

Class-conditional (Mirza & Osindero 2014): the generator reads z with the label's one-hot
vector appended; the discriminator reads the image with K one-hot label planes stacked on
its channels, so it judges "a real 7", not just "a real digit". (A projection
discriminator with z times a label embedding trained to a good FID here but drew classes
at chance: the label never reached the images.)
"""

from __future__ import annotations

import torch
from torch import nn

from gentool.errors import RecipeError

# image size -> (side of the first feature map, width multiple of each hidden feature map
# from the smallest to the largest); the generator's last layer reaches the image itself.
LAYOUTS: dict[int, tuple[int, tuple[int, ...]]] = {
    28: (7, (4, 2)),  # 7x7 (4w) -> 14x14 (2w) -> 28x28
    32: (4, (4, 2, 1)),  # 4 -> 8 -> 16 -> 32
    64: (4, (8, 4, 2, 1)),  # 4 -> 8 -> 16 -> 32 -> 64
}


def layout(image_size: int) -> tuple[int, tuple[int, ...]]:
    if image_size not in LAYOUTS:
        sizes = ", ".join(map(str, LAYOUTS))
        raise RecipeError(
            f"model.image_size={image_size} has no DCGAN layout; use one of {sizes} "
            "(images are resized and center-cropped to it)"
        )
    return LAYOUTS[image_size]


class Generator(nn.Module):
    """z (B, latent_size) [+ labels (B,)] -> images (B, channels, S, S) in [-1, 1]."""

    def __init__(
        self, image_size: int, channels: int, latent_size: int, width: int, num_classes: int = 0
    ) -> None:
        super().__init__()
        side, multiples = layout(image_size)
        self.latent_size = latent_size
        self.num_classes = num_classes
        first = width * multiples[0]
        layers: list[nn.Module] = [
            # (B, latent_size + K, 1, 1) -> (B, first, side, side)
            nn.ConvTranspose2d(latent_size + num_classes, first, side, 1, 0, bias=False),
            nn.BatchNorm2d(first),
            nn.ReLU(True),
        ]
        for before, after in zip(multiples, multiples[1:], strict=False):
            layers += [  # doubles the side
                nn.ConvTranspose2d(width * before, width * after, 4, 2, 1, bias=False),
                nn.BatchNorm2d(width * after),
                nn.ReLU(True),
            ]
        layers += [nn.ConvTranspose2d(width * multiples[-1], channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(init_weights)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes:
            if labels is None:
                raise ValueError("a class-conditional generator needs labels")
            z = torch.cat([z, one_hot(labels, self.num_classes, z.dtype)], dim=1)
        return self.net(z[:, :, None, None])


class Discriminator(nn.Module):
    """images (B, channels, S, S) [+ labels (B,)] -> one raw score per image (B,).

    ``batch_norm``: DCGAN's BatchNorm after every convolution but the first; off for
    WGAN-GP (the penalty is per image, BatchNorm mixes the batch) and with spectral norm.
    """

    def __init__(
        self,
        image_size: int,
        channels: int,
        width: int,
        num_classes: int = 0,
        batch_norm: bool = True,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        side, multiples = layout(image_size)
        widths = [width * m for m in reversed(multiples)]  # from the image towards 4x4
        self.num_classes = num_classes
        layers: list[nn.Module] = [
            nn.Conv2d(channels + num_classes, widths[0], 4, 2, 1),
            nn.LeakyReLU(0.2, True),
        ]
        for before, after in zip(widths, widths[1:], strict=False):
            layers += [nn.Conv2d(before, after, 4, 2, 1, bias=not batch_norm)]  # halves the side
            if batch_norm:
                layers += [nn.BatchNorm2d(after)]
            layers += [nn.LeakyReLU(0.2, True)]
        self.features = nn.Sequential(*layers)  # (B, widths[-1], side, side)
        self.score = nn.Conv2d(widths[-1], 1, side, 1, 0)  # -> (B, 1, 1, 1)
        self.apply(init_weights)
        if spectral_norm:
            for module in self.modules():
                if isinstance(module, nn.Conv2d):
                    nn.utils.parametrizations.spectral_norm(module)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes:
            if labels is None:
                raise ValueError("a class-conditional discriminator needs labels")
            planes = one_hot(labels, self.num_classes, images.dtype)[:, :, None, None]
            images = torch.cat([images, planes.expand(-1, -1, *images.shape[2:])], dim=1)
        return self.score(self.features(images)).flatten()


def one_hot(labels: torch.Tensor, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
    return nn.functional.one_hot(labels.long(), num_classes).to(dtype)


def init_weights(module: nn.Module) -> None:
    """DCGAN's initialisation: weights from N(0, 0.02), BatchNorm scales from N(1, 0.02)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
