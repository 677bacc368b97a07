"""--threads N and GENTOOL_THREADS: torch's intra-op threads, set only where torch runs."""

from __future__ import annotations

import json
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
    from threadpoolctl import threadpool_info, threadpool_limits

    before = torch.get_num_threads()
    blas = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
    monkeypatch.setattr(threads, "_requested", None)
    for name in threads.LIBRARY_ENV:  # set_threads sets them: restored after the test
        monkeypatch.setenv(name, "1")
    try:
        threads.set_threads(2)
        assert torch.get_num_threads() == 2
        assert os.environ["RAYON_NUM_THREADS"] == "2"
    finally:
        torch.set_num_threads(before)
        if blas:
            threadpool_limits(blas[0], user_api="blas")


# The BLAS pool numpy uses, in a fresh interpreter: 2 threads by default here (OpenBLAS
# takes OMP_NUM_THREADS; it never uses more threads than cores), then after set_threads(1).
BLAS = """import json, numpy
from threadpoolctl import threadpool_info
from gentool import threads
def blas():
    return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
before = blas()
threads.set_threads(1)
print(json.dumps({"before": before, "after": blas()}))
"""


def test_threads_limit_numpys_blas_pool_loaded_before_or_after() -> None:
    env = {k: v for k, v in os.environ.items() if k not in threads.LIBRARY_ENV}
    loaded = subprocess.run(
        [sys.executable, "-c", BLAS],
        capture_output=True,
        text=True,
        env={**env, "OMP_NUM_THREADS": "2"},
        timeout=120,
        check=True,
    )
    counts = json.loads(loaded.stdout)
    assert counts["before"] and counts["after"] == [1] * len(counts["before"])
    # Not loaded yet when the command line reads --threads: the environment does it.
    system = run_gentool(
        "info", "--system", "--json", "--threads", "1", env={"OMP_NUM_THREADS": "2"}
    )
    assert system.returncode == 0, system.stderr
    details = json.loads(system.stdout)
    assert [p["threads"] for p in details["numpy"]["blas"]] == [1] * len(details["numpy"]["blas"])
    assert details["threads"] == {"requested": 1, "source": "--threads", "tokenizers": 1}


def test_info_system_shows_what_will_be_used() -> None:
    result = run_gentool("info", "--system", "--json", env={threads.ENV: "2"})
    assert result.returncode == 0, result.stderr
    details = json.loads(result.stdout)
    assert set(details) == {
        "gentool",
        "python",
        "platform",
        "cpu",
        "threads",
        "numpy",
        "torch",
        "cache",
    }
    assert details["threads"]["requested"] == 2 and details["threads"]["source"] == threads.ENV
    assert details["cpu"]["cores"] >= 1 and isinstance(details["cpu"]["flags"], list)
    assert details["numpy"]["version"]
    if details["torch"] is not None:  # (a core install has no torch)
        assert details["torch"]["threads"] == 2
        assert details["torch"]["devices"][0]["device"] == "cpu"
    text = run_gentool("info", "--system")
    assert text.returncode == 0, text.stderr
    assert "numpy BLAS" in text.stdout and "cpu flags" in text.stdout


def test_info_needs_a_run_or_system(tmp_path: Path) -> None:
    result = invoke("info", ok=False)
    assert result.exit_code == 2 and "--system" in result.stderr
    result = invoke("info", "--system", str(tmp_path), ok=False)
    assert result.exit_code == 2 and "without RUN" in result.stderr


def test_threads_below_one_is_a_usage_error(tmp_path: Path, corpus: Path) -> None:
    result = invoke("evaluate", tmp_path, "--data", corpus, "--threads", "0", ok=False)
    assert result.exit_code == 2
    assert "--threads" in result.stderr


def test_bad_gentool_threads_is_one_error_line(rnn_run: Path, corpus: Path) -> None:
    result = run_gentool("evaluate", rnn_run, "--data", corpus, env={threads.ENV: "many"})
    assert_error(result, "GENTOOL_THREADS='many'", "1 or more")
