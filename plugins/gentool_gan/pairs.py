"""Reading two image domains for translation (torch-free): A (``--data``) and B (``--target``).

A domain is a folder of images (recursive; the first sub-folder level is the class, as
everywhere in gentool), or an idx file (labels from the ``…-labels-idx1-ubyte`` file beside
it) or an npz file (``images`` and optionally ``labels``, ``classes``); or both domains
come in one ``.npz`` with arrays ``a`` and ``b`` (and optionally ``labels_a``/``labels_b``).
Two labelled domains share one class list, matched by name (``align_classes``). Paired translation
matches A and B files by their relative path without the extension (``cat/01.png`` in A
and ``cat/01.jpg`` in B are a pair); files on one side only are counted and reported, not
an error, unless nothing matches. Each domain keeps its own channels: ``auto`` reads gray
images as gray, images with transparency as RGBA, others as RGB.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from gentool.data.files import check_regular
from gentool.data.images import image_files, open_image, read_images, to_array
from gentool.errors import DataError

Mode = Literal["gray", "rgb", "rgba"]
CHANNELS: dict[str, int] = {"gray": 1, "rgb": 3, "rgba": 4}
GRAY = ("L", "1", "I", "I;16", "F")


@dataclass
class Domain:
    """One domain's images ``N x C x S x S`` (uint8), the key each was matched by, its
    class labels (or None) and the files skipped as unreadable."""

    images: np.ndarray
    keys: list[str]
    labels: np.ndarray | None = None
    classes: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    def take(self, chosen: np.ndarray | list[int]) -> Domain:
        index = np.asarray(chosen, dtype=np.int64)
        labels = self.labels[index] if self.labels is not None else None
        return Domain(self.images[index], [self.keys[i] for i in index], labels, self.classes)


@dataclass
class Pairs:
    """What was read: the two domains (row i of A pairs with row i of B when paired), and
    the number of files of each side that had no partner."""

    a: Domain
    b: Domain
    unmatched_a: int = 0
    unmatched_b: int = 0

    def counts(self) -> dict[str, int]:
        skipped = len(self.a.skipped) + len(self.b.skipped)
        return {
            "images_a": len(self.a),
            "images_b": len(self.b),
            "unmatched_a": self.unmatched_a,
            "unmatched_b": self.unmatched_b,
            "skipped_files": skipped,
        }


def mode_of(image: Any) -> Mode:
    """How ``auto`` reads one PIL image."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        return "rgba"
    return "gray" if image.mode in GRAY else "rgb"


def widest(modes: list[Mode]) -> Mode:
    """The mode that holds all of ``modes`` (gray < rgb < rgba)."""
    return max(modes, key=lambda m: CHANNELS[m]) if modes else "gray"


def read_domain(path: Path, size: int, channels: str, what: str) -> Domain:
    """The images of one domain: a folder (keys: relative paths without the extension), or
    an idx/npz/image file read by ``gentool.data.images`` (keys: the row numbers)."""
    if not path.exists():
        raise DataError(f"{what} '{path}' does not exist; check the path")
    if not path.is_dir():
        check_regular(path, "image data")
        if channels == "rgba":
            raise DataError(f"{what} '{path}' is not a folder: only image files hold RGBA")
        mode: Any = channels
        found = read_images([path], size, mode)
        keys = [str(i) for i in range(len(found))]
        return Domain(found.images, keys, found.labels, found.classes, found.skipped)
    files = image_files(path)
    if not files:
        raise DataError(f"{what} '{path}' holds no image files (PNG, JPEG, ...); check the folder")
    opened, skipped = [], {}
    for file in files:
        try:
            opened.append((file, open_image(file)))
        except DataError as err:
            skipped[str(file)] = str(err)
    if not opened:
        raise DataError(
            f"{what} '{path}' holds {len(files)} image files and none is readable "
            f"(first: {next(iter(skipped.values()))})"
        )
    chosen: Mode = (
        widest([mode_of(im) for _, im in opened]) if channels == "auto" else channels  # type: ignore[assignment]
    )
    images = np.stack([to_array(im, size, chosen) for _, im in opened])
    parts = [f.relative_to(path).parts for f, _ in opened]
    keys = [f.relative_to(path).with_suffix("").as_posix() for f, _ in opened]
    labels, classes = None, []
    if all(len(p) > 1 for p in parts):
        classes = sorted({p[0] for p in parts})
        labels = np.array([classes.index(p[0]) for p in parts], dtype=np.int64)
    return Domain(images, keys, labels, classes, skipped)


def align_classes(a: Domain, b: Domain) -> None:
    """Give two labelled domains one class list, matched by name, so that a label means the
    same class on both sides: a held-out slice without the last digit, or a folder without
    one class, would otherwise get a shorter list (from the highest label, or the sub-folders
    present) and class preservation would not be scored. Names that are all integers (idx
    and npz labels, folders 0/ ... 9/) are ordered as numbers, others alphabetically."""
    if a.labels is None or b.labels is None or a.classes == b.classes:
        return
    names = set(a.classes) | set(b.classes)
    numeric = all(name.lstrip("-").isdigit() for name in names)
    shared = sorted(names, key=int) if numeric else sorted(names)
    for domain in (a, b):
        index = np.array([shared.index(name) for name in domain.classes], dtype=np.int64)
        domain.labels = index[domain.labels]
        domain.classes = shared


