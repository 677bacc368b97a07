"""The training loop every neural family shares, on Hugging Face accelerate.

A family describes *what* to train as a ``TrainingTask`` (its model, how to get batch
``i``, how to compute a loss, how to evaluate); ``fit`` does the rest the same way for
every family: device and mixed precision, gradient accumulation and clipping, AdamW with
warmup and cosine decay, evaluation, checkpoints and resume, signals, progress, metrics.

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
import functools
import json
import math
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from gentool import files, recipes, runs
from gentool.errors import GentoolError, RecipeError
from gentool.interrupts import threads_started_here_ignore_interrupts
from gentool.progress import StatusLine, phase, stderr_is_terminal
from gentool.runs import CHECKPOINTS

if TYPE_CHECKING:
    import torch

CARRY_FILE = "carry.safetensors"
TRAINER_FILE = "trainer.json"


class TrainingError(GentoolError):
    """Training cannot go on (a non-finite loss, a checkpoint that does not fit)."""


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM during training: a checkpoint was written; the run can be resumed."""


@dataclass
class TrainConfig:
    """The recipe's [train] table for every neural family (families may add fields)."""

    max_steps: int = 1000
    batch_size: int = 32  # sequences (or samples) per optimizer step, over all processes
    grad_accum: int = 1  # micro-batches per optimizer step (each batch_size / grad_accum)
    lr: float = 3e-3
    min_lr: float = 3e-4  # the end of the cosine decay
    warmup_steps: int = 100
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0  # max gradient norm; 0 disables clipping
    # auto: bf16 where this machine runs it fast (see resolve_precision), else float32
    mixed_precision: Literal["no", "auto", "bf16", "fp16"] = "no"
    log_every: int = 10
    eval_every: int = 250  # steps between evaluations on the validation split; 0: only at the end
    eval_batches: int = 20  # batches per evaluation during training; 0: the whole split
    checkpoint_every: int = 500  # steps between checkpoints; 0: only when interrupted
    keep_checkpoints: int = 2
    val_fraction: float = 0.1  # held out from the end of the data when no --val is given


@dataclass
class Runtime:
    """How this process trains, as opposed to what (the recipe): not part of the recipe."""

    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    log_with: tuple[str, ...] = ()
    resume: bool = False
    progress: bool | None = None  # None: when stderr is a terminal
    # Off a terminal (CI, nohup, a pipe): a plain progress line at most this often (seconds)
    plain_every: float = 30.0


class TrainingTask(Protocol):
    """What a family hands to ``fit``.

    ``train_batch(index, rows)`` returns micro-batch ``index`` (0, 1, 2, ... over the whole
    run), restricted to ``rows`` of the global batch; it must depend only on its arguments.
    ``loss(model, batch, carry)`` returns the mean loss over the batch's items and the state
    to carry into the next micro-batch (``None`` for none; a dict of tensors, batch first).
    ``evaluate(model, rows, max_batches)`` returns (sum of losses, number of items).
    ``items_per_batch`` counts tokens (or samples) per global micro-batch, for throughput.

    Optional, for tasks with several networks (a GAN's generator and discriminator);
    ``fit`` uses each only when the task defines it:

    - ``param_groups(model) -> list[dict]``: the optimizer's parameter groups; a group's
      ``lr_scale`` multiplies the scheduled learning rate (two-timescale updates), and it
      may set its own ``betas`` and ``weight_decay``.
    - ``find_unused_parameters = True``: some steps leave parameters without gradients
      (alternating updates); DDP must be told.
    - ``on_backward(model, step)``: after the backward pass of an optimizer step, before
      clipping: measure gradient norms.
    - ``on_step_end(model, step)``: after the optimizer step (``step`` counts from 1):
      moving averages of weights, sample images.
    - ``log_extras() -> dict[str, float]``: numbers added to the log line of each logged
      step (the task averages them over the steps since the last call).
    """

    model: torch.nn.Module
    unit: str
    items_per_batch: int

    def train_batch(self, index: int, rows: slice) -> Any: ...

    def loss(
        self, model: torch.nn.Module, batch: Any, carry: dict[str, torch.Tensor] | None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]: ...

    def evaluate(
        self, model: torch.nn.Module, rows: slice, max_batches: int
    ) -> tuple[float, int]: ...


