"""The training loop every neural kind shares, on Hugging Face accelerate.

A kind describes *what* to train as a ``TrainingTask`` (its model, how to get batch ``i``,
how to compute a loss, how to evaluate); ``fit`` does the rest the same way for every
kind: device and mixed precision, gradient accumulation and clipping, AdamW with warmup
and cosine decay, evaluation, checkpoints and resume, signals, progress, metrics.

The same command trains data-parallel under ``torchrun`` or ``accelerate launch``: each
process takes its rows of every global batch, accelerate averages the gradients, and only
the main process writes the run directory. Multi-GPU and multi-node setups (DDP, FSDP,
DeepSpeed) are accelerate's configuration, not code of ours.

Batches are a pure function of their index, so the data position of a checkpoint is just
its step; the RNG states (accelerate's ``save_state``) and the task's carried state (an
RNN's hidden state) are saved beside it. A resumed run therefore reaches the same weights
as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from gentool import recipes, runs
from gentool.errors import TrainingError
from gentool.model import Runtime
from gentool.neural import checkpoints
from gentool.neural.checkpoints import display
from gentool.neural.config import TrainConfig, lr_at
from gentool.neural.devices import make_accelerator, resolve_precision
from gentool.progress import StatusLine, phase, stderr_is_terminal
from gentool.runs import CHECKPOINTS

LN2 = math.log(2)


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM during training: a checkpoint was written; the run can be resumed."""