def read_npz_pairs(path: Path, size: int, channels_a: str, channels_b: str) -> Pairs:
    """Both domains from one ``.npz``: arrays ``a`` and ``b`` (N x H x W, or N x H x W x C
    with C of 1, 3 or 4; uint8), ``labels_a``/``labels_b`` optional."""
    check_regular(path, "image data")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as err:
        raise DataError(f"'{path}' is not a readable .npz file ({err})") from err
    if "a" not in arrays or "b" not in arrays:
        raise DataError(
            f"'{path}' has no 'a' and 'b' arrays, only {sorted(arrays)}; save the two domains "
            "as np.savez(path, a=..., b=...), or give --data A/ --target B/"
        )
    pairs = Pairs(
        _domain_array(path, "a", arrays["a"], arrays.get("labels_a"), size, channels_a),
        _domain_array(path, "b", arrays["b"], arrays.get("labels_b"), size, channels_b),
    )
    align_classes(pairs.a, pairs.b)
    return pairs


def _domain_array(
    path: Path, name: str, images: np.ndarray, labels: Any, size: int, channels: str
) -> Domain:
    from PIL import Image

    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4) or not len(images):
        raise DataError(
            f"'{path}' array '{name}' has shape {images.shape}; give N x H x W or "
            "N x H x W x C images (C: 1, 3 or 4)"
        )
    if images.dtype != np.uint8:
        images = np.clip(np.asarray(images, dtype=np.float64) * 255 + 0.5, 0, 255).astype(np.uint8)
    held = {1: "gray", 3: "rgb", 4: "rgba"}[images.shape[-1]]
    mode: Mode = held if channels == "auto" else channels  # type: ignore[assignment]
    pil = {"gray": "L", "rgb": "RGB", "rgba": "RGBA"}[held]
    out = np.stack(
        [
            to_array(Image.fromarray(im[..., 0] if held == "gray" else im, pil), size, mode)
            for im in images
        ]
    )
    if labels is not None and len(labels) != len(images):
        raise DataError(f"'{path}' has {len(images)} '{name}' images but {len(labels)} labels")
    labels = None if labels is None else np.asarray(labels, dtype=np.int64)
    classes = [str(c) for c in range(int(labels.max()) + 1)] if labels is not None else []
    return Domain(out, [str(i) for i in range(len(out))], labels, classes)


def read_domains(
    data: list[Path], target: Path | None, size: int, channels_a: str, channels_b: str,
    paired: bool,
) -> Pairs:  # fmt: skip
    """A and B for training or scoring: ``--data A --target B``, or one ``.npz`` with ``a``
    and ``b``. ``paired``: rows matched by key (unmatched files counted), else as read."""
    if target is None:
        if len(data) == 1 and data[0].name.lower().endswith(".npz"):
            pairs = read_npz_pairs(data[0], size, channels_a, channels_b)
            if paired and len(pairs.a) != len(pairs.b):
                raise DataError(
                    f"'{data[0]}' holds {len(pairs.a)} 'a' and {len(pairs.b)} 'b' images; "
                    "paired translation needs as many of each, row i with row i"
                )
            return pairs
        raise DataError(
            "image translation needs two domains: --data A/ --target B/ (folders of images), "
            "or --data PAIRS.npz with arrays 'a' and 'b'"
        )
    if len(data) != 1:
        raise DataError(f"give one --data folder (domain A) beside --target, got {len(data)}")
    a = read_domain(data[0], size, channels_a, "--data")
    b = read_domain(target, size, channels_b, "--target")
    align_classes(a, b)
    if not paired:
        return Pairs(a, b)
    index_b = {key.lower(): i for i, key in enumerate(b.keys)}
    rows_a, rows_b = [], []
    for i, key in enumerate(a.keys):
        j = index_b.get(key.lower())
        if j is not None:
            rows_a.append(i)
            rows_b.append(j)
    if not rows_a:
        raise DataError(
            f"no image of --data '{data[0]}' has a partner in --target '{target}' (pairs are "
            f"matched by relative path without the extension; first of A: '{a.keys[0]}', "
            f"first of B: '{b.keys[0]}'); name each pair alike, or train model.task=cyclegan"
        )
    matched = Pairs(a.take(rows_a), b.take(rows_b), len(a) - len(rows_a), len(b) - len(rows_b))
    matched.a.skipped, matched.b.skipped = a.skipped, b.skipped
    return matched


def unmatched_note(pairs: Pairs) -> str | None:
    """A line for the log about files without a partner, or None."""
    if not pairs.unmatched_a and not pairs.unmatched_b:
        return None
    return (
        f"{pairs.unmatched_a} image(s) of A and {pairs.unmatched_b} of B have no partner "
        "(matched by relative path without the extension) and are left out"
    )