@dataclass
class FitResult:
    steps: int
    train_loss: float | None
    val_loss: float | None
    seconds: float
    items_per_second: float
    mixed_precision: str = "no"  # what this session trained in ("auto" resolved): no, bf16, fp16


def require_neural() -> None:
    """Raise a GentoolError saying what to install unless torch, transformers, accelerate and
    tokenizers import; quiet transformers' own progress bars (gentool reports progress)."""
    try:
        with threads_started_here_ignore_interrupts():  # see gentool.interrupts
            import accelerate  # noqa: F401
            import tokenizers  # noqa: F401
            import torch  # noqa: F401
            import transformers
    except ImportError as err:
        raise GentoolError(
            f"the neural families need {err.name}: pip install 'gentool[neural]'"
        ) from None
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


def lr_at(step: int, config: TrainConfig) -> float:
    """Linear warmup to ``lr``, then cosine decay to ``min_lr`` at ``max_steps``."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    span = max(1, config.max_steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    return config.min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (config.lr - config.min_lr)


def world_size() -> int:
    """How many processes a launcher (torchrun, accelerate launch) started; 1 without one."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = runs.checkpoints(run_dir)
    return found[-1][1] if found else None


def check_config(config: TrainConfig, world: int) -> None:
    """Reject settings that cannot train, naming the key and a valid value."""
    positive = ("max_steps", "batch_size", "grad_accum", "log_every", "keep_checkpoints")
    for key in positive:
        if getattr(config, key) < 1:
            raise RecipeError(f"train.{key} must be at least 1, got {getattr(config, key)}")
    if config.lr <= 0 or config.min_lr < 0:
        raise RecipeError("train.lr must be positive and train.min_lr not negative")
    if not 0 <= config.val_fraction < 1:
        raise RecipeError(f"train.val_fraction must be in [0, 1), got {config.val_fraction}")
    per_step = world * config.grad_accum
    if config.batch_size % per_step:
        raise RecipeError(
            f"train.batch_size={config.batch_size} must divide evenly over {world} process(es) x "
            f"{config.grad_accum} accumulation step(s); use a multiple of {per_step}"
        )


