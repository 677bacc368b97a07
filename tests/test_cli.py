"""The generic commands: help texts, listings, exit codes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import fake_distribution, interruptible, invoke, invoke_json, run_gentool

from gentool.cli import cli

COMMANDS = sorted(cli.list_commands(None))  # type: ignore[arg-type]


def test_every_builtin_command_is_listed() -> None:
    builtin = {
        "plugins",
        "models",
        "recipes",
        "train",
        "generate",
        "evaluate",
        "info",
        "export",
        "import",
    }
    assert builtin <= set(COMMANDS)


@pytest.mark.parametrize("command", sorted(set(COMMANDS) - {"hello"}))
def test_help_has_an_example(command: str) -> None:
    text = invoke(command, "--help").stdout
    assert "Example" in text
    assert f"gentool {command}" in text


def test_top_level_help_and_version() -> None:
    assert "gentool train ngram" in invoke("--help").stdout
    assert invoke("--version").stdout.startswith("gentool, version ")


def test_models_lists_tasks() -> None:
    models = {m["kind"]: m for m in invoke_json("models")}
    assert models["translator"]["family"] == "transformer"
    assert models["translator"]["tasks"] == ["translate"]
    assert models["ngram"]["tasks"] == ["generate-text", "score-text"]
    assert models["ngram"]["export_formats"] == ["arpa"]
    assert "ngram" in invoke("models").stdout


def test_python_dash_m_works_like_the_script() -> None:
    result = run_gentool("recipes", "--json")
    assert result.returncode == 0
    assert "ngram-shakespeare-word3" in result.stdout


def test_interrupt_exits_130_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gentool_ngram import NGramModel

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(NGramModel, "train", classmethod(interrupted))
    result = invoke("train", "ngram", ok=False)
    assert result.exit_code == 130
    assert "Interrupted" in result.stderr
    assert list(tmp_path.iterdir()) == []


def wait_until_blocked_reading(pid: int) -> None:
    """Until the process sleeps in a pipe read. A signal that lands between two of Python's
    checks and the read() system call is noted but acts only on the next bytecode, which a
    blocked read never reaches: a race of the test's making, not of gentool's."""
    wchan = Path(f"/proc/{pid}/wchan")
    deadline = time.monotonic() + 30
    while wchan.exists() and "pipe_read" not in wchan.read_text() and time.monotonic() < deadline:
        time.sleep(0.01)
    if not wchan.exists():
        time.sleep(0.5)


# A family whose training reads a FIFO that the test writes to and never closes: it is
# blocked in a read, deterministically, while the run directory is being built. (gentool
# refuses a FIFO as --data, so the wait lives in the family.)
BLOCKING_FAMILY = """
import os
from dataclasses import dataclass

import gentool
from gentool.model import Model
from gentool.tasks import TextGeneration


@dataclass
class Config:
    pass


class Blocking(Model, TextGeneration):
    family = "blocking"
    config_class = Config

    @classmethod
    def train(cls, config, context):
        with open(os.environ["BLOCKING_FIFO"]) as f:
            f.read()

    @classmethod
    def load(cls, directory, config):
        raise NotImplementedError  # (never trained)

    def save(self, directory):
        return {}

    def generate(self, request):
        yield ""


@gentool.hookimpl
def register_models(register):
    register(Blocking)
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_training_exits_130_and_leaves_nothing(tmp_path: Path, signum: int) -> None:
    site = tmp_path / "site"
    site.mkdir()
    fake_distribution(site, "gentool-blocking", BLOCKING_FAMILY, "blocking")
    (tmp_path / "t.txt").write_text("the cat sat\n")
    fifo = tmp_path / "data.fifo"
    os.mkfifo(fifo)
    env = {
        **os.environ,
        "BLOCKING_FIFO": str(fifo),
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gentool", "train", "blocking", "--data", "t.txt"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=interruptible,
    )
    with open(fifo, "w") as writer:  # returns once the family has opened the FIFO to read it
        writer.write("the cat sat\n")
        writer.flush()  # it now waits for the end of the file, which never comes
        assert (tmp_path / "runs" / "blocking").is_dir()  # the run is being built
        wait_until_blocked_reading(process.pid)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Interrupted." in stderr and "Traceback" not in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.fifo", "site", "t.txt"]
