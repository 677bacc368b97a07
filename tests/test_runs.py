"""The run directory: built atomically, verified on load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gentool import runs
from gentool.errors import RunError


def fill_with(text: str):
    def fill(directory: Path) -> dict:
        runs.write_text(directory / "weights.txt", text)
        return {"family": "test"}

    return fill


def test_create_run_records_files_and_versions(tmp_path: Path) -> None:
    out = runs.create_run(tmp_path / "run", False, fill_with("abc"))
    meta = json.loads((out / "gentool.json").read_text())
    assert meta["family"] == "test"
    assert meta["files"]["weights.txt"]["bytes"] == 3
    assert meta["versions"]["gentool"]
    runs.RunDirectory(out).verify()
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no temporary left over


def test_failed_run_leaves_nothing_and_keeps_the_old_run(tmp_path: Path) -> None:
    def explode(directory: Path) -> dict:
        (directory / "half-written").write_text("x")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        runs.create_run(tmp_path / "run", False, explode)
    assert list(tmp_path.iterdir()) == []

    runs.create_run(tmp_path / "run", False, fill_with("old"))
    with pytest.raises(RuntimeError):
        runs.create_run(tmp_path / "run", True, explode)
    assert (tmp_path / "run" / "weights.txt").read_text() == "old"
    runs.create_run(tmp_path / "run", True, fill_with("new"))
    assert (tmp_path / "run" / "weights.txt").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_existing_run_is_not_overwritten_without_force(tmp_path: Path) -> None:
    runs.create_run(tmp_path / "run", False, fill_with("old"))
    with pytest.raises(RunError, match="already exists; pass --force"):
        runs.create_run(tmp_path / "run", False, fill_with("new"))
    (tmp_path / "notarun").mkdir()
    with pytest.raises(RunError, match="is not a gentool run"):
        runs.create_run(tmp_path / "notarun", True, fill_with("new"))


def test_atomic_write_keeps_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "f.json"
    runs.write_json(target, {"a": 1})
    with pytest.raises(ZeroDivisionError), runs.atomic_path(target) as tmp:
        tmp.write_text("partial")
        1 / 0  # noqa: B018
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_verify_names_the_bad_file(tmp_path: Path) -> None:
    out = runs.create_run(tmp_path / "run", False, fill_with("abcdef"))
    (out / "weights.txt").write_text("abcdeX")
    with pytest.raises(RunError, match="weights.txt' is corrupt"):
        runs.RunDirectory(out).verify()
    (out / "weights.txt").write_text("abc")
    with pytest.raises(RunError, match="weights.txt' is truncated or corrupt"):
        runs.RunDirectory(out).verify()
    with pytest.raises(RunError, match="is not a gentool run directory"):
        runs.RunDirectory(tmp_path)
    with pytest.raises(RunError, match="does not exist"):
        runs.RunDirectory(tmp_path / "missing")


def test_saved_tensors_are_the_same_bytes_every_time(tmp_path: Path) -> None:
    """safetensors keeps metadata in a hash map: without sorting it, two saves of the same
    arrays differed in their header (and so in the sha256 gentool.json records)."""
    np = pytest.importorskip("numpy")
    tensors = {"b": np.arange(5, dtype=np.int64), "a": np.ones(3, dtype=np.float32)}
    blobs = set()
    for n in range(8):  # the hash map's order is per process: vary it with other keys too
        path = tmp_path / f"{n}.safetensors"
        runs.save_tensors(path, tensors, "ngram")
        blobs.add(path.read_bytes())
        assert runs.load_tensors(path, "ngram")["b"].tolist() == [0, 1, 2, 3, 4]
    assert len(blobs) == 1
    assert b'{"__metadata__":{"gentool.family":"ngram","gentool.format"' in blobs.pop()
