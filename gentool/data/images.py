"""Reading images for the image families: a folder (recursive; sub-folder names are class
labels), MNIST-style idx files (gzip accepted), or an ``.npz`` array. pillow and numpy only.

Images come back as one ``uint8`` array ``N x C x H x W`` at the requested size (resized on
the short side, then center-cropped), gray (C=1) or RGB (C=3). Unreadable files in a folder
are skipped and counted (``ImageSet.skipped``), so one corrupt PNG does not stop a run; a
source with no readable image at all is a ``DataError``.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from gentool.data.files import check_regular, files_under, read_data_bytes
from gentool.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
Channels = Literal["auto", "gray", "rgb"]


@dataclass
class ImageSet:
    """Images ``N x C x H x W`` (uint8), their class labels (or None), and what was skipped."""

    images: np.ndarray
    labels: np.ndarray | None = None  # int64 class index per image
    classes: list[str] = field(default_factory=list)  # class index -> name
    skipped: dict[str, str] = field(default_factory=dict)  # file -> why it was skipped

    def __len__(self) -> int:
        return len(self.images)

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])


def image_files(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursive, by suffix), in a stable order; hidden skipped."""
    return files_under(folder, IMAGE_SUFFIXES)


def open_image(path: Path) -> Any:
    """Open one image fully (a PIL image); a DataError names an unreadable file."""
    from PIL import Image, UnidentifiedImageError

    check_regular(path, "image")  # Image.open would wait forever on a FIFO
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"'{path}' is not a readable image ({err}); fix or remove it") from err


def read_images(
    paths: Sequence[str | Path], image_size: int, channels: Channels = "auto"
) -> ImageSet:
    """Read every source in ``paths`` (folders, idx files, npz files) into one ImageSet.

    ``channels="auto"`` keeps gray data gray and makes it RGB if any source is in color.
    Labels are kept only when every source has them (with the same class names).
    """
    if not paths:
        raise DataError("no image data given; pass --data FOLDER (or an idx/npz file)")
    if image_size < 4:
        raise DataError(f"image size {image_size} is too small; use at least 4 pixels")
    sets = [_read_one(Path(p), image_size, channels) for p in paths]
    if channels == "auto" and len({s.channels for s in sets}) > 1:
        sets = [_to_channels(s, 3) for s in sets]
    images = np.concatenate([s.images for s in sets])
    labels: np.ndarray | None = None
    classes = sets[0].classes
    if all(s.labels is not None for s in sets) and all(s.classes == classes for s in sets):
        labels = np.concatenate([s.labels for s in sets])
    skipped = {k: v for s in sets for k, v in s.skipped.items()}
    return ImageSet(images, labels, classes if labels is not None else [], skipped)