def uses_cpu(device: str) -> bool:
    """Whether ``--device`` means the CPU here; an absent accelerator is an error."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise TrainingError("--device cuda: no CUDA device is available; use --device auto")
    if device == "mps" and not torch.backends.mps.is_available():
        raise TrainingError("--device mps: no Apple GPU (MPS) is available; use --device auto")
    return device == "cpu" or (
        device == "auto" and not torch.cuda.is_available() and not torch.backends.mps.is_available()
    )


NATIVE_BF16 = "AVX512-BF16 or AMX"  # the x86 features that make bf16 arithmetic fast


@functools.cache
def native_bf16_cpu() -> str | None:
    """The CPU feature that gives this process fast bf16 arithmetic ("AMX" or "AVX512-BF16"),
    or None.

    Without one, torch emulates bf16 and every bf16 kernel measured is several times slower
    than float32, and oneDNN has no bf16 LSTM at all (docs/benchmarks.md, "Precision"). Two
    of torch's own checks: what the CPU has (CPUID), and whether oneDNN, which runs the bf16
    matmuls, convolutions and LSTM on x86, may use bf16 kernels here (ONEDNN_MAX_CPU_ISA=AVX2
    forbids them: the tests emulate an AVX2-only CPU that way). Other CPUs (ARM) count as
    without: bf16 there is not measured.
    """
    import torch

    try:
        if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return None
        if torch.cpu._is_amx_tile_supported():
            return "AMX"
        if torch.cpu._is_avx512_bf16_supported():
            return "AVX512-BF16"
    except (AttributeError, RuntimeError):  # a torch built without oneDNN
        pass
    return None


def resolve_precision(setting: str, device: str) -> tuple[str, str]:
    """The autocast precision (``no``, ``bf16``, ``fp16``) that ``train.mixed_precision``
    means on ``--device``, and a note for the log ('' when there is nothing to say).

    ``auto`` is bf16 where it is fast, float32 elsewhere: a CUDA GPU with native bf16
    (Ampere or newer) or a CPU with AVX512-BF16 or AMX. An explicit ``bf16`` on a CPU
    without them trains (slowly): the note is a warning that says so.
    """
    import torch

    cpu = uses_cpu(device)
    if setting == "auto":
        if cpu:
            feature = native_bf16_cpu()
            if feature:
                return "bf16", f"mixed precision auto: bf16 autocast (this CPU has {feature})"
            return "no", f"mixed precision auto: float32 (this CPU has no {NATIVE_BF16})"
        if device in ("auto", "cuda") and torch.cuda.is_available():
            if torch.cuda.is_bf16_supported(including_emulation=False):
                return "bf16", "mixed precision auto: bf16 autocast (the GPU has native bf16)"
            return "no", "mixed precision auto: float32 (the GPU has no native bf16)"
        return "no", "mixed precision auto: float32 (bf16 on this device is not measured)"
    if setting == "bf16" and cpu and not native_bf16_cpu():
        return "bf16", (
            f"warning: this CPU has no {NATIVE_BF16}: bf16 is emulated, up to 50x slower than "
            "float32 (docs/benchmarks.md); --mixed-precision auto trains in float32 here"
        )
    return setting, ""


def init_processes(device: str) -> None:
    """Join the process group of a multi-process launch (torchrun, accelerate launch) early,
    on the right backend (gloo on CPU), so that processes can wait for each other."""
    if world_size() > 1:
        from accelerate import PartialState

        PartialState(cpu=uses_cpu(device))


def check_setup(config: TrainConfig, runtime: Runtime) -> None:
    """Everything ``fit`` will refuse, checked up front: a family calls this before its
    data work, so that a bad setting fails in a second, not after tokenizing."""
    check_config(config, world_size())
    if config.mixed_precision == "fp16" and uses_cpu(runtime.device):
        raise RecipeError(
            "train.mixed_precision=fp16 needs a GPU; on a CPU use --mixed-precision auto (bf16 "
            f"where the CPU has {NATIVE_BF16}, else float32)"
        )
    _check_trackers(runtime.log_with)


def make_accelerator(
    config: TrainConfig, runtime: Runtime, run_dir: Path, find_unused_parameters: bool = False
) -> Any:
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, ProjectConfiguration

    check_setup(config, runtime)
    cpu = uses_cpu(runtime.device)
    precision, _ = resolve_precision(config.mixed_precision, runtime.device)
    if world_size() == 1:
        # One process may train several models (the Python API, tests), each with its own
        # mixed precision: accelerate keeps those settings in a process-wide singleton.
        from accelerate.state import AcceleratorState

        AcceleratorState._reset_state()
    try:
        accelerator = Accelerator(
            cpu=cpu,
            mixed_precision=precision,
            gradient_accumulation_steps=config.grad_accum,
            log_with=list(runtime.log_with) or None,
            project_config=ProjectConfiguration(
                project_dir=str(run_dir), logging_dir=str(run_dir / "logs")
            ),
            kwargs_handlers=[
                DistributedDataParallelKwargs(find_unused_parameters=find_unused_parameters)
            ],
        )
    except (ValueError, ImportError) as err:
        raise TrainingError(f"cannot set up training: {err}") from None
    return accelerator


def _check_trackers(names: tuple[str, ...]) -> None:
    """accelerate drops a tracker whose package is missing, with only a warning: we refuse."""
    from accelerate.tracking import get_available_trackers
    from accelerate.utils import LoggerType

    known = {str(t) for t in LoggerType}
    available = {str(t) for t in get_available_trackers()}
    for name in names:
        if name not in known:
            raise TrainingError(
                f"--log-with {name}: unknown tracker; valid: {', '.join(sorted(known))}"
            )
        if name != "all" and name not in available:
            raise TrainingError(
                f"--log-with {name}: its package is not installed (pip install {name})"
            )


class _Signals:
    """Turn SIGINT/SIGTERM into a request to stop after the current step (a second one stops
    at once)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[signal.Signals, Any] = {}

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        import threading

        if threading.current_thread() is not threading.main_thread():
            yield
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        try:
            yield
        finally:
            for signum, handler in self._previous.items():
                signal.signal(signum, handler)


