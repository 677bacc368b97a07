"""The training engine (``gentool.neural.engine.fit``) on toy tasks written here, without
any family: resume reaches the uninterrupted weights, signals, non-finite losses, gradient
accumulation, two processes, config drift, damaged checkpoints, the schedule, the hooks.

Most tests call ``fit`` directly. The ones that need the command line (exit codes, a real
signal, torchrun, a changed recipe) register the toy as a kind of model, ``toy``; run as a
script, this file is ``gentool`` with that kind registered.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import pytest
from conftest import assert_error, interrupt_at, interruptible, invoke

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from torch import nn  # noqa: E402

from gentool import runs  # noqa: E402
from gentool.errors import TrainingError  # noqa: E402
from gentool.model import Model, Runtime, TrainingContext  # noqa: E402
from gentool.neural.checkpoints import CARRY_FILE, TRAINER_FILE, read_checkpoint  # noqa: E402
from gentool.neural.config import TrainConfig, lr_at  # noqa: E402
from gentool.neural.engine import FitResult, TrainingInterrupted, TrainingTask, fit  # noqa: E402
from gentool.plugins import PluginInfo, get_registry  # noqa: E402

# -- the toy tasks --------------------------------------------------------------------------


def _regression_data(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(count, 4, generator=generator)
    y = torch.sin(x @ torch.tensor([1.0, -2.0, 0.5, 1.5])) + 0.1 * x[:, 0]
    return x, y


TRAIN_X, TRAIN_Y = _regression_data(512, seed=0)
VAL_X, VAL_Y = _regression_data(48, seed=1)


class Regression(TrainingTask):
    """A small MLP (~60 parameters) fitting a fixed function of 4 inputs; sample ``i`` of the
    run is row ``i % 512`` of fixed data, so micro-batch ``index`` of any size is a slice of
    one stream of samples (two half batches are one whole batch)."""

    unit = "samples"

    def __init__(self, config: TrainConfig, hidden: int = 8, dropout: float = 0.0, seed: int = 0):
        torch.manual_seed(seed)
        self.model = nn.Sequential(
            nn.Linear(4, hidden), nn.Tanh(), nn.Dropout(dropout), nn.Linear(hidden, 1)
        )
        self.micro = config.batch_size // config.grad_accum  # rows of a global micro-batch
        self.items_per_batch = self.micro
        # The subprocess tests slow the steps from the third on, to signal one mid-step.
        self.pause = float(os.environ.get("TOY_PAUSE", "0"))

    def train_batch(self, index: int, rows: slice) -> tuple[torch.Tensor, torch.Tensor]:
        if self.pause and index >= 2:
            time.sleep(self.pause)
        ids = (index * self.micro + torch.arange(self.micro)[rows]) % len(TRAIN_X)
        return TRAIN_X[ids], TRAIN_Y[ids]

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        return F.mse_loss(model(x).squeeze(-1), y)

    def evaluate(self, model: nn.Module, rows: slice, max_batches: int) -> tuple[float, int]:
        total, count = 0.0, 0
        for n, start in enumerate(range(0, len(VAL_X), self.micro)):
            if max_batches and n >= max_batches:
                break
            ids = torch.arange(start, min(start + self.micro, len(VAL_X)))[rows]
            out = model(VAL_X[ids]).squeeze(-1)
            total += float(F.mse_loss(out, VAL_Y[ids], reduction="sum"))
            count += len(ids)
        return total, count


class Recurrent(nn.Module):
    def __init__(self, hidden: int, dropout: float) -> None:
        super().__init__()
        self.rnn = nn.GRU(1, hidden, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, 1)

    def forward(
        self, x: torch.Tensor, state: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out, state = self.rnn(x.unsqueeze(-1), state)
        return self.head(self.drop(out)).squeeze(-1), state


class Stream(TrainingTask):
    """A GRU predicting the next value of one wave per row, window after window, with its
    hidden state carried from each window to the next (truncated BPTT, as the rnn does)."""

    carries_state = True
    length, seq_len = 200, 6

    def __init__(self, config: TrainConfig, hidden: int = 8, dropout: float = 0.0, seed: int = 0):
        torch.manual_seed(seed)
        self.model = Recurrent(hidden, dropout)
        rows = config.batch_size // config.grad_accum
        t = torch.arange(self.length, dtype=torch.float32)
        phase = torch.arange(rows, dtype=torch.float32)[:, None]
        self.train = torch.sin(0.37 * t + 0.9 * phase) * torch.cos(0.05 * t)
        self.val = torch.sin(0.41 * t + 0.7 * phase)
        self.windows = (self.length - 1) // self.seq_len
        self.items_per_batch = rows * self.seq_len
        self.state: torch.Tensor | None = None  # (layers, rows, hidden), as the GRU has it

    def train_batch(self, index: int, rows: slice) -> tuple[torch.Tensor, torch.Tensor, bool]:
        window = index % self.windows
        chunk = self.train[rows, window * self.seq_len : (window + 1) * self.seq_len + 1]
        return chunk[:, :-1], chunk[:, 1:], window == 0

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor, bool]) -> Any:
        x, y, first = batch
        prediction, state = model(x, None if first else self.state)
        self.state = state.detach()
        return F.mse_loss(prediction, y)

    def carried_state(self) -> dict[str, torch.Tensor] | None:
        if self.state is None:
            return None
        return {"hidden": self.state.transpose(0, 1)}  # batch first, as the contract says

    def restore_carried_state(self, state: dict[str, torch.Tensor]) -> None:
        self.state = state["hidden"].transpose(0, 1).contiguous()

    def evaluate(self, model: nn.Module, rows: slice, max_batches: int) -> tuple[float, int]:
        data, state, total, count = self.val[rows], None, 0.0, 0
        for n, start in enumerate(range(0, self.length - 1, self.seq_len)):
            if max_batches and n >= max_batches:
                break
            chunk = data[:, start : start + self.seq_len + 1]
            prediction, state = model(chunk[:, :-1], state)
            total += float(F.mse_loss(prediction, chunk[:, 1:], reduction="sum"))
            count += chunk[:, 1:].numel()
        return total, count


TASKS: dict[str, type[Regression] | type[Stream]] = {"regression": Regression, "stream": Stream}


# -- the toy as a kind of model, for the command line -------------------------------------


@dataclass
class ToyConfig:
    task: Literal["regression", "stream"] = "regression"
    hidden: int = 8
    dropout: float = 0.0


class Toy(Model):
    family = "toy"
    description = "a toy regression for the engine's tests"
    config_class = ToyConfig
    train_config_class = TrainConfig

    def __init__(self, model: nn.Module, metrics: dict[str, Any]) -> None:
        self.model, self.metrics = model, metrics

    @classmethod
    def train(cls, config: ToyConfig, context: TrainingContext[Any]) -> Toy:
        task = TASKS[config.task](context.train, config.hidden, config.dropout, context.seed)
        result = fit(
            task, context.train, context.runtime, context.run_dir, context.log, context.recipe
        )
        return cls(result.model, result.summary())

    def save(self, directory: Path) -> dict[str, Any]:
        save_file(self.model.state_dict(), str(directory / "model.safetensors"))
        return self.metrics

    @classmethod
    def load(cls, directory: Path, config: ToyConfig) -> Toy:
        task = TASKS[config.task](TrainConfig(), config.hidden, config.dropout)
        task.model.load_state_dict(load_file(str(directory / "model.safetensors")))
        return cls(task.model, {})


def register_toy() -> None:
    owner = PluginInfo(name="toy", module=__name__, distribution="(tests)", version="")
    assert get_registry().add(Toy, owner) is None


@pytest.fixture
def toy() -> Iterator[None]:
    register_toy()
    try:
        yield
    finally:
        get_registry().kinds.pop("toy")
        get_registry().owners.pop("toy")


def toy_command(*args: object) -> list[str]:
    """``gentool ARGS`` with the toy registered, as a subprocess command line."""
    return [sys.executable, __file__, *map(str, args)]


# -- helpers --------------------------------------------------------------------------------

SETTINGS = {
    "max_steps": 8,
    "batch_size": 8,
    "lr": 0.05,
    "min_lr": 0.005,
    "warmup_steps": 2,
    "log_every": 2,
    "eval_every": 4,
    "eval_batches": 2,
    "checkpoint_every": 0,
}


def settings(**changes: Any) -> TrainConfig:
    return TrainConfig(**{**SETTINGS, **changes})


def set_options(**changes: Any) -> list[str]:
    """``--set train.KEY=VALUE`` for the test settings with ``changes``."""
    return [f"--set=train.{k}={v}" for k, v in {**SETTINGS, **changes}.items()]


def train(
    task: TrainingTask,
    config: TrainConfig,
    run_dir: Path,
    log: list[str] | None = None,
    **runtime: Any,
) -> FitResult:
    run_dir.mkdir(parents=True, exist_ok=True)
    messages = [] if log is None else log
    runtime = {"device": "cpu", "progress": False, **runtime}
    return fit(task, config, Runtime(**runtime), run_dir, messages.append)


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], atol=atol, rtol=0), (name, a[name] - b[name])


def records(run_dir: Path) -> list[dict[str, Any]]:
    lines = (run_dir / runs.METRICS_FILE).read_text().splitlines()
    return [json.loads(line) for line in lines]


def steps_of(run_dir: Path, key: str) -> list[int]:
    return [r["step"] for r in records(run_dir) if key in r]


def checkpoint_steps(run_dir: Path) -> list[int]:
    return [step for step, _ in runs.checkpoints(run_dir)]


# -- resume -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, dropout", [("regression", 0.3), ("stream", 0.2)], ids=["dropout", "carried-state"]
)
def test_resume_reaches_the_uninterrupted_weights_bit_for_bit(
    name: str, dropout: float, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task_class = TASKS[name]
    config = settings(grad_accum=2)  # two micro-batches a step
    whole = train(task_class(config, dropout=dropout), config, tmp_path / "whole")

    log: list[str] = []
    with monkeypatch.context() as patch, pytest.raises(TrainingInterrupted):
        interrupt_at(patch, task_class, 2 * 3 + 1)  # during step 4
        train(task_class(config, dropout=dropout), config, tmp_path / "cut", log)
    assert "interrupted at step 4; checkpoint written to cut/checkpoints/step-4" in log
    assert "resume with: gentool train --resume --out cut" in log
    assert checkpoint_steps(tmp_path / "cut") == [4]
    if task_class.carries_state:
        carry = load_file(str(tmp_path / "cut" / "checkpoints" / "step-4" / CARRY_FILE))
        assert carry["hidden"].shape == (4, 1, 8)  # the rows of the global micro-batch

    # Other initial weights: what the resumed run trains from is the checkpoint's.
    resumed = train(
        task_class(config, dropout=dropout, seed=1), config, tmp_path / "cut", resume=True
    )
    assert_identical(weights(whole.model), weights(resumed.model))
    assert (resumed.train_loss, resumed.val_loss) == (whole.train_loss, whole.val_loss)
    assert steps_of(tmp_path / "cut", "loss") == [2, 4, 6, 8]  # nothing logged twice
    assert steps_of(tmp_path / "cut", "val_loss") == [4, 8]
    assert not (tmp_path / "cut" / "checkpoints").exists()  # checkpoint_every=0: only for now


def test_the_carried_state_is_what_makes_the_resume_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check above would pass if the state did not matter: without it, it fails."""
    config = settings()
    whole = train(Stream(config), config, tmp_path / "whole")
    with monkeypatch.context() as patch, pytest.raises(TrainingInterrupted):
        interrupt_at(patch, Stream, 3)
        train(Stream(config), config, tmp_path / "cut")
    monkeypatch.setattr(Stream, "restore_carried_state", lambda self, state: None)
    resumed = train(Stream(config), config, tmp_path / "cut", resume=True)
    assert not torch.equal(whole.model.head.weight, resumed.model.head.weight)