def to_array(image: Any, image_size: int, channels: Literal["gray", "rgb", "rgba"]) -> np.ndarray:
    """A PIL image as ``C x S x S`` uint8: resized on its short side, center-cropped."""
    from PIL import Image

    image = image.convert({"gray": "L", "rgb": "RGB", "rgba": "RGBA"}[channels])
    width, height = image.size
    scale = image_size / min(width, height)
    if scale != 1:
        size = (max(image_size, round(width * scale)), max(image_size, round(height * scale)))
        image = image.resize(size, Image.Resampling.BICUBIC)
        width, height = image.size
    left, top = (width - image_size) // 2, (height - image_size) // 2
    image = image.crop((left, top, left + image_size, top + image_size))
    array = np.asarray(image, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def _read_one(path: Path, image_size: int, channels: Channels) -> ImageSet:
    if not path.exists():
        raise DataError(f"image data '{path}' does not exist; check the path")
    if path.is_dir():
        return _read_folder(path, image_size, channels)
    check_regular(path, "image data")
    name = path.name.lower()
    if name.endswith(".npz"):
        return _read_npz(path, image_size, channels)
    if "idx" in name or name.endswith(("-ubyte", "-ubyte.gz")):
        return _read_idx(path, image_size, channels)
    if name.endswith(IMAGE_SUFFIXES):
        mode: Literal["gray", "rgb"] = "rgb" if channels == "rgb" else "gray"
        image = open_image(path)
        if channels == "auto":
            mode = "gray" if image.mode in ("L", "1", "LA", "I", "I;16") else "rgb"
        return ImageSet(to_array(image, image_size, mode)[None])
    raise DataError(
        f"'{path}' is not an image source gentool reads; give a folder of images, an MNIST "
        "idx file (…-idx3-ubyte[.gz]) or an .npz with an 'images' array"
    )


def _read_folder(folder: Path, image_size: int, channels: Channels) -> ImageSet:
    files = image_files(folder)
    if not files:
        raise DataError(f"'{folder}' holds no image files (PNG, JPEG, ...); check the folder")
    opened, skipped = [], {}
    for path in files:
        try:
            opened.append((path, open_image(path)))
        except DataError as err:
            skipped[str(path)] = str(err)
    if not opened:
        raise DataError(
            f"'{folder}' holds {len(files)} image files and none is readable "
            f"(first: {next(iter(skipped.values()))})"
        )
    gray = all(im.mode in ("L", "1", "LA", "I", "I;16") for _, im in opened)
    mode: Literal["gray", "rgb"] = (
        "gray" if channels == "gray" or (channels == "auto" and gray) else "rgb"
    )
    images = np.stack([to_array(im, image_size, mode) for _, im in opened])
    # Class labels: the first folder level below `folder`, when every image is in one.
    parts = [p.relative_to(folder).parts for p, _ in opened]
    labels, classes = None, []
    if all(len(p) > 1 for p in parts):
        classes = sorted({p[0] for p in parts})
        labels = np.array([classes.index(p[0]) for p in parts], dtype=np.int64)
    return ImageSet(images, labels, classes, skipped)


def _read_npz(path: Path, image_size: int, channels: Channels) -> ImageSet:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as err:
        raise DataError(f"'{path}' is not a readable .npz file ({err})") from err
    key = "images" if "images" in arrays else ("x" if "x" in arrays else None)
    if key is None:
        raise DataError(
            f"'{path}' has no 'images' (or 'x') array, only {sorted(arrays)}; save the images "
            "as np.savez(path, images=..., labels=...)"
        )
    images = arrays[key]
    labels = arrays.get("labels", arrays.get("y"))
    if labels is not None and len(labels) != len(images):
        raise DataError(f"'{path}' has {len(images)} images but {len(labels)} labels")
    classes = [str(c) for c in arrays["classes"]] if "classes" in arrays else []
    return _from_array(path, images, labels, classes, image_size, channels)


def _read_idx(path: Path, image_size: int, channels: Channels) -> ImageSet:
    images = _idx_array(path)
    if images.ndim != 3:
        raise DataError(
            f"'{path}' holds idx data of shape {images.shape}, not images (N x H x W); give "
            "the images file (…-idx3-ubyte), not the labels"
        )
    labels, classes = None, []
    label_path = _label_file(path)
    if label_path is not None:
        labels = _idx_array(label_path)
        if labels.ndim != 1 or len(labels) != len(images):
            raise DataError(
                f"'{label_path}' holds {labels.shape[0]} labels for {len(images)} images in "
                f"'{path}'; give the matching labels file"
            )
        classes = [str(c) for c in range(int(labels.max()) + 1)]
    return _from_array(path, images, labels, classes, image_size, channels)


def _label_file(images: Path) -> Path | None:
    """The labels file beside an MNIST images file (…-images-idx3-ubyte → …-labels-idx1-ubyte)."""
    name = images.name.replace("images-idx3", "labels-idx1").replace("images.idx3", "labels.idx1")
    candidate = images.with_name(name)
    return candidate if name != images.name and candidate.is_file() else None


_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _idx_array(path: Path) -> np.ndarray:
    try:
        check_regular(path, "image data")  # before open(), which waits forever on a FIFO
        with path.open("rb") as f:
            gzipped = f.read(2) == b"\x1f\x8b"
        raw = read_data_bytes(path, gzipped, "image data")
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise DataError(f"'{path}' cannot be read: {err}") from err
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _IDX_TYPES:
        raise DataError(f"'{path}' is not an idx file (bad magic number); check the file")
    dims = raw[3]
    header = 4 + 4 * dims
    shape = struct.unpack(f">{dims}I", raw[4:header]) if len(raw) >= header else ()
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = header + int(np.prod(shape)) * dtype.itemsize if shape else -1
    if len(raw) != expected:
        raise DataError(
            f"'{path}' is truncated or the wrong size: its header says {shape} "
            f"({expected} bytes) but the file has {len(raw)} bytes"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def _from_array(
    path: Path,
    images: np.ndarray,
    labels: np.ndarray | None,
    classes: list[str],
    image_size: int,
    channels: Channels,
) -> ImageSet:
    """N x H x W, N x H x W x C or N x C x H x W arrays (uint8, or floats in [0, 1])."""
    from PIL import Image

    if len(images) == 0:
        raise DataError(f"'{path}' holds no images")
    if images.dtype != np.uint8:
        images = np.clip(np.asarray(images, dtype=np.float64) * 255.0 + 0.5, 0, 255)
        images = images.astype(np.uint8)
    if images.ndim == 4 and images.shape[1] in (1, 3) and images.shape[-1] not in (1, 3):
        images = images.transpose(0, 2, 3, 1)  # N x C x H x W -> N x H x W x C
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] != 3):
        raise DataError(
            f"'{path}' holds an array of shape {images.shape}; give images as N x H x W "
            "(gray) or N x H x W x 3 (RGB)"
        )
    mode: Literal["gray", "rgb"] = (
        "rgb" if channels == "rgb" or (channels == "auto" and images.ndim == 4) else "gray"
    )
    if images.shape[1:3] == (image_size, image_size):
        out = images if images.ndim == 4 else images[..., None]
        out = out.transpose(0, 3, 1, 2)
        if mode == "rgb" and out.shape[1] == 1:
            out = np.repeat(out, 3, axis=1)
        elif mode == "gray" and out.shape[1] == 3:
            out = np.stack([to_array(Image.fromarray(im), image_size, mode) for im in images])
    else:
        out = np.stack([to_array(Image.fromarray(im), image_size, mode) for im in images])
    labels = None if labels is None else np.asarray(labels, dtype=np.int64)
    if labels is not None and not classes:
        classes = [str(c) for c in range(int(labels.max()) + 1)]
    return ImageSet(np.ascontiguousarray(out), labels, classes)


def _to_channels(images: ImageSet, channels: int) -> ImageSet:
    if images.channels == channels:
        return images
    array = np.repeat(images.images, 3, axis=1)
    return ImageSet(array, images.labels, images.classes, images.skipped)


def default_images_path() -> Path:
    """1,000 MNIST digits with labels, shipped in the package (see gentool/embedded/README.md)."""
    from importlib import resources

    return Path(str(resources.files("gentool.embedded").joinpath("digits.npz")))
