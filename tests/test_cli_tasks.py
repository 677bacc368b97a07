"""The generic commands dispatch by task: a model that lacks the task, or options that do
not fit it, give one clear message (exit 1) or a usage error (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import assert_error, invoke


@pytest.fixture
def ngram_run(corpus: Path) -> str:
    invoke("train", "ngram", "--data", corpus, "--out", "runs/ng")
    return "runs/ng"


def test_text_models_neither_translate_nor_restore(ngram_run: str, tmp_path: Path) -> None:
    assert_error(invoke("translate", ngram_run, "hello", ok=False), "cannot translate")
    (tmp_path / "in.png").write_bytes(b"")
    result = invoke("restore", ngram_run, "in.png", "-o", "out.png", ok=False)
    assert_error(result, "cannot restore images")
    result = invoke("evaluate", ngram_run, "--source", "in.png", "--target", "in.png", ok=False)
    assert_error(result, "cannot be evaluated on translations")


def test_image_options_on_a_text_model_are_misuse(ngram_run: str) -> None:
    for option in (["--grid", "g.png"], ["--out-dir", "d"], ["--interpolate", "4"]):
        result = invoke("generate", ngram_run, *option, ok=False)
        assert result.exit_code == 2 and "is for image models" in result.stderr, result.stderr
    assert not Path("g.png").exists() and not Path("d").exists()
    assert_error(invoke("generate", ngram_run, "--class", "3", ok=False), "not class-conditional")


def test_evaluate_needs_data_or_both_parallel_sides(ngram_run: str, corpus: Path) -> None:
    result = invoke("evaluate", ngram_run, ok=False)
    assert result.exit_code == 2 and "give --data PATH" in result.stderr
    result = invoke("evaluate", ngram_run, "--source", corpus, ok=False)
    assert result.exit_code == 2 and "--source and --target together" in result.stderr


def test_parallel_training_data_needs_both_sides(corpus: Path) -> None:
    result = invoke("train", "ngram", "--source", corpus, ok=False)
    assert_error(result, "needs both --source and --target")
    result = invoke("train", "ngram", "--data", corpus, "--val-target", corpus, ok=False)
    assert_error(result, "--val-source and --val-target")
    result = invoke("train", "ngram", "--source", corpus, "--target", corpus, ok=False)
    assert_error(result, "ngram trains on text or music", "not on parallel data")
    result = invoke("train", "transformer", "--source", corpus, "--target", "missing.de", ok=False)
    assert_error(result, "'missing.de' does not exist")
    assert not Path("runs").exists()
