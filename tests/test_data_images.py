"""Image and parallel-corpus readers, and the image writers: the data the gan and
transformer translation families read."""

from __future__ import annotations

import gzip
import io
import struct
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA

from gentool.api import stdin_batches
from gentool.data import read_parallel, read_tsv
from gentool.data.images import default_images_path, image_files, read_images
from gentool.errors import DataError

Image = pytest.importorskip("PIL.Image")


def _png(path: Path, color: int | tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "L" if isinstance(color, int) else "RGB"
    Image.new(mode, size, color).save(path)
    return path


def _idx(path: Path, array: np.ndarray, dims_override: tuple[int, ...] | None = None) -> Path:
    dims = dims_override or array.shape
    header = b"\x00\x00\x08" + bytes([len(dims)]) + struct.pack(f">{len(dims)}I", *dims)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))
    return path


# -- images -------------------------------------------------------------------------------------


def test_folder_classes_come_from_subfolders_and_corrupt_files_are_counted(tmp_path: Path) -> None:
    for i in range(3):
        _png(tmp_path / "cats" / f"{i}.png", 200)
        _png(tmp_path / "dogs" / "deep" / f"{i}.jpg", 20)
    (tmp_path / "dogs" / "broken.png").write_bytes(b"\x89PNG not really")
    found = read_images([tmp_path], image_size=16)
    assert found.images.shape == (6, 1, 16, 16) and found.images.dtype == np.uint8
    assert found.classes == ["cats", "dogs"]
    assert found.labels is not None and sorted(found.labels.tolist()) == [0, 0, 0, 1, 1, 1]
    assert list(found.skipped) == [str(tmp_path / "dogs" / "broken.png")]
    # cats are bright and dogs dark, whatever the order the files were found in
    brightness = found.images.reshape(6, -1).mean(axis=1)
    assert all((b > 100) == (label == 0) for b, label in zip(brightness, found.labels, strict=True))


def test_colour_folder_is_rgb_and_center_cropped(tmp_path: Path) -> None:
    image = Image.new("RGB", (60, 20), (0, 0, 0))
    image.paste((255, 0, 0), (20, 0, 40, 20))  # a red centre third
    image.save(tmp_path / "a.png")
    found = read_images([tmp_path], image_size=10)
    assert found.images.shape == (1, 3, 10, 10) and found.labels is None
    assert found.images[0, 0].min() > 200 and found.images[0, 1].max() < 50  # only the centre


def test_folder_without_readable_images(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no image files"):
        read_images([tmp_path / "empty"], 16)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match="none is readable"):
        read_images([tmp_path / "bad"], 16)


def test_idx_with_labels_beside_it(tmp_path: Path) -> None:
    images = np.arange(4 * 28 * 28).reshape(4, 28, 28) % 256
    _idx(tmp_path / "t-images-idx3-ubyte.gz", images)
    _idx(tmp_path / "t-labels-idx1-ubyte.gz", np.array([3, 1, 4, 1]))
    found = read_images([tmp_path / "t-images-idx3-ubyte.gz"], 28)
    assert np.array_equal(found.images[:, 0], images.astype(np.uint8))
    assert found.labels is not None and found.labels.tolist() == [3, 1, 4, 1]
    assert found.classes == [str(c) for c in range(5)]


def test_wrong_size_idx_is_an_error(tmp_path: Path) -> None:
    path = _idx(tmp_path / "x-images-idx3-ubyte.gz", np.zeros((3, 28, 28)), (4, 28, 28))
    with pytest.raises(DataError, match="truncated or the wrong size"):
        read_images([path], 28)
    (tmp_path / "y-images-idx3-ubyte").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(DataError, match="bad magic number"):
        read_images([tmp_path / "y-images-idx3-ubyte"], 28)


