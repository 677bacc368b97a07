"""Shared fixtures: drive gentool as a user does, in-process (CliRunner) or as a subprocess."""

from __future__ import annotations

import os
import signal
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# The CLI helpers live once, in gentool's conformance kit, for plugin authors' tests too;
# gentool's own tests import them from here.
from gentool.testing import assert_error, invoke, invoke_json, run_gentool, strict_json

# The tests train tiny models: a second thread only adds synchronisation, and on shared CI
# cores two torch threads waiting for each other make small ops ~20x slower. Set before any
# test module imports torch; subprocesses inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

__all__ = ["assert_error", "invoke", "invoke_json", "run_gentool", "strict_json"]

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def _session_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Module fixtures that train too keep the user's gentool cache (~/.cache/gentool) clean."""
    before = os.environ.get("GENTOOL_CACHE")
    os.environ["GENTOOL_CACHE"] = str(tmp_path_factory.mktemp("session-cache"))
    yield
    if before is None:
        del os.environ["GENTOOL_CACHE"]
    else:
        os.environ["GENTOOL_CACHE"] = before


@pytest.fixture(autouse=True)
def _isolated(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every test runs in its own directory with every installed plugin loaded, and its own
    gentool cache (token files, tokenizers), outside that directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GENTOOL_LOAD_PLUGINS", raising=False)
    monkeypatch.setenv("GENTOOL_CACHE", str(tmp_path_factory.mktemp("gentool-cache")))


def interruptible() -> None:
    """``preexec_fn`` for a subprocess a test will send SIGINT: a shell runs background jobs
    (CI under ``nohup ... &``, say) with SIGINT ignored, and children inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(
        textwrap.dedent("""\
            the cat sat on the mat .
            the dog sat on the log .
            a cat and a dog sat together .
            the cat saw the dog .
            the dog saw a cat on the mat .
        """),
        encoding="utf-8",
    )
    return path


def fake_distribution(site: Path, name: str, module_source: str, entry_name: str) -> None:
    """Make an installed-looking distribution in ``site`` (a dist-info with an entry point),
    so that a subprocess with ``PYTHONPATH=site`` finds the plugin as pip would install it."""
    module = name.replace("-", "_")
    (site / f"{module}.py").write_text(textwrap.dedent(module_source), encoding="utf-8")
    info = site / f"{module}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[gentool]\n{entry_name} = {module}\n")


def interrupt_at(monkeypatch: pytest.MonkeyPatch, task_class: type, index: int) -> None:
    """Send this process a real SIGINT while ``task_class`` reads micro-batch ``index``."""
    original = task_class.train_batch

    def train_batch(self: object, i: int, rows: slice) -> object:
        if i == index:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, i, rows)

    monkeypatch.setattr(task_class, "train_batch", train_batch)


def assert_same_weights(a: Path, b: Path, atol: float = 0.0) -> dict[str, Any]:
    """The two runs' model.safetensors hold the same tensors, to ``atol``; return ``a``'s."""
    import torch
    from safetensors.torch import load_file

    first = load_file(str(a / "model.safetensors"))
    second = load_file(str(b / "model.safetensors"))
    assert first.keys() == second.keys()
    for name in first:
        assert torch.allclose(first[name].float(), second[name].float(), atol=atol, rtol=0), name
    return first
