"""Where and how training runs: the device, the processes of a launcher, mixed precision,
and the accelerate ``Accelerator`` set up from them."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from gentool.errors import RecipeError, TrainingError
from gentool.model import Runtime
from gentool.neural.config import TrainConfig, check_config


def world_size() -> int:
    """How many processes a launcher (torchrun, accelerate launch) started; 1 without one."""
    return int(os.environ.get("WORLD_SIZE", "1"))


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