def test_npz_in_any_layout(tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).random((5, 8, 8, 3))  # floats in [0, 1], N x H x W x C
    np.savez(tmp_path / "a.npz", images=rgb, labels=np.array([0, 1, 0, 1, 2]))
    found = read_images([tmp_path / "a.npz"], 8)
    assert found.images.shape == (5, 3, 8, 8)
    assert np.allclose(found.images[:, 0] / 255, rgb[..., 0], atol=1 / 255)
    np.savez(tmp_path / "b.npz", pictures=rgb)
    with pytest.raises(DataError, match="no 'images'"):
        read_images([tmp_path / "b.npz"], 8)


def test_embedded_digits() -> None:
    found = read_images([default_images_path()], 28)
    assert found.images.shape == (1000, 1, 28, 28)
    assert found.labels is not None and set(found.labels.tolist()) == set(range(10))


@pytest.mark.skipif(not (SHARED_DATA / "mnist_t10k").is_dir(), reason="needs ../shared/data")
def test_mnist_t10k() -> None:
    found = read_images([SHARED_DATA / "mnist_t10k" / "t10k-images-idx3-ubyte.gz"], 32)
    assert found.images.shape == (10000, 1, 32, 32)
    assert found.labels is not None and np.bincount(found.labels)[1] == 1135


def test_image_files_are_sorted_and_skip_hidden(tmp_path: Path) -> None:
    for name in ("b.png", "a.JPG", ".hidden.png", "notes.txt", ".git/x.png", "sub/c.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert [p.relative_to(tmp_path).as_posix() for p in image_files(tmp_path)] == [
        "a.JPG",
        "b.png",
        "sub/c.png",
    ]


# -- parallel text ------------------------------------------------------------------------------


def test_parallel_files_align_and_empty_pairs_are_counted(tmp_path: Path) -> None:
    (tmp_path / "a.en").write_text("A dog.\n\nTwo cats.\nA man \n", encoding="utf-8")
    (tmp_path / "a.de.gz").write_bytes(gzip.compress(b"Ein Hund.\nLeer.\nZwei Katzen.\n\n"))
    corpus = read_parallel(tmp_path / "a.en", tmp_path / "a.de.gz")
    assert corpus.pairs == [("A dog.", "Ein Hund."), ("Two cats.", "Zwei Katzen.")]
    assert corpus.dropped == {"empty": 2}


def test_misaligned_parallel_files(tmp_path: Path) -> None:
    (tmp_path / "a.en").write_text("one\ntwo\nthree\n", encoding="utf-8")
    (tmp_path / "a.de").write_text("eins\nzwei\n", encoding="utf-8")
    with pytest.raises(DataError, match="'.*a.en' has 3 lines and '.*a.de' has 2"):
        read_parallel(tmp_path / "a.en", tmp_path / "a.de")


def test_tsv_pairs(tmp_path: Path) -> None:
    (tmp_path / "p.tsv").write_text("A dog.\tEin Hund.\n\nCat\tKatze\n", encoding="utf-8")
    assert read_tsv(tmp_path / "p.tsv").pairs == [("A dog.", "Ein Hund."), ("Cat", "Katze")]
    (tmp_path / "q.tsv").write_text("A dog.\tEin\tHund.\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 1 has 2 tabs, not 1"):
        read_tsv(tmp_path / "q.tsv")


@pytest.mark.skipif(not (SHARED_DATA / "multi30k").is_dir(), reason="needs ../shared/data")
def test_multi30k_val_aligns() -> None:
    folder = SHARED_DATA / "multi30k"
    corpus = read_parallel(folder / "val.en.gz", folder / "val.de.gz")
    assert len(corpus.pairs) == 1014 and not corpus.dropped


def test_stdin_batches_keep_order_and_size() -> None:
    stream = io.BytesIO("".join(f"line {i}\r\n" for i in range(7)).encode() + b"last")
    batches = list(stdin_batches(stream, 3))
    assert [len(b) for b in batches] == [3, 3, 1, 1]
    assert [line for b in batches for line in b] == [*(f"line {i}" for i in range(7)), "last"]
