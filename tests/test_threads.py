"""--threads N and GENTOOL_THREADS: torch's intra-op threads, set only where torch runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import assert_error, invoke, run_gentool

from gentool import api, threads

# Runs `gentool ARGS` in a fresh interpreter, then reports torch's thread count (or that
# torch was never imported) on stderr's last line.
REPORT = """\
import sys
from gentool.cli import cli
cli(sys.argv[1:], standalone_mode=False)
torch = sys.modules.get("torch")
print("threads", torch.get_num_threads() if torch else "no torch", file=sys.stderr)
"""


def threads_after(*args: str | Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-c", REPORT, *map(str, args)],
        capture_output=True,
        text=True,
        # OMP_NUM_THREADS=1 (conftest) is torch's default here, so any other count is ours.
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stderr.strip().splitlines()[-1].removeprefix("threads ")


@pytest.fixture(scope="module")
def rnn_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    out = tmp_path_factory.mktemp("rnn") / "run"
    tiny = ["model.hidden_size=8", "model.embedding_size=8", "model.num_layers=1"]
    tiny += ["train.batch_size=2", "train.seq_len=8", "train.max_steps=2", "train.eval_batches=1"]
    api.train("rnn", overrides=tiny, out=out)
    return out


def test_threads_option_sets_torchs_intra_op_threads(rnn_run: Path, corpus: Path) -> None:
    assert threads_after("evaluate", rnn_run, "--data", corpus) == "1"
    assert threads_after("evaluate", rnn_run, "--data", corpus, "--threads", "3") == "3"
    sample = ["generate", rnn_run, "--max-tokens", "2", "--threads", "2"]
    assert threads_after(*sample) == "2"


def test_gentool_threads_is_the_default_and_the_option_wins(rnn_run: Path, corpus: Path) -> None:
    env = {threads.ENV: "2"}
    assert threads_after("evaluate", rnn_run, "--data", corpus, env=env) == "2"
    assert threads_after("evaluate", rnn_run, "--data", corpus, "--threads", "3", env=env) == "3"


def test_ngram_never_imports_torch_for_threads(corpus: Path, tmp_path: Path) -> None:
    train = ["train", "ngram", "--data", corpus, "--out", tmp_path / "ng", "--threads", "2"]
    assert threads_after(*train) == "no torch"


def test_set_threads_applies_at_once_when_torch_is_imported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    monkeypatch.setattr(threads, "_requested", None)
    try:
        threads.set_threads(2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_threads_below_one_is_a_usage_error(tmp_path: Path, corpus: Path) -> None:
    result = invoke("evaluate", tmp_path, "--data", corpus, "--threads", "0", ok=False)
    assert result.exit_code == 2
    assert "--threads" in result.stderr


def test_bad_gentool_threads_is_one_error_line(rnn_run: Path, corpus: Path) -> None:
    result = run_gentool("evaluate", rnn_run, "--data", corpus, env={threads.ENV: "many"})
    assert_error(result, "GENTOOL_THREADS='many'", "1 or more")