def test_resume_truncates_the_metrics_and_a_finished_run_trains_no_more(tmp_path: Path) -> None:
    config = settings(max_steps=6, checkpoint_every=4)
    first = train(Regression(config), config, tmp_path / "run")
    assert checkpoint_steps(tmp_path / "run") == [4, 6]  # every 4 steps, and the last
    run = tmp_path / "run"
    # As if the process had died after step 6 was logged but before its checkpoint.
    shutil.rmtree(run / "checkpoints" / "step-6")
    runs.append_line(run / runs.METRICS_FILE, {"steps": 6})  # a finished run's summary line
    log: list[str] = []
    again = train(Regression(config, seed=1), config, run, log, resume=True)
    assert any(line.startswith("resuming from ") and "(step 4 of 6)" in line for line in log)
    assert_identical(weights(first.model), weights(again.model))
    assert steps_of(run, "loss") == [2, 4, 6]
    assert steps_of(run, "val_loss") == [4, 6]
    assert not [r for r in records(run) if "step" not in r]  # the old summary went

    # Resumed at its last step: no training, the same result; the loss is the one logged.
    done = train(Regression(config, seed=1), config, run, resume=True)
    assert_identical(weights(first.model), weights(done.model))
    assert (done.steps, done.train_loss, done.val_loss) == (6, first.train_loss, first.val_loss)
    assert steps_of(run, "loss") == [2, 4, 6]

    with pytest.raises(TrainingError, match="already train.max_steps=4; raise it with --set"):
        train(Regression(config), replace(config, max_steps=4), run, resume=True)
    with pytest.raises(TrainingError, match="has no checkpoint to resume from"):
        train(Regression(config), config, tmp_path / "empty", resume=True)


