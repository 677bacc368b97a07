"""What the training engine gives holds for music too (issue 16), beside resume (tested in
test_music_cli.py and test_gan_music.py): two processes, and bf16 mixed precision.

Tiny MIDI files written at test time, as the other music tests do. The bf16 test passes on
any CPU: with native bf16 (AVX512-BF16 or AMX) it trains natively, without it bf16 is
emulated and one warning says so; ``ONEDNN_MAX_CPU_ISA=AVX2 pytest tests/test_music_engine.py``
checks the second case on a CPU that has the first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import assert_same_weights, invoke
from test_music_cli import RNN, TRANSFORMER, notes, sets

symusic = pytest.importorskip("symusic")
pytest.importorskip("torch")

from test_gan_music import TINY as TINY_GAN  # noqa: E402

from gentool.neural.checkpoints import read_checkpoint  # noqa: E402
from gentool.neural.devices import NATIVE_BF16, native_bf16_cpu  # noqa: E402
from gentool.testing import write_sample_music  # noqa: E402

# No dropout: each process draws its own masks, so with dropout two processes cannot
# reach the weights of one (the engine's contract is about the batches, not the masks).
STEPS = ["train.max_steps=4", "train.batch_size=4", "train.seq_len=16", "train.eval_every=0",
         "train.checkpoint_every=0"]  # fmt: skip
FAMILIES = {
    "transformer": [*TRANSFORMER, *STEPS, "model.dropout=0.0"],
    "rnn": [*RNN, *STEPS, "model.dropout=0.0"],
    "gan": [*TINY_GAN, "train.max_steps=6", "train.sample_every=6"],
}


@pytest.fixture(scope="module")
def music(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample_music(tmp_path_factory.mktemp("music") / "music", 8, bars=8, seed=0)


def torchrun(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """``torchrun --nproc-per-node 2 -m gentool ARGS``: two CPU processes (gloo), on a free
    port (``--standalone``), so that test runs side by side on one machine do not meet."""
    command = Path(sys.executable).with_name("torchrun")
    return subprocess.run(
        [command, "--standalone", "--nproc-per-node", "2", "-m", "gentool", *map(str, args)],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip


def metrics(run: Path) -> dict[str, Any]:
    return json.loads((run / "gentool.json").read_text())["metrics"]


def generates_notes(run: Path, out: Path) -> None:
    invoke("generate", run, "-o", out, "--seed", "1", "--bars", "2")
    assert notes(out)  # reads back with symusic, with notes


# -- two processes -----------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["transformer", "rnn"])
def test_two_processes_reach_the_weights_of_one_for_the_music_lm(
    family: str, music: Path, tmp_path: Path
) -> None:
    common = ["train", family, "--data", music, *sets([*FAMILIES[family], "train.eval_every=4"])]
    invoke(*common, "--out", tmp_path / "one")
    two = torchrun(*common, "--out", tmp_path / "two")
    assert two.returncode == 0, two.stderr
    assert_same_weights(tmp_path / "one", tmp_path / "two", atol=1e-5)
    one_val, two_val = (metrics(tmp_path / run)["val_loss"] for run in ("one", "two"))
    assert two_val == pytest.approx(one_val, rel=1e-5)  # the held-out pieces, split in two
    for name in ("music_tokenizer.json", "config.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    generates_notes(tmp_path / "two", tmp_path / "two.mid")


def test_two_processes_train_the_gan_music_kind(music: Path, tmp_path: Path) -> None:
    """The gan's batches are a pure function of the step too (real phrases and noise drawn
    for the global batch, cut to each process's rows), but its generator normalises with
    BatchNorm over each process's rows (torch's SyncBatchNorm, which would share the batch
    statistics, runs on GPUs only): two processes train another generator than one, so
    this checks that they train together and write a run that generates, not that the
    weights are equal."""
    out = tmp_path / "two"
    settings = [
        *FAMILIES["gan"],
        "train.checkpoint_every=6",
        "train.batch_size=4",
        "train.eval_every=3",
    ]  # (4 phrases a batch: the 5 held out make a batch)
    two = torchrun("train", "gan", "--data", music, *sets(settings), "--out", out)
    assert two.returncode == 0, two.stderr
    assert metrics(out)["steps"] == 6 and metrics(out)["val_loss_d"] is not None
    checkpoint = out / "checkpoints" / "step-6"
    assert read_checkpoint(checkpoint, out)["processes"] == 2
    assert (checkpoint / "random_states_1.pkl").is_file()
    assert (out / "samples" / "step-6.png").is_file()  # (by the main process)
    generates_notes(out, tmp_path / "two.mid")


# -- bf16 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_bf16_trains_each_music_kind_and_writes_midi_on_any_cpu(
    family: str, music: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    result = invoke("train", family, "--data", music, *sets(FAMILIES[family]),
                    "--mixed-precision", "bf16", "--out", run)  # fmt: skip
    assert metrics(run)["mixed_precision"] == "bf16"
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    if native_bf16_cpu() is None:  # emulated (an LSTM in float32): said once
        assert len(warnings) == 1 and NATIVE_BF16 in warnings[0], result.stderr
    else:
        assert warnings == [], result.stderr
    generates_notes(run, tmp_path / "piece.mid")
