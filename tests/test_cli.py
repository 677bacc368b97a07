"""The generic commands: help texts, listings, exit codes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import interruptible, invoke, invoke_json, run_gentool

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
    models = {m["name"]: m for m in invoke_json("models")}
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
    from gentool_ngram import NGramFamily

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(NGramFamily, "train", classmethod(interrupted))
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


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_training_exits_130_and_leaves_nothing(tmp_path: Path, signum: int) -> None:
    fifo = tmp_path / "data.fifo"
    os.mkfifo(fifo)
    process = subprocess.Popen(
        [sys.executable, "-m", "gentool", "train", "ngram", "--data", str(fifo)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )
    with open(fifo, "w") as writer:  # returns once gentool has opened the data to read it
        writer.write("the cat sat\n")
        writer.flush()  # gentool now waits for the end of the file, which never comes
        wait_until_blocked_reading(process.pid)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Interrupted." in stderr and "Traceback" not in stderr
    assert [p.name for p in tmp_path.iterdir()] == ["data.fifo"]
