"""Full-reference image quality: PSNR and SSIM, per image, in torch.

Both take two batches ``N x C x H x W`` of floats in ``[0, data_range]`` and return one
number per image. SSIM is Wang, Bovik, Sheikh and Simoncelli (2004): an 11 x 11 Gaussian
window with sigma 1.5, K1 = 0.01, K2 = 0.03, computed on each channel separately over the
"valid" window positions (no padding, as in the authors' reference code) and averaged over
positions and channels, the way scikit-image's ``structural_similarity(channel_axis=...)``
does with ``gaussian_weights=True, use_sample_covariance=False``. Images smaller than the
window use a window as large as the image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

WINDOW = 11
SIGMA = 1.5
K1, K2 = 0.01, 0.03


def _check(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(f"need two N x C x H x W batches of one shape, got {a.shape}, {b.shape}")


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image, ``10 log10(range^2 / MSE)``; identical
    images give ``inf``."""
    _check(a, b)
    mse = (a.double() - b.double()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(data_range**2 / mse)  # mse 0 -> inf


def gaussian_window(size: int = WINDOW, sigma: float = SIGMA) -> torch.Tensor:
    """The normalised 2-D Gaussian ``size x size`` (float64)."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean structural similarity per image (per-channel SSIM maps, averaged); 1 when the
    images are identical, symmetric in its arguments."""
    _check(a, b)
    n, c, h, w = a.shape
    size = min(WINDOW, h, w)
    window = gaussian_window(size).to(a.device).expand(c, 1, size, size)
    x, y = a.double(), b.double()

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, window, groups=c)  # (N, C, H-size+1, W-size+1)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    score = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )
    return score.flatten(1).mean(1)