# -- signals ----------------------------------------------------------------------------------


def wait_for_lines(process: subprocess.Popen[str], path: Path, count: int) -> None:
    deadline = time.monotonic() + 30
    while not (path.exists() and path.read_text().count("\n") >= count):
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "the training never logged"
        time.sleep(0.02)


def test_sigint_in_a_real_process_checkpoints_exits_130_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    options = set_options(max_steps=100_000, log_every=1, eval_every=0)
    command = toy_command("train", "toy", "--data", __file__, *options, "--out", out)
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    wait_for_lines(process, out / runs.METRICS_FILE, 2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "checkpoint written to" in stderr and "resume with: gentool train --resume" in stderr
    assert "Traceback" not in stderr
    step = checkpoint_steps(out)[-1]
    assert step >= 2 and not (out / runs.META_FILE).exists()

    more = [f"--set=train.max_steps={step + 2}", "--override"]
    done = subprocess.run(toy_command("train", "--resume", "--out", out, *more),
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads((out / runs.META_FILE).read_text())["metrics"]["steps"] == step + 2


def test_a_second_sigint_stops_at_once(tmp_path: Path) -> None:
    out = tmp_path / "run"
    options = set_options(max_steps=100, log_every=1, eval_every=0)
    command = toy_command("train", "toy", "--data", __file__, *options, "--out", out)
    process = subprocess.Popen(
        command,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
        env={**os.environ, "TOY_PAUSE": "2"},  # the third step takes 2 s
    )
    wait_for_lines(process, out / runs.METRICS_FILE, 2)
    process.send_signal(signal.SIGINT)  # during step 3: stop after it ...
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)  # ... no: now
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "Interrupted." in stderr and "checkpoint written" not in stderr
    assert "Traceback" not in stderr
    assert checkpoint_steps(out) == []  # not even the one the first signal asked for


# -- a non-finite loss ------------------------------------------------------------------------


class Diverging(Regression):
    """The loss turns NaN from step ``bad`` on (and so do the weights)."""

    bad = 5

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        value = super().loss(model, batch)
        self.calls = getattr(self, "calls", 0) + 1
        return value * float("nan") if self.calls >= self.bad else value


def test_a_non_finite_loss_stops_and_names_the_last_good_checkpoint(tmp_path: Path) -> None:
    config = settings(log_every=4, checkpoint_every=3)
    with pytest.raises(TrainingError) as caught:
        train(Diverging(config), config, tmp_path / "run")
    message = str(caught.value)
    assert "the training loss became nan by step 6" in message
    assert "the last good checkpoint is run/checkpoints/step-3" in message
    assert "--resume --override" in message
    # Step 6 is a checkpoint step, but its weights are NaN: it was not written.
    assert checkpoint_steps(tmp_path / "run") == [3]

    with pytest.raises(TrainingError, match="by step 8; no checkpoint was written"):
        train(Diverging(config), replace(config, checkpoint_every=0), tmp_path / "none")
    assert checkpoint_steps(tmp_path / "none") == []


# -- gradient accumulation and two processes -------------------------------------------------


def test_two_half_batches_make_one_whole_batch(tmp_path: Path) -> None:
    config = settings(grad_clip=0.5)  # the clipping applies to the accumulated gradient
    whole = train(Regression(config), config, tmp_path / "one")
    halves = replace(config, grad_accum=2)
    accumulated = train(Regression(halves), halves, tmp_path / "two")
    assert_close(weights(whole.model), weights(accumulated.model), atol=1e-6)
    assert accumulated.train_loss == pytest.approx(whole.train_loss, rel=1e-5)
    assert accumulated.val_loss == pytest.approx(whole.val_loss, rel=1e-5)


def test_two_processes_reach_the_weights_of_one_with_the_same_global_batch(
    tmp_path: Path,
) -> None:
    options = ["--data", __file__, "--set=model.task=stream", *set_options(max_steps=4)]
    one = subprocess.run(toy_command("train", "toy", *options, "--out", tmp_path / "one"),
                         capture_output=True, text=True, timeout=30)  # fmt: skip
    assert one.returncode == 0, one.stderr
    torchrun = Path(sys.executable).with_name("torchrun")
    two = subprocess.run(
        [torchrun, "--nproc-per-node", "2", *toy_command("train", "toy", *options,
         "--set=train.checkpoint_every=4", "--out", tmp_path / "two")[1:]],
        capture_output=True, text=True, timeout=60, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert two.returncode == 0, two.stderr
    assert_close(
        load_file(str(tmp_path / "one" / "model.safetensors")),
        load_file(str(tmp_path / "two" / "model.safetensors")),
        atol=1e-6,
    )
    checkpoint = tmp_path / "two" / "checkpoints" / "step-4"
    assert read_checkpoint(checkpoint, tmp_path / "two")["processes"] == 2
    assert load_file(str(checkpoint / CARRY_FILE))["hidden"].shape[0] == 8  # both halves
    assert (checkpoint / "random_states_1.pkl").is_file()


def test_a_signal_to_one_process_stops_every_process_at_the_same_step(tmp_path: Path) -> None:
    out, pids = tmp_path / "run", tmp_path / "pids"
    pids.mkdir()
    options = set_options(max_steps=100_000, log_every=1, eval_every=0)
    torchrun = Path(sys.executable).with_name("torchrun")
    process = subprocess.Popen(
        [torchrun, "--nproc-per-node", "2",
         *toy_command("train", "toy", "--data", __file__, *options, "--out", out)[1:]],
        stderr=subprocess.PIPE, text=True, preexec_fn=interruptible,
        env={**os.environ, "OMP_NUM_THREADS": "1", "TOY_PIDS": str(pids)},
    )  # fmt: skip
    wait_for_lines(process, out / runs.METRICS_FILE, 2)
    os.kill(int((pids / "rank-1").read_text()), signal.SIGINT)  # not rank 0, which saves
    _, stderr = process.communicate(timeout=30)
    # torchrun reports each rank that ended with 130; once one has, it may terminate the
    # other before that one's own exit (the checkpoint is already written): at least one.
    assert "exitcode  : 130" in stderr, stderr
    step = checkpoint_steps(out)[-1]
    assert f"interrupted at step {step}; checkpoint written to" in stderr, stderr
    assert read_checkpoint(out / "checkpoints" / f"step-{step}", out)["processes"] == 2
    assert (out / "checkpoints" / f"step-{step}" / "random_states_1.pkl").is_file()


# -- config drift and damaged checkpoints ------------------------------------------------------


def test_resume_refuses_a_changed_recipe_and_a_checkpoint_of_other_model_settings(
    toy: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    with monkeypatch.context() as patch:  # (not monkeypatch.undo(): it undoes the chdir)
        interrupt_at(patch, Regression, 2)
        result = invoke("train", "toy", "--data", __file__, *set_options(), "--out", run, ok=False)
    assert result.exit_code == 130

    changed = ["--set", "train.lr=0.01", "--set", "model.hidden=16"]
    result = invoke("train", "--resume", "--out", run, *changed, ok=False)
    assert_error(result, "train.lr (0.05 -> 0.01)", "model.hidden (8 -> 16)", "--override")
    result = invoke("train", "--resume", "--override", "--out", run, *changed, ok=False)
    assert_error(result, "checkpoint run/checkpoints/step-3 does not fit this model",
                 "size mismatch", "resume with the model settings it was trained with")  # fmt: skip
    invoke("train", "--resume", "--override", "--out", run, "--set", "train.lr=0.01")
    meta = json.loads((run / runs.META_FILE).read_text())
    assert meta["recipe"]["train"]["lr"] == pytest.approx(0.01)
    assert meta["metrics"]["steps"] == 8


def damage(run: Path, how: str) -> None:
    checkpoint = run / "checkpoints" / "step-4"
    if how == "carry-missing":
        (checkpoint / CARRY_FILE).unlink()
    elif how == "carry-never-written":  # (and not listed: as a checkpoint of another task)
        (checkpoint / CARRY_FILE).unlink()
        state = json.loads((checkpoint / TRAINER_FILE).read_text())
        del state["files"][CARRY_FILE]
        (checkpoint / TRAINER_FILE).write_text(json.dumps(state))
    elif how == "weights-truncated":
        weights_file = checkpoint / "model.safetensors"
        weights_file.write_bytes(weights_file.read_bytes()[:100])
    elif how == "trainer-json":
        (checkpoint / TRAINER_FILE).write_text('{"step": 4, ')


@pytest.mark.parametrize(
    "how, what",
    [
        ("carry-missing", "'carry.safetensors' is missing"),
        ("carry-never-written", "'carry.safetensors' is missing"),
        ("weights-truncated", "'model.safetensors' is truncated or corrupt (100 bytes"),
        ("trainer-json", "trainer.json is not valid JSON"),
    ],
)
def test_a_damaged_checkpoint_is_refused_naming_the_one_to_fall_back_to(
    how: str, what: str, tmp_path: Path
) -> None:
    config = settings(max_steps=4, checkpoint_every=2)
    train(Stream(config), config, tmp_path / "run")
    damage(tmp_path / "run", how)
    with pytest.raises(TrainingError) as caught:
        train(Stream(config), config, tmp_path / "run", resume=True)
    message = str(caught.value)
    assert message.startswith(f"checkpoint run/checkpoints/step-4 is damaged: {what}")
    assert message.endswith("; delete run/checkpoints/step-4 to resume from run/checkpoints/step-2")

    shutil.rmtree(tmp_path / "run" / "checkpoints" / "step-2")
    with pytest.raises(TrainingError, match="the only one: train the run again with --force"):
        train(Stream(config), config, tmp_path / "run", resume=True)


def test_a_task_that_carries_state_must_return_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Stream, "carried_state", lambda self: None)
    config = settings(max_steps=2, checkpoint_every=2)
    with pytest.raises(RuntimeError, match="Stream.carries_state is True but carried_state"):
        train(Stream(config), config, tmp_path / "run")


# -- checkpoints ------------------------------------------------------------------------------


def test_checkpoints_list_their_files_share_like_new_files_and_are_pruned(
    tmp_path: Path,
) -> None:
    config = settings(max_steps=4, checkpoint_every=1, keep_checkpoints=2)
    previous = os.umask(0o022)
    try:
        train(Stream(config), config, tmp_path / "run")
    finally:
        os.umask(previous)
    assert checkpoint_steps(tmp_path / "run") == [3, 4]
    checkpoint = tmp_path / "run" / "checkpoints" / "step-4"
    state = read_checkpoint(checkpoint, tmp_path / "run")
    assert state["step"] == 4 and state["processes"] == 1 and state["seconds"] > 0
    files = {p.name: p.stat().st_size for p in checkpoint.iterdir() if p.name != TRAINER_FILE}
    assert state["files"] == files
    assert {"model.safetensors", "optimizer.bin", CARRY_FILE} <= set(files)
    for path in checkpoint.iterdir():  # save_state writes 0600: a checkpoint is a run's file
        assert path.stat().st_mode & 0o777 == 0o644, path.name


def test_a_full_disk_while_checkpointing_keeps_the_checkpoints_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from accelerate import Accelerator

    original = Accelerator.save_state

    def save_state(self: Any, output_dir: str, **kwargs: Any) -> Any:
        if output_dir.endswith(".step-4.tmp"):
            Path(output_dir).mkdir()
            Path(output_dir, "model.safetensors").write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(self, output_dir, **kwargs)

    monkeypatch.setattr(Accelerator, "save_state", save_state)
    config = settings(max_steps=6, checkpoint_every=2)
    with pytest.raises(OSError) as caught:
        train(Regression(config), config, tmp_path / "run")
    assert caught.value.errno == errno.ENOSPC
    assert caught.value.filename == str(tmp_path / "run" / "checkpoints" / "step-4")
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["step-2"]
    read_checkpoint(tmp_path / "run" / "checkpoints" / "step-2", tmp_path / "run")  # complete


# -- the schedule, the hooks, the result ------------------------------------------------------


def test_the_learning_rate_warms_up_then_decays_to_min_lr(tmp_path: Path) -> None:
    config = settings(max_steps=10, warmup_steps=4, lr=0.04, min_lr=0.004, log_every=1)
    assert [lr_at(s, config) for s in range(4)] == pytest.approx([0.01, 0.02, 0.03, 0.04])
    assert lr_at(7, config) == pytest.approx(0.004 + 0.5 * 0.036)  # halfway down the cosine
    assert lr_at(10, config) == pytest.approx(0.004)
    assert lr_at(50, config) == pytest.approx(0.004)  # (a run trained longer stays there)
    train(Regression(config), config, tmp_path / "run")
    logged = [r["lr"] for r in records(tmp_path / "run") if "lr" in r]
    assert logged == pytest.approx([lr_at(s, config) for s in range(10)])


class Hooked(Regression):
    """Records what the engine calls when; two parameter groups with their own lr_scale."""

    def __init__(self, config: TrainConfig) -> None:
        super().__init__(config)
        self.calls: list[tuple[str, int, float]] = []
        self.before = weights(self.model)
        self.after_first_step: dict[str, torch.Tensor] = {}

    def param_groups(self, model: nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
        first, last = model[0], model[3]
        return [
            {"params": list(first.parameters()), "lr_scale": 0.5, "weight_decay": 0.0},
            {"params": list(last.parameters()), "lr_scale": 0.0, "weight_decay": 0.0},
        ]

    def on_backward(self, model: nn.Module, step: int) -> None:
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        self.calls.append(("backward", step, float(torch.linalg.vector_norm(torch.stack(
            [torch.linalg.vector_norm(g) for g in grads])))))  # fmt: skip

    def on_step_end(self, model: nn.Module, step: int) -> None:
        self.calls.append(("step_end", step, 0.0))
        if step == 1:
            self.after_first_step = weights(model)

    def log_extras(self) -> dict[str, float]:
        return {"hook_calls": float(len(self.calls))}


def test_the_optional_hooks_are_called_at_their_times(tmp_path: Path) -> None:
    config = settings(max_steps=4, grad_accum=2, grad_clip=1e-3, warmup_steps=1)
    task = Hooked(config)
    train(task, config, tmp_path / "run")
    # Once per optimizer step (not per micro-batch), steps counted from 1; on_backward
    # sees the gradients before they are clipped to 1e-3.
    assert [(what, step) for what, step, _ in task.calls] == [
        (what, step) for step in range(1, 5) for what in ("backward", "step_end")
    ]
    assert all(norm > 1e-2 for what, _, norm in task.calls if what == "backward")
    assert [r["hook_calls"] for r in records(tmp_path / "run") if "loss" in r] == [4.0, 8.0]
    # lr_scale: the first layer's step-1 update is 0.5 x lr (Adam's first step moves each
    # weight by about lr); the last layer's lr is 0: it does not move.
    moved = (task.after_first_step["0.weight"] - task.before["0.weight"]).abs()
    assert moved == pytest.approx(torch.full_like(moved, 0.5 * config.lr), rel=0.05)
    assert torch.equal(task.after_first_step["3.weight"], task.before["3.weight"])


def test_the_result_is_the_trained_model_and_the_summary_every_kind_reports(
    tmp_path: Path,
) -> None:
    config = settings(max_steps=4)
    task = Regression(config)
    result = train(task, config, tmp_path / "run")
    assert type(result.model) is nn.Sequential  # unwrapped, the task's own module
    summary = result.summary()
    assert summary == {
        "steps": 4,
        "train_loss": result.train_loss,
        "val_loss": result.val_loss,
        "samples_per_s": result.items_per_second,
        "train_seconds": result.seconds,
        "parameters": 4 * 8 + 8 + 8 + 1,
        "mixed_precision": "no",
    }
    with torch.no_grad():
        val_loss = float(F.mse_loss(result.model.eval()(VAL_X).squeeze(-1), VAL_Y))
    assert summary["val_loss"] == pytest.approx(val_loss, rel=1e-5)


# -- progress and trackers --------------------------------------------------------------------


def test_progress_is_a_status_line_on_a_terminal_and_plain_lines_off_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = settings(max_steps=6)
    train(Regression(config), config, tmp_path / "tty", progress=True)
    err = capsys.readouterr().err
    assert "\rstep 6/6  loss " in err and " samples/s  ETA 0:00" in err

    log: list[str] = []
    train(Regression(config), config, tmp_path / "plain", log, progress=False, plain_every=0)
    assert capsys.readouterr().err == ""
    assert [line.split("  ")[0] for line in log if "  loss " in line] == [
        "step 2/6", "step 4/6", "step 6/6"
    ]  # fmt: skip
    assert any(line.startswith("step 4/6: train loss 0.") and ", val loss 0." in line
               for line in log)  # fmt: skip


def test_metrics_go_to_an_accelerate_tracker_when_asked(tmp_path: Path) -> None:
    pytest.importorskip("tensorboardX")  # accelerate's tensorboard tracker, in its light form
    config = settings(max_steps=2)
    train(Regression(config), config, tmp_path / "run", log_with=("tensorboard",))
    events = list((tmp_path / "run" / "logs").rglob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    with pytest.raises(TrainingError, match="--log-with aim: its package is not installed"):
        train(Regression(config), config, tmp_path / "aim", log_with=("aim",))


if __name__ == "__main__":  # gentool, with the toy registered (the subprocess tests)
    from gentool.cli import main

    register_toy()
    if "TOY_PIDS" in os.environ:  # (so that a test can signal one rank of a torchrun)
        Path(os.environ["TOY_PIDS"], f"rank-{os.environ.get('RANK', '0')}").write_text(
            str(os.getpid())
        )
    sys.argv[0] = "gentool"
    main()