class TrainingTask(ABC):
    """What a kind hands to ``fit``: a model, its batches, its loss and its evaluation.

    Set ``model`` (the network to train) and ``items_per_batch`` (tokens or samples per
    global micro-batch, for throughput) in ``__init__``. The three abstract methods are
    required; every other method is an optional hook whose default does nothing.
    """

    #: What ``items_per_batch`` counts, for the log ("tokens", "images", "pairs").
    unit: ClassVar[str] = "tokens"
    #: Some steps leave parameters without gradients (alternating updates): DDP must know.
    find_unused_parameters: ClassVar[bool] = False
    #: The task carries state from one batch to the next (``carried_state``); a checkpoint
    #: of it must hold that state, or the resumed run would differ.
    carries_state: ClassVar[bool] = False

    model: nn.Module
    items_per_batch: int

    @abstractmethod
    def train_batch(self, index: int, rows: slice) -> Any:
        """Micro-batch ``index`` (0, 1, 2, ... over the whole run), restricted to ``rows`` of
        the global batch. It must depend only on its arguments: resume and multi-process
        training rely on it."""

    @abstractmethod
    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """The mean loss over the batch's items (``model`` is the prepared model)."""

    @abstractmethod
    def evaluate(self, model: nn.Module, rows: slice, max_batches: int) -> tuple[float, int]:
        """(sum of losses, number of items) over ``rows`` of the validation data, the first
        ``max_batches`` batches (0: all); (0.0, 0) when there is none."""

    # -- optional hooks ----------------------------------------------------------------------
    def param_groups(self, model: nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
        """The optimizer's parameter groups: by default weight decay on matrices only. A
        group's ``lr_scale`` multiplies the scheduled learning rate (two-timescale updates);
        it may set its own ``betas`` and ``weight_decay``."""
        trained = [p for p in model.parameters() if p.requires_grad]
        return [
            {"params": [p for p in trained if p.dim() >= 2], "weight_decay": config.weight_decay},
            {"params": [p for p in trained if p.dim() < 2], "weight_decay": 0.0},
        ]

    def learning_rate(self, step: int, config: TrainConfig) -> float:
        """The learning rate of step ``step`` (from 0): by default warmup, then cosine decay
        (``gentool.neural.config.lr_at``). A pure function of the step, so resume agrees."""
        return lr_at(step, config)

    def on_backward(self, model: nn.Module, step: int) -> None:  # noqa: B027 (optional hook)
        """After the backward pass of an optimizer step, before clipping (gradient norms)."""

    def on_step_end(self, model: nn.Module, step: int) -> None:  # noqa: B027 (optional hook)
        """After the optimizer step; ``step`` counts from 1 (moving averages, sample grids)."""

    def log_extras(self) -> dict[str, float]:
        """Numbers added to each logged step's line (averaged since the last call)."""
        return {}

    def carried_state(self) -> dict[str, torch.Tensor] | None:
        """State carried from batch to batch (this process's rows, batch first), saved in
        checkpoints; None when there is none yet."""
        return None

    def restore_carried_state(self, state: dict[str, torch.Tensor]) -> None:  # noqa: B027
        """Take back what ``carried_state`` returned, from a checkpoint (this process's rows)."""


@dataclass
class FitResult:
    """What ``fit`` returns: the trained model (unwrapped, on the training device) and the
    figures every kind reports."""

    model: nn.Module
    steps: int
    train_loss: float | None
    val_loss: float | None
    seconds: float
    items_per_second: float
    unit: str = "tokens"
    mixed_precision: str = "no"  # what this session trained in ("auto" resolved)

    def summary(self) -> dict[str, Any]:
        """The metrics every neural kind puts in gentool.json."""
        metrics: dict[str, Any] = {
            "steps": self.steps,
            "train_loss": self.train_loss,
            "val_loss": self.val_loss,
            f"{self.unit}_per_s": self.items_per_second,
            "train_seconds": self.seconds,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "mixed_precision": self.mixed_precision,
        }
        return metrics


def fit(
    task: TrainingTask,
    config: TrainConfig,
    runtime: Runtime,
    run_dir: Path,
    log: Callable[[str], None],
    tracker_config: dict[str, Any] | None = None,
) -> FitResult:
    """Train ``task.model``; checkpoints and metrics go to ``run_dir``."""
    return _Fit(task, config, runtime, run_dir, log, tracker_config or {}).run()


@dataclass
class _Window:
    """The steps since the last log line: their summed loss and when they began."""

    loss: torch.Tensor
    steps: int = 0
    started: float = field(default_factory=time.perf_counter)


class _Fit:
    """One call of ``fit``: set up, resume, the loop, the final evaluation."""

    def __init__(
        self,
        task: TrainingTask,
        config: TrainConfig,
        runtime: Runtime,
        run_dir: Path,
        log: Callable[[str], None],
        tracker_config: dict[str, Any],
    ) -> None:
        self.task, self.config, self.runtime, self.run_dir = task, config, runtime, run_dir
        self.accelerator = make_accelerator(config, runtime, run_dir, task.find_unused_parameters)
        acc = self.accelerator
        self.main = acc.is_main_process
        per_process = config.batch_size // config.grad_accum // acc.num_processes
        self.rows = slice(acc.process_index * per_process, (acc.process_index + 1) * per_process)
        self.say = log if self.main else _quiet
        note = resolve_precision(config.mixed_precision, runtime.device)[1]
        if note:
            self.say(note)
        optimizer = torch.optim.AdamW(
            task.param_groups(task.model, config),
            lr=config.lr,
            betas=(config.beta1, config.beta2),
            foreach=True,
        )
        self.model, self.optimizer = acc.prepare(task.model, optimizer)
        if runtime.log_with:
            hparams = {  # trackers take numbers, strings and booleans
                k: v if isinstance(v, (int, float, str, bool)) else str(v)
                for k, v in recipes.flatten(tracker_config).items()
            }
            acc.init_trackers("gentool", config=hparams)
        self.metrics_path = run_dir / runs.METRICS_FILE
        self.terminal = self.main and (
            stderr_is_terminal() if runtime.progress is None else runtime.progress
        )
        self.start, self.elapsed_before = 0, 0.0
        self.train_loss: float | None = None
        self.last_checkpoint: int | None = None
        self.lr = config.lr  # the learning rate of the latest step, for its log line
        self.started = time.perf_counter()  # when this session's training began

    # -- the session ---------------------------------------------------------------------
    def run(self) -> FitResult:
        config, task = self.config, self.task
        if self.runtime.resume:
            self.resume()
        if self.start > config.max_steps:  # (at max_steps: trained, not saved; finish it)
            raise TrainingError(
                f"the checkpoint is at step {self.start}, already train.max_steps="
                f"{config.max_steps}; raise it with --set train.max_steps=N --override"
            )
        # (after the resume: the first plain progress line comes plain_every into training)
        self.progress = StatusLine(self.say, self.terminal, self.runtime.plain_every)
        self.started = time.perf_counter()
        window = _Window(torch.zeros((), device=self.accelerator.device))
        self.model.train()
        with _stop_requests() as stop_requested:
            for step in range(self.start, config.max_steps):
                self.train_step(step, window)
                done = step + 1
                task.on_step_end(self.model, done)
                window.steps += 1
                last = done == config.max_steps
                if done % config.log_every == 0 or last:
                    self.log_window(done, window)
                if config.eval_every and done % config.eval_every == 0 and not last:
                    self.log_evaluation(done)
                stop = self.agree(stop_requested()) and not last
                periodic = config.checkpoint_every > 0 and (
                    done % config.checkpoint_every == 0 or last
                )
                if stop or periodic:
                    if window.steps:  # never checkpoint weights a non-finite loss has spoilt
                        self.window_loss(window, done)
                    path = self.checkpoint(done)
                if stop:
                    self.progress.clear()
                    self.say(f"interrupted at step {done}; checkpoint written to {display(path)}")
                    self.say(f"resume with: gentool train --resume --out {display(self.run_dir)}")
                    raise TrainingInterrupted
        self.progress.clear()
        trained_for = time.perf_counter() - self.started  # this session, without evaluation
        return self.finish(trained_for)

    def resume(self) -> None:
        checkpoint = checkpoints.latest_checkpoint(self.run_dir)
        if checkpoint is None:
            raise TrainingError(
                f"'{self.run_dir}' has no checkpoint to resume from; train it again without "
                "--resume"
            )
        # complete, or refused before anything loads
        state = checkpoints.read_checkpoint(checkpoint, self.run_dir)
        if self.task.carries_state and not (checkpoint / checkpoints.CARRY_FILE).is_file():
            raise checkpoints.damaged_checkpoint(
                checkpoint, self.run_dir, f"'{checkpoints.CARRY_FILE}' is missing"
            )
        checkpoints.load_state(self.accelerator, checkpoint, self.run_dir)
        self.start, self.elapsed_before = state["step"], state["seconds"]
        carried = checkpoints.load_carry(
            checkpoint, self.rows, self.accelerator.device, self.run_dir
        )
        if carried is not None:
            self.task.restore_carried_state(carried)
        if self.main:  # (a run resumed at its last step trains no more: keep its loss)
            self.train_loss = _truncate_metrics(self.metrics_path, self.start)
        self.say(f"resuming from {checkpoint} (step {self.start} of {self.config.max_steps})")

    def train_step(self, step: int, window: _Window) -> None:
        config, acc, task = self.config, self.accelerator, self.task
        lr = task.learning_rate(step, config)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        for micro in range(config.grad_accum):
            batch = task.train_batch(step * config.grad_accum + micro, self.rows)
            with acc.accumulate(self.model):
                loss = task.loss(self.model, batch)
                acc.backward(loss)
                if acc.sync_gradients:
                    task.on_backward(self.model, step + 1)
                    if config.grad_clip > 0:
                        acc.clip_grad_norm_(self.model.parameters(), config.grad_clip)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
            window.loss += loss.detach()
        self.lr = lr

    # -- logging, evaluation, checkpoints --------------------------------------------------
    def window_loss(self, window: _Window, step: int) -> float:
        """The mean training loss of the window, over all processes; checked finite."""
        total = float(self.accelerator.reduce(window.loss, "mean"))
        mean = total / (window.steps * self.config.grad_accum)
        if not math.isfinite(mean):
            raise _non_finite(mean, step, self.run_dir, self.last_checkpoint)
        return mean

    def log_window(self, done: int, window: _Window) -> None:
        config, task = self.config, self.task
        now = time.perf_counter()
        self.train_loss = self.window_loss(window, done)
        seconds_per_step = (now - window.started) / window.steps
        rate = config.grad_accum * task.items_per_batch / seconds_per_step
        # seconds: wall time since training began (sessions before a resume included), so
        # that `gentool plot` can draw the loss against time as well as against steps.
        seconds = self.elapsed_before + now - self.started
        record = {"step": done, "loss": self.train_loss, "lr": self.lr, "seconds": seconds}
        record[f"{task.unit}_per_s"] = rate
        record.update(task.log_extras())
        self.log_metrics(record)
        minutes, seconds = divmod(int(seconds_per_step * (config.max_steps - done)), 60)
        self.progress.show(
            f"step {done}/{config.max_steps}  loss {self.train_loss:.4f}  "
            f"{rate:,.0f} {task.unit}/s  ETA {minutes}:{seconds:02d}"
        )
        window.loss.zero_()
        window.steps, window.started = 0, time.perf_counter()

    def log_evaluation(self, done: int) -> None:
        val = self.evaluate(self.config.eval_batches)
        seconds = self.elapsed_before + time.perf_counter() - self.started
        self.log_metrics({"step": done, "val_loss": val, "seconds": seconds})
        if not self.terminal:
            self.say(
                f"step {done}/{self.config.max_steps}: train loss {_fmt(self.train_loss)}, "
                f"val loss {_fmt(val)}"
            )

    def log_metrics(self, record: dict[str, Any]) -> None:
        if self.main:
            runs.append_line(self.metrics_path, record)
        if self.accelerator.trackers:
            values = {k: v for k, v in record.items() if k != "step" and v is not None}
            self.accelerator.log(values, record["step"])

    def evaluate(self, max_batches: int) -> float | None:
        """The mean validation loss over every process's rows (None without validation)."""
        self.model.eval()  # the prepared model: under FSDP or DeepSpeed only it holds weights
        with torch.no_grad():
            total, count = self.task.evaluate(self.model, self.rows, max_batches)
        self.model.train()
        sums = self.accelerator.reduce(
            torch.tensor(
                [total, float(count)], dtype=torch.float64, device=self.accelerator.device
            ),
            "sum",
        )
        return float(sums[0] / sums[1]) if float(sums[1]) > 0 else None

    def checkpoint(self, step: int) -> Path:
        carried = self.task.carried_state()
        if self.task.carries_state and carried is None:  # (a resume would refuse it)
            raise RuntimeError(
                f"{type(self.task).__name__}.carries_state is True but carried_state() "
                f"returned None at step {step}: return the state of the last batch"
            )
        seconds = self.elapsed_before + time.perf_counter() - self.started
        path = checkpoints.save_checkpoint(self.accelerator, self.run_dir, step, carried, seconds)
        if self.main:
            checkpoints.prune_checkpoints(self.run_dir, self.config.keep_checkpoints)
        self.last_checkpoint = step
        return path

    def agree(self, requested: bool) -> bool:
        """Every process stops at the same step if any one of them got a signal."""
        if self.accelerator.num_processes == 1:
            return requested
        flag = torch.tensor([1.0 if requested else 0.0], device=self.accelerator.device)
        return bool(self.accelerator.reduce(flag, "sum").item() > 0)

    def finish(self, trained_for: float) -> FitResult:
        config, acc = self.config, self.accelerator
        with phase(self.say, "evaluating on the whole validation split", terminal=self.terminal):
            val_loss = self.evaluate(0)
        if val_loss is not None:
            self.log_metrics({"step": config.max_steps, "val_loss": val_loss})
        if self.main and not config.checkpoint_every:
            shutil.rmtree(self.run_dir / CHECKPOINTS, ignore_errors=True)  # an interruption's
        if self.runtime.log_with:
            acc.end_training()
        model = acc.unwrap_model(self.model, keep_fp32_wrapper=False)
        acc.wait_for_everyone()
        items = (config.max_steps - self.start) * config.grad_accum * self.task.items_per_batch
        return FitResult(
            model=model,
            steps=config.max_steps,
            train_loss=self.train_loss,
            val_loss=val_loss,
            seconds=self.elapsed_before + trained_for,
            items_per_second=items / max(1e-9, trained_for),
            unit=self.task.unit,
            mixed_precision=str(acc.mixed_precision),
        )


# -- helpers --------------------------------------------------------------------------------


def _quiet(message: str) -> None:
    pass


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


@contextlib.contextmanager
def _stop_requests() -> Iterator[Callable[[], bool]]:
    """Turn SIGINT/SIGTERM into a request to stop after the current step (a second one stops
    at once); yield a function that says whether one came."""
    requested = False

    def handle(signum: int, frame: object) -> None:
        nonlocal requested
        if requested:
            raise KeyboardInterrupt
        requested = True

    if threading.current_thread() is not threading.main_thread():
        yield lambda: requested
        return
    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: requested
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _non_finite(loss: float, step: int, run_dir: Path, last: int | None) -> TrainingError:
    where = (
        f"the last good checkpoint is {display(run_dir)}/{CHECKPOINTS}/step-{last}; lower "
        "train.lr (or set train.grad_clip) and resume with --resume --override"
        if last is not None
        else "no checkpoint was written; lower train.lr (or set train.grad_clip) and train again"
    )
    return TrainingError(f"the training loss became {loss} by step {step}; {where}")


def _truncate_metrics(path: Path, step: int) -> float | None:
    """Drop what was logged after the checkpoint being resumed: it will be logged again.
    Return the last training loss that stays."""
    if not path.is_file():
        return None
    kept = [
        (line, record)
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
        for record in [json.loads(line)]
        if record.get("step", step + 1) <= step
    ]  # (a finished run's summary line, which has no step, goes too: a new one will come)
    runs.write_text(path, "".join(line + "\n" for line, _ in kept))
    losses = [r["loss"] for _, r in kept if isinstance(r.get("loss"), (int, float))]
    return float(losses[-1]) if losses else None
