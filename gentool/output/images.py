"""Writing images: sample grids and folders of PNGs (pillow only)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gentool.data.images import IMAGE_SUFFIXES
from gentool.errors import DataError
from gentool.runs import atomic_path


def make_grid(images: Sequence[Any], columns: int | None = None, pad: int = 2) -> Any:
    """Tile equally sized PIL images row by row (``columns`` default: a square-ish grid)."""
    from PIL import Image

    if not images:
        raise ValueError("make_grid needs at least one image")
    columns = max(1, min(columns or math.ceil(math.sqrt(len(images))), len(images)))
    rows = math.ceil(len(images) / columns)
    width, height = images[0].size
    mode = "RGB" if any(im.mode not in ("L", "1") for im in images) else "L"
    grid = Image.new(mode, (columns * (width + pad) + pad, rows * (height + pad) + pad), 0)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        grid.paste(image.convert(mode), (pad + c * (width + pad), pad + r * (height + pad)))
    return grid


def check_image_name(path: Path) -> None:
    """Raise DataError unless ``path`` ends in an image suffix (which names the format)."""
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise DataError(f"'{path}' has no image suffix; name it e.g. '{path.stem}.png'")


def save_image(image: Any, path: Path) -> None:
    """Write ``image`` to ``path`` atomically, in the format its suffix names."""
    check_image_name(path)
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:  # the temporary name has no suffix: name the format
        image.save(tmp, format=Image.registered_extensions()[path.suffix.lower()])