def fit(
    task: TrainingTask,
    config: TrainConfig,
    runtime: Runtime,
    run_dir: Path,
    log: Callable[[str], None],
    tracker_config: dict[str, Any] | None = None,
) -> FitResult:
    """Train ``task.model`` in place; checkpoints and metrics go to ``run_dir``."""
    import torch

    accelerator = make_accelerator(
        config, runtime, run_dir, getattr(task, "find_unused_parameters", False)
    )
    world = accelerator.num_processes
    main = accelerator.is_main_process
    per_process = config.batch_size // config.grad_accum // world
    rank = accelerator.process_index
    rows = slice(rank * per_process, (rank + 1) * per_process)
    say = log if main else (lambda message: None)
    note = resolve_precision(config.mixed_precision, runtime.device)[1]
    if note:
        say(note)

    model = task.model
    if hasattr(task, "param_groups"):
        groups = task.param_groups(model)
    else:
        decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
        no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
        groups = [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
    on_backward = getattr(task, "on_backward", None)
    on_step_end = getattr(task, "on_step_end", None)
    log_extras = getattr(task, "log_extras", None)
    optimizer = torch.optim.AdamW(
        groups,
        lr=config.lr,
        betas=(config.beta1, config.beta2),
        foreach=True,
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    if runtime.log_with:
        hparams = {  # trackers take numbers, strings and booleans
            k: v if isinstance(v, (int, float, str, bool)) else str(v)
            for k, v in recipes.flatten(tracker_config or {}).items()
        }
        accelerator.init_trackers("gentool", config=hparams)

    start = 0
    carry: dict[str, torch.Tensor] | None = None
    elapsed_before = 0.0
    logged_loss: float | None = None  # the last training loss logged before a resume
    if runtime.resume:
        checkpoint = latest_checkpoint(run_dir)
        if checkpoint is None:
            raise TrainingError(
                f"'{run_dir}' has no checkpoint to resume from; train it again without --resume"
            )
        state = read_checkpoint(checkpoint, run_dir)  # complete, or refused before any load
        _load_state(accelerator, checkpoint, run_dir)
        start, elapsed_before = state["step"], state["seconds"]
        carry = _load_carry(checkpoint, rows, accelerator.device, run_dir)
        if main:
            logged_loss = _truncate_metrics(run_dir / runs.METRICS_FILE, start)
        say(f"resuming from {checkpoint} (step {start} of {config.max_steps})")
    if start > config.max_steps:  # (at max_steps: trained, not saved; finish it below)
        raise TrainingError(
            f"the checkpoint is at step {start}, already train.max_steps={config.max_steps}; "
            "raise it with --set train.max_steps=N --override to train longer"
        )

    metrics_path = run_dir / runs.METRICS_FILE
    terminal = main and (stderr_is_terminal() if runtime.progress is None else runtime.progress)
    progress = StatusLine(say, terminal, runtime.plain_every)
    signals = _Signals()
    loss_sum = torch.zeros((), device=accelerator.device)
    window_steps, window_start = 0, time.perf_counter()
    last_train_loss = logged_loss  # (a run resumed at its last step trains no more)
    last_val: float | None = None
    last_checkpoint: int | None = None
    started = time.perf_counter()
    model.train()

    def window_loss() -> float:
        """The mean training loss since the last log line, over all processes; checked."""
        mean = float(accelerator.reduce(loss_sum, "mean")) / (window_steps * config.grad_accum)
        _check_finite(mean, step + 1, run_dir, last_checkpoint)
        return mean

    def checkpoint_now(step: int) -> Path:
        nonlocal last_checkpoint
        path = _save_checkpoint(
            accelerator, run_dir, step, carry, elapsed_before + time.perf_counter() - started
        )
        if main:
            _prune_checkpoints(run_dir, config.keep_checkpoints)
        last_checkpoint = step
        return path

    def evaluate(max_batches: int) -> float | None:
        model.eval()  # the prepared model: under FSDP or DeepSpeed only it holds the weights
        with torch.no_grad():
            total, count = task.evaluate(model, rows, max_batches)
        model.train()
        sums = accelerator.reduce(
            torch.tensor([total, float(count)], dtype=torch.float64, device=accelerator.device),
            "sum",
        )
        return float(sums[0] / sums[1]) if float(sums[1]) > 0 else None

    with signals.installed():
        for step in range(start, config.max_steps):
            lr = lr_at(step, config)
            for group in optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
            for micro in range(config.grad_accum):
                batch = task.train_batch(step * config.grad_accum + micro, rows)
                with accelerator.accumulate(model):
                    loss, carry = task.loss(model, batch, carry)
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and on_backward is not None:
                        on_backward(model, step + 1)
                    if accelerator.sync_gradients and config.grad_clip > 0:
                        accelerator.clip_grad_norm_(model.parameters(), config.grad_clip)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                loss_sum += loss.detach()
            done = step + 1
            if on_step_end is not None:
                on_step_end(model, done)
            window_steps += 1
            last_step = done == config.max_steps
            if done % config.log_every == 0 or last_step:
                now = time.perf_counter()
                last_train_loss = window_loss()
                seconds_per_step = (now - window_start) / window_steps
                rate = config.grad_accum * task.items_per_batch / seconds_per_step
                record = {"step": done, "loss": last_train_loss, "lr": lr}
                record[f"{task.unit}_per_s"] = rate
                if log_extras is not None:
                    record.update(log_extras())
                _log_metrics(accelerator, metrics_path, record, main)
                minutes, seconds = divmod(int(seconds_per_step * (config.max_steps - done)), 60)
                progress.show(
                    f"step {done}/{config.max_steps}  loss {last_train_loss:.4f}  "
                    f"{rate:,.0f} {task.unit}/s  ETA {minutes}:{seconds:02d}"
                )
                loss_sum.zero_()
                window_steps, window_start = 0, time.perf_counter()
            if config.eval_every and done % config.eval_every == 0 and not last_step:
                last_val = evaluate(config.eval_batches)
                _log_metrics(accelerator, metrics_path, {"step": done, "val_loss": last_val}, main)
                if not terminal:
                    say(
                        f"step {done}/{config.max_steps}: train loss {_fmt(last_train_loss)}, "
                        f"val loss {_fmt(last_val)}"
                    )
            stop = _agree(accelerator, signals.requested) and not last_step
            periodic = config.checkpoint_every > 0 and (
                done % config.checkpoint_every == 0 or last_step
            )
            if stop or periodic:
                if window_steps:
                    window_loss()  # never checkpoint weights that a non-finite loss has spoilt
                path = checkpoint_now(done)
            if stop:
                progress.clear()
                say(f"interrupted at step {done}; checkpoint written to {_display(path)}")
                say(f"resume with: gentool train --resume --out {_display(run_dir)}")
                raise TrainingInterrupted
    progress.clear()
    trained_for = time.perf_counter() - started  # this session's training, without evaluation
    with phase(say, "evaluating on the whole validation split", terminal=terminal):
        val_loss = evaluate(0)
    if val_loss is not None:
        record = {"step": config.max_steps, "val_loss": val_loss}
        _log_metrics(accelerator, metrics_path, record, main)
    if main and not config.checkpoint_every:
        shutil.rmtree(run_dir / CHECKPOINTS, ignore_errors=True)  # only an interruption's
    if runtime.log_with:
        accelerator.end_training()
    task.model = accelerator.unwrap_model(model, keep_fp32_wrapper=False)
    accelerator.wait_for_everyone()
    items = (config.max_steps - start) * config.grad_accum * task.items_per_batch
    return FitResult(
        steps=config.max_steps,
        train_loss=last_train_loss,
        val_loss=val_loss,
        seconds=elapsed_before + trained_for,
        items_per_second=items / max(1e-9, trained_for),
        mixed_precision=str(accelerator.mixed_precision),
    )


# -- helpers --------------------------------------------------------------------------------


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _display(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(Path.cwd()))
    return str(path)


def _agree(accelerator: Any, requested: bool) -> bool:
    """Every process stops at the same step if any one of them got a signal."""
    if accelerator.num_processes == 1:
        return requested
    import torch

    flag = torch.tensor([1.0 if requested else 0.0], device=accelerator.device)
    return bool(accelerator.reduce(flag, "sum").item() > 0)


def _check_finite(loss: float, step: int, run_dir: Path, last_checkpoint: int | None) -> None:
    if math.isfinite(loss):
        return
    where = (
        f"the last good checkpoint is {_display(run_dir)}/{CHECKPOINTS}/step-{last_checkpoint}; "
        "lower train.lr (or set train.grad_clip) and resume with --resume --override"
        if last_checkpoint is not None
        else "no checkpoint was written; lower train.lr (or set train.grad_clip) and train again"
    )
    raise TrainingError(f"the training loss became {loss} by step {step}; {where}")


def _log_metrics(accelerator: Any, path: Path, record: dict[str, Any], main: bool) -> None:
    if main:
        runs.append_line(path, record)
    if accelerator.trackers:
        step = record["step"]
        accelerator.log({k: v for k, v in record.items() if k != "step" and v is not None}, step)


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


@contextlib.contextmanager
def _quiet_shared_tensors() -> Iterator[None]:
    """accelerate warns on every checkpoint of a model with tied weights that it "removed
    shared tensor" lm_head.weight: expected (the tie is restored on load), and noise here."""
    import logging

    class Drop(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "Removed shared tensor" not in record.getMessage()

    logger = logging.getLogger("accelerate.utils.other")
    drop = Drop()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def _save_checkpoint(
    accelerator: Any, run_dir: Path, step: int, carry: dict[str, Any] | None, seconds: float
) -> Path:
    """Write ``checkpoints/step-N`` as a whole: into a temporary name, renamed when complete.

    If a write fails (a full disk), the partial checkpoint is removed and the failure is
    raised as the OSError it is, naming the checkpoint; the ones before it stay.
    """
    root = run_dir / CHECKPOINTS
    final = root / f"step-{step}"
    tmp = root / f".step-{step}.tmp"
    try:
        if accelerator.is_main_process:
            root.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
        accelerator.wait_for_everyone()
        with _quiet_shared_tensors():
            accelerator.save_state(str(tmp))
        gathered = None
        if carry is not None:
            gathered = {k: accelerator.gather(v.contiguous()) for k, v in carry.items()}
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            if gathered is not None:
                from safetensors.torch import save_file

                save_file({k: v.cpu() for k, v in gathered.items()}, str(tmp / CARRY_FILE))
            state = {"step": step, "seconds": seconds, "processes": accelerator.num_processes}
            state["files"] = checkpoint_files(tmp)  # what a resume checks is there
            (tmp / TRAINER_FILE).write_text(json.dumps(state) + "\n")
            files.share_like_new_files(tmp)  # save_state's safetensors files are 0600
            if final.exists():
                shutil.rmtree(final)
            os.rename(tmp, final)
    except Exception as err:
        # Judged before the partial files go: torch's writer says only "unexpected pos",
        # and the disk it filled tells why.
        failure = files.as_os_error(err, root)
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        if failure is None:
            raise
        raise OSError(failure.errno, failure.strerror, str(final)) from None
    accelerator.wait_for_everyone()
    return final


def _load_carry(checkpoint: Path, rows: slice, device: Any, run_dir: Path) -> dict[str, Any] | None:
    path = checkpoint / CARRY_FILE
    if not path.is_file():
        return None  # (a checkpoint that listed one was refused by read_checkpoint)
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        carry = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as err:
        raise _damaged_checkpoint(
            checkpoint, run_dir, f"{CARRY_FILE} does not load ({err})"
        ) from None
    sizes = {v.shape[0] if v.dim() else 0 for v in carry.values()}
    if len(sizes) != 1:
        raise _damaged_checkpoint(checkpoint, run_dir, f"{CARRY_FILE} holds no state of rows")
    total = sizes.pop()
    if rows.stop > total:
        raise TrainingError(
            f"checkpoint {checkpoint} holds state for {total} rows, not {rows.stop}: resume it "
            "with the same train.batch_size and number of processes"
        )
    return {k: v[rows].to(device) for k, v in carry.items()}


def checkpoint_files(directory: Path) -> dict[str, int]:
    """Every file of a checkpoint being written (path inside it -> bytes), for its
    trainer.json: a resume checks that they are all there, whole (``read_checkpoint``).
    Sizes, not checksums: cheap, and what a truncated or missing file changes."""
    return {
        path.relative_to(directory).as_posix(): path.stat().st_size
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name != TRAINER_FILE
    }


def read_checkpoint(checkpoint: Path, run_dir: Path) -> dict[str, Any]:
    """The trainer.json of ``checkpoint`` (``step``, ``seconds``), once the checkpoint is known
    to be complete: every file its trainer.json lists is there, with its size. Otherwise a
    TrainingError says which checkpoint is damaged and how to fall back to an earlier one.
    (A checkpoint written before trainer.json listed its files is taken as it is.)"""

    def damaged(what: str) -> TrainingError:
        return _damaged_checkpoint(checkpoint, run_dir, what)

    try:
        state = json.loads((checkpoint / TRAINER_FILE).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise damaged(f"{TRAINER_FILE} is not valid JSON ({err})") from None
    except OSError as err:
        raise damaged(f"{TRAINER_FILE} cannot be read ({err.strerror})") from None
    if not isinstance(state, dict):
        raise damaged(f"{TRAINER_FILE} does not hold a JSON object")
    step, seconds, files = state.get("step"), state.get("seconds"), state.get("files", {})
    if not (isinstance(step, int) and not isinstance(step, bool)) or checkpoint.name != (
        f"step-{step}"
    ):
        raise damaged(f"{TRAINER_FILE} 'step' is {step!r}, not the step in its name")
    if not isinstance(seconds, (int, float)) or not 0 <= seconds < math.inf:
        raise damaged(f"{TRAINER_FILE} 'seconds' is {seconds!r}, not a time")
    if not isinstance(files, dict) or not all(
        isinstance(size, int) and not isinstance(size, bool) for size in files.values()
    ):
        raise damaged(f"{TRAINER_FILE} 'files' is not {{path: bytes}}")
    for name, size in files.items():
        path = checkpoint / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise damaged(f"{TRAINER_FILE} lists {name!r}, a path outside the checkpoint")
        if not path.is_file():
            raise damaged(f"'{name}' is missing")
        if path.stat().st_size != size:
            raise damaged(f"'{name}' is truncated or corrupt ({path.stat().st_size} bytes, "
                          f"expected {size})")  # fmt: skip
    return state


def _damaged_checkpoint(checkpoint: Path, run_dir: Path, what: str) -> TrainingError:
    """The error for a checkpoint that cannot be resumed: what is wrong, and the fix."""
    earlier = [path for _, path in runs.checkpoints(run_dir) if path != checkpoint]
    fix = (
        f"delete {_display(checkpoint)} to resume from {_display(earlier[-1])}"
        if earlier
        else "it is the only one: train the run again with --force"
    )
    return TrainingError(f"checkpoint {_display(checkpoint)} is damaged: {what}; {fix}")


def _load_state(accelerator: Any, checkpoint: Path, run_dir: Path) -> None:
    """accelerate's ``load_state`` of a checkpoint, its failures as one TrainingError: a file
    that does not load is damaged; tensors that do not fit belong to other model settings."""
    import pickle

    from safetensors import SafetensorError

    try:
        accelerator.load_state(str(checkpoint))
    except (SafetensorError, OSError, EOFError, pickle.UnpicklingError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        if isinstance(err, pickle.UnpicklingError):
            # not torch's own words: they advise weights_only=False, which runs the pickle
            first = "a file of it is not a pickle of tensors that torch loads safely"
        raise _damaged_checkpoint(checkpoint, run_dir, f"it does not load ({first})") from None
    except (RuntimeError, ValueError, KeyError) as err:
        first = str(err).strip().splitlines()[-1].strip()
        raise TrainingError(
            f"checkpoint {_display(checkpoint)} does not fit this model ({first}); resume "
            "with the model settings it was trained with"
        ) from None


def _prune_checkpoints(run_dir: Path, keep: int) -> None:
    for _, path in runs.checkpoints(run_dir)[:-keep]:
        shutil.rmtree(path, ignore_errors=True)
