"""Training is visible: progress off a terminal (CI, nohup, a pipe) comes as plain lines
at a steady interval, and long phases (tokenizer, encoding, final evaluation) are
announced with their time."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gentool.progress import phase


def test_a_short_phase_says_nothing() -> None:
    lines: list[str] = []
    with phase(lines.append, "encoding the text", after=10):
        pass
    assert lines == []


def test_a_long_phase_is_announced_then_timed() -> None:
    lines: list[str] = []
    with phase(lines.append, "learning the tokenizer", terminal=False, after=0.05):
        time.sleep(0.3)
    assert lines[0] == "learning the tokenizer..."
    assert lines[1].startswith("learning the tokenizer: done in ") and len(lines) == 2


def test_a_counted_phase_off_a_terminal_writes_plain_lines() -> None:
    lines: list[str] = []
    with phase(
        lines.append, "BLEU", total=3, unit="sentences", terminal=False, after=0, every=0
    ) as advance:
        for _ in range(3):
            advance(1)
    assert "BLEU: 3/3 sentences" in lines and lines[-1].startswith("BLEU: done in ")
    assert not any("\r" in line for line in lines)


def test_a_counted_phase_on_a_terminal_rewrites_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    lines: list[str] = []
    with phase(lines.append, "BLEU", total=2, unit="sentences", terminal=True, after=0) as advance:
        advance(1)
        advance(1)
    err = capsys.readouterr().err
    assert "\rBLEU: 1/2 sentences" in err and "\rBLEU: 2/2 sentences" in err
    assert lines[-1].startswith("BLEU: done in ")


def test_training_off_a_terminal_logs_plain_progress_lines(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from gentool import api
    from gentool.training import Runtime

    overrides = ["model.hidden_size=16", "model.embedding_size=8", "model.num_layers=1",
                 "train.batch_size=2", "train.seq_len=8", "train.max_steps=4",
                 "train.log_every=2", "train.eval_every=0", "train.checkpoint_every=0"]  # fmt: skip
    lines: list[str] = []
    runtime = Runtime(progress=False, plain_every=0)  # a line at every log step
    api.train("rnn", overrides=overrides, out=tmp_path / "r", runtime=runtime, log=lines.append)
    steps = [line for line in lines if line.startswith("step ")]
    assert [s.split()[1] for s in steps] == ["2/4", "4/4"], lines
    assert " tokens/s  ETA " in steps[0] and not any("\r" in line for line in lines)
    lines.clear()  # the default: at most one line every 30 s, none in a run this short
    api.train("rnn", overrides=overrides, out=tmp_path / "q", runtime=Runtime(progress=False),
              log=lines.append)  # fmt: skip
    assert not [line for line in lines if line.startswith("step ")], lines
