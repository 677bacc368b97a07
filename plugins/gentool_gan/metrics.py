"""Scoring an image generator against real images: FID and KID in a named feature space,
class coverage, and a memorisation check.

Feature spaces. FID/KID are only comparable within one feature space, so the space is in
the metric's name. Inception-v3 (the published FID) needs torchvision and downloaded
weights, neither of which gentool may assume; instead:

- ``classifier_<data>_<hash>``: a small CNN classifier trained, at evaluate time, on the
  labelled real images given to ``gentool evaluate --data`` (fixed seed, on the CPU, about
  a minute at most for 10,000 MNIST digits); its 128 pooled features are the space. The hash
  covers the images, labels, size and the recipe of the classifier, so every run scored on
  the same data gets the same space, and figures on other data can never share a name.
  (Training it during ``gentool train`` instead would give each run its own space, and
  runs could not be compared.) It also gives class coverage.
- ``randcnn_<size>px``: the same CNN with fixed random weights, for unlabelled data (a
  weaker space: it sees textures and shapes but no classes; coverage is not reported).

Memorisation: the mean distance from each generated image to its nearest training image
(the run keeps up to 1,000 of them), against the same for the real images given here,
which must be held out from training: a ratio well below 1 means the generator copies.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gentool.data.images import ImageSet, read_images
from gentool.errors import DataError
from gentool_gan import generation

if TYPE_CHECKING:
    from gentool_gan.generator import ImageGenerator

CLASSIFIER_VERSION = 3  # part of the feature space's hash: bump when the recipe changes
FEATURES = 128
MAX_REAL = 10_000  # real images scored (a seeded subset of larger sets)
MEMORISATION_IMAGES = 1000
KID_SUBSETS = 50
KID_SUBSET_SIZE = 1000
MIN_CLASSIFIER_STEPS = 1500  # small data: 300 steps left 1,000 MNIST digits at 74% held out
SEED = 0


class FeatureNet(nn.Module):
    """images (B, C, S, S) in [-1, 1] -> (features (B, 128), logits (B, classes))."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.body = nn.Sequential(  # each convolution halves the side: 28 -> 14 -> 7 -> 4
            nn.Conv2d(channels, 32, 3, 2, 1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, 2, 1),
            nn.ReLU(),
            nn.Conv2d(64, FEATURES, 3, 2, 1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(FEATURES, max(1, num_classes))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(images)
        return features, self.head(features)


class FeatureSpace:
    """A feature extractor with a name: the metric names carry it."""

    def __init__(self, net: FeatureNet, name: str, accuracy: float | None, classes: list[str]):
        self.net = net.eval()
        self.name = name
        self.accuracy = accuracy  # held-out accuracy of the classifier (None: random)
        self.classes = classes

    @torch.no_grad()
    def __call__(self, images: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """uint8 images (N, C, S, S) -> features (N, 128) float64, class probabilities."""
        feats, probs = [], []
        tensor = torch.as_tensor(images)
        for start in range(0, len(tensor), 500):
            f, logits = self.net(_floats(tensor[start : start + 500]))
            feats.append(f.double())
            probs.append(logits.softmax(-1).double())
        return torch.cat(feats).numpy(), torch.cat(probs).numpy()


def feature_space(real: ImageSet, data_name: str, size: int) -> FeatureSpace:
    """The classifier space of ``real`` when it has labels, else the random CNN's."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        if real.labels is None or len(real.classes) < 2:
            net = FeatureNet(real.channels, 1)
            return FeatureSpace(net, f"randcnn_{size}px", None, [])
        net = FeatureNet(real.channels, len(real.classes))
        accuracy = train_classifier(net, real.images, real.labels)
    digest = hashlib.sha256()
    for part in (str(CLASSIFIER_VERSION), str(size), str(SEED), str(MIN_CLASSIFIER_STEPS)):
        digest.update(part.encode())
    digest.update(np.ascontiguousarray(real.images).tobytes())
    digest.update(np.ascontiguousarray(real.labels).tobytes())
    slug = re.split(r"[^a-z0-9]+", data_name.lower())[0] or "data"
    return FeatureSpace(net, f"classifier_{slug}_{digest.hexdigest()[:6]}", accuracy, real.classes)


def train_classifier(net: FeatureNet, images: np.ndarray, labels: np.ndarray) -> float:
    """Train ``net`` to classify (Adam, 3 passes, 1500-3000 steps of 64, seeded, on the CPU);
    return its accuracy on a held-out tenth (on the training images if that is empty)."""
    n = len(images)
    order = np.random.default_rng(SEED).permutation(n)
    held = n // 10
    test, fit_on = order[:held], order[held:]
    x = torch.from_numpy(np.ascontiguousarray(images))
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    steps = min(3000, max(MIN_CLASSIFIER_STEPS, 3 * len(fit_on) // 64))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(SEED)
    net.train()
    for _ in range(steps):
        chosen = torch.from_numpy(fit_on)[torch.randint(len(fit_on), (64,), generator=generator)]
        _, logits = net(_floats(x[chosen]))
        loss = F.cross_entropy(logits, y[chosen])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    net.eval()
    check = test if len(test) else fit_on
    with torch.no_grad():
        _, logits = net(_floats(x[torch.from_numpy(check)]))
    return float((logits.argmax(-1) == y[torch.from_numpy(check)]).float().mean())


# -- the metrics ----------------------------------------------------------------------------


def fid(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature sets a and b (N, D)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root_a = _sqrt_psd(cov_a)
    # tr(sqrt(A B)) = tr(sqrt(sqrt(A) B sqrt(A))), a symmetric PSD matrix
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)).sum()
    value = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * cross)
    return max(0.0, value)


def kid(a: np.ndarray, b: np.ndarray, seed: int = SEED) -> tuple[float, float]:
    """Kernel inception distance: the unbiased MMD^2 with kernel (x.y / D + 1)^3, averaged
    over random subsets (mean, standard deviation)."""
    rng = np.random.default_rng(seed)
    size = min(KID_SUBSET_SIZE, len(a) // 2, len(b) // 2)  # subsets that differ
    if size < 2:
        raise DataError("KID needs at least 4 images on each side; give more real images")
    dim = a.shape[1]
    values = []
    for _ in range(KID_SUBSETS):
        x = a[rng.choice(len(a), size, replace=False)]
        y = b[rng.choice(len(b), size, replace=False)]
        kxx, kyy, kxy = (
            (x @ x.T / dim + 1) ** 3,
            (y @ y.T / dim + 1) ** 3,
            (x @ y.T / dim + 1) ** 3,
        )
        off = size * (size - 1)
        values.append(
            (kxx.sum() - np.trace(kxx)) / off + (kyy.sum() - np.trace(kyy)) / off - 2 * kxy.mean()
        )
    return float(np.mean(values)), float(np.std(values))


def coverage(probabilities: np.ndarray) -> dict[str, float]:
    """How the classifier spreads generated images over the classes: ``class_coverage`` is
    the fraction of classes given at least half their fair share (1 / 2K of the images),
    ``class_entropy_bits`` the entropy of the class histogram (log2 K when uniform)."""
    k = probabilities.shape[1]
    counts = np.bincount(probabilities.argmax(1), minlength=k)
    share = counts / counts.sum()
    nonzero = share[share > 0]
    return {
        "class_coverage": float((share >= 0.5 / k).mean()),
        "class_entropy_bits": float(-(nonzero * np.log2(nonzero)).sum()),
        "class_entropy_max_bits": math.log2(k),
    }


def nearest_distance(images: np.ndarray, reference: np.ndarray) -> float:
    """Mean over ``images`` of the root-mean-square pixel distance (pixels in [0, 1]) to the
    nearest image of ``reference``."""
    x = torch.from_numpy(images.reshape(len(images), -1)).double() / 255
    r = torch.from_numpy(reference.reshape(len(reference), -1)).double() / 255
    best = torch.full((len(x),), math.inf, dtype=torch.float64)
    for start in range(0, len(r), 1000):
        best = torch.minimum(best, torch.cdist(x, r[start : start + 1000]).min(1).values)
    return float((best / math.sqrt(x.shape[1])).mean())


# -- the command ----------------------------------------------------------------------------


def evaluate_generator(
    model: ImageGenerator, paths: Sequence[Path], inception: Any = None
) -> dict[str, Any]:
    """``gentool evaluate RUN --data REAL``: as many generated images as real ones; FID/KID
    in ``inception`` (an ``inception.InceptionSpace``) when given, else in the data's
    classifier space."""
    started = time.perf_counter()
    channels: Literal["gray", "rgb"] = "rgb" if model.channels == 3 else "gray"
    real = read_images(list(paths), model.size, channels)
    if len(real) > MAX_REAL:
        chosen = np.sort(np.random.default_rng(SEED).permutation(len(real))[:MAX_REAL])
        labels = real.labels[chosen] if real.labels is not None else None
        real = ImageSet(real.images[chosen], labels, real.classes, real.skipped)
    if len(real) < 4:
        raise DataError(
            f"'{paths[0]}' holds {len(real)} readable image(s); FID and KID need at least 4 "
            "(a few hundred for stable figures)"
        )
    space: Any = inception or feature_space(real, Path(paths[0]).name, model.size)
    generated = generation.random_images(model.pair, model.classes(), len(real), SEED).numpy()
    real_features, _ = space(real.images)
    fake_features, fake_probs = space(generated)
    kid_mean, kid_std = kid(fake_features, real_features)
    metrics: dict[str, Any] = {
        "feature_space": space.name,
        "real_images": len(real),
        "generated_images": len(generated),
        "skipped_files": len(real.skipped),
        f"fid_{space.name}": fid(fake_features, real_features),
        f"kid_{space.name}": kid_mean,
        f"kid_{space.name}_std": kid_std,
    }
    if space.accuracy is not None:
        metrics["classifier_accuracy"] = space.accuracy
        metrics.update(coverage(fake_probs))
        if model.classes() and model.classes() == space.classes:
            metrics["conditional_accuracy"] = conditional_accuracy(model, space)
    some = np.random.default_rng(SEED).permutation(len(real))[:MEMORISATION_IMAGES]
    train_dist = nearest_distance(generated[some], model.reference)
    heldout_dist = nearest_distance(real.images[some], model.reference)
    metrics.update(
        nn_distance_generated=train_dist,
        nn_distance_heldout=heldout_dist,
        nn_distance_ratio=train_dist / heldout_dist if heldout_dist > 0 else None,
        seconds=time.perf_counter() - started,
    )
    return metrics


def conditional_accuracy(model: ImageGenerator, space: FeatureSpace, per_class: int = 100) -> float:
    """How often the classifier names the class the conditional generator was asked for."""
    k = len(model.classes())
    labels = torch.arange(k).repeat_interleave(per_class)
    z = torch.randn(
        len(labels), model.pair.latent_size, generator=torch.Generator().manual_seed(SEED)
    )
    _, probs = space(generation.sample(model.pair, z, labels).numpy())
    return float((probs.argmax(1) == labels.numpy()).mean())


def _floats(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 127.5 - 1.0


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
