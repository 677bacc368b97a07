"""Bad input: one clear 'Error:' line, exit code 1, nothing left behind or overwritten."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_error, invoke

from gentool import runs
from gentool.errors import RunError


def train(*args: str):
    return invoke("train", *args, ok=False)


def assert_nothing_written(tmp_path: Path) -> None:
    leftovers = [p.name for p in tmp_path.rglob("*") if p.name.startswith(".") or "runs" in p.parts]
    assert leftovers == []


def test_missing_file(tmp_path: Path) -> None:
    assert_error(train("ngram", "--data", "nope.txt"), "data file 'nope.txt' does not exist")
    assert_nothing_written(tmp_path)


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("\n\n  \n")
    assert_error(train("ngram", "--data", "empty.txt"), "'empty.txt' is empty")
    assert_nothing_written(tmp_path)


def test_binary_file_names_the_offset(tmp_path: Path) -> None:
    (tmp_path / "img.bin").write_bytes(b"PNG header\x00\x01\x02")
    assert_error(train("ngram", "--data", "img.bin"), "'img.bin' is binary", "offset 10")


def test_non_utf8_file_names_the_byte_and_offset(tmp_path: Path) -> None:
    (tmp_path / "latin1.txt").write_bytes("größer\n".encode("latin-1"))
    assert_error(train("ngram", "--data", "latin1.txt"), "not UTF-8", "0xf6 at offset 2", "iconv")


def test_gzip_text_is_read(tmp_path: Path, corpus: Path) -> None:
    (tmp_path / "c.txt.gz").write_bytes(gzip.compress(corpus.read_bytes()))
    invoke("train", "ngram", "--data", "c.txt.gz", "--out", "r")


def test_corpus_shorter_than_order(tmp_path: Path) -> None:
    (tmp_path / "short.txt").write_text("hello world\n")
    result = train("ngram", "--data", "short.txt", "--set", "model.order=5")
    assert_error(result, "2 tokens", "fewer than the model order 5")
    assert_nothing_written(tmp_path)


def test_unknown_family_and_recipe_key(corpus: Path) -> None:
    assert_error(train("markov"), "family 'markov' is unknown; installed families:", "ngram")
    assert_error(
        train("ngram", "--set", "model.ordr=4"),
        "recipe key 'model.ordr' is unknown; valid keys: order, smoothing",
    )


def test_existing_output_directory_is_kept(tmp_path: Path, corpus: Path) -> None:
    invoke("train", "ngram", "--data", corpus, "--out", "r")
    before = (tmp_path / "r" / "gentool.json").read_text()
    assert_error(train("ngram", "--data", corpus, "--out", "r"), "'r' already exists", "--force")
    assert (tmp_path / "r" / "gentool.json").read_text() == before
    # A failing --force run leaves the old run as it was.
    assert_error(train("ngram", "--data", "nope.txt", "--out", "r", "--force"), "nope.txt")
    assert (tmp_path / "r" / "gentool.json").read_text() == before
    invoke("train", "ngram", "--data", corpus, "--out", "r", "--force", "--seed", "5")
    assert json.loads((tmp_path / "r" / "gentool.json").read_text())["seed"] == 5


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_model_file(tmp_path: Path, corpus: Path, damage: str) -> None:
    invoke("train", "ngram", "--data", corpus, "--out", "r")
    model = tmp_path / "r" / "model.safetensors"
    data = model.read_bytes()
    if damage == "truncate":
        model.write_bytes(data[: len(data) // 2])
    else:
        model.write_bytes(data[:-5] + bytes([data[-5] ^ 0xFF]) + data[-4:])
    for command in (
        ["generate", "r"],
        ["info", "r"],
        ["export", "r", "--format", "arpa", "-o", "m.arpa"],
    ):
        assert_error(invoke(*command, ok=False), "model.safetensors'", "retrain")
    assert not (tmp_path / "m.arpa").exists()


def test_safetensors_damage_is_caught_without_the_checksum(tmp_path: Path, corpus: Path) -> None:
    """Even when gentool.json's checksums are updated to match, the safetensors reader
    reports it."""
    invoke("train", "ngram", "--data", corpus, "--out", "r")
    model = tmp_path / "r" / "model.safetensors"
    model.write_bytes(model.read_bytes()[:100])
    meta_path = tmp_path / "r" / "gentool.json"
    meta = json.loads(meta_path.read_text())
    meta["files"]["model.safetensors"] = {"bytes": 100, "sha256": runs.sha256_file(model)}
    meta_path.write_text(json.dumps(meta))
    assert_error(invoke("generate", "r", ok=False), "model.safetensors' is truncated or corrupt")


def test_run_of_another_family(tmp_path: Path, corpus: Path) -> None:
    invoke("train", "hello", "--data", corpus, "--out", "h")
    assert_error(
        invoke("evaluate", "h", "--data", corpus, ok=False),
        "'hello' models cannot be evaluated on text; they support: generate-text",
    )
    assert_error(
        invoke("export", "h", "--format", "arpa", "-o", "x.arpa", ok=False),
        "'hello' models cannot export 'arpa'",
    )


def test_model_file_of_another_family(tmp_path: Path) -> None:
    runs.save_tensors(tmp_path / "model.safetensors", {"x": np.zeros(3)}, "gan")
    with pytest.raises(RunError, match="holds a 'gan' model, not 'ngram'"):
        runs.load_tensors(tmp_path / "model.safetensors", "ngram")


def test_not_a_run_directory(tmp_path: Path) -> None:
    assert_error(invoke("generate", "missing", ok=False), "run directory 'missing' does not exist")
    (tmp_path / "plain").mkdir()
    assert_error(invoke("info", "plain", ok=False), "'plain' is not a gentool run directory")


def test_usage_errors_exit_2() -> None:
    assert invoke("generate", ok=False).exit_code == 2
    assert invoke("generate", "r", "--top-p", "2", ok=False).exit_code == 2
    assert invoke("nosuchcommand", ok=False).exit_code == 2
