"""What this machine will compute with (``gentool info --system``): the threads each library
will use under the current ``--threads`` / ``GENTOOL_THREADS``, the versions of torch and
numpy, the CPU and the features its kernels pick from, and the accelerators.

It imports numpy, and torch when it is installed (a second or two): only this command
pays for that.
"""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from gentool import threads

# The CPU features that decide which kernels run (oneDNN, OpenBLAS, torch's vectorized ops).
CPU_FLAGS = (
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "neon",
    "asimd",
    "sve",
)


def describe() -> dict[str, Any]:
    """The machine as gentool sees it; the keys are documented in docs/cli.md."""
    from gentool.neural.tokencache import cache_root

    return {
        "gentool": _version("gentool"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu(),
        "threads": thread_counts(),
        "numpy": _numpy(),
        "torch": _torch(),
        "cache": str(cache_root()),
    }


def cpu() -> dict[str, Any]:
    """The CPU's model, its cores (those this process may use) and the relevant flags."""
    model = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "Model") and model in ("", platform.machine()):
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = set(value.split())
    except OSError:  # not Linux: the model platform knows, no flags
        pass
    return {
        "model": model,
        "cores": os.cpu_count(),
        "usable_cores": _usable_cores(),
        "flags": [flag for flag in CPU_FLAGS if flag in flags],
    }


def _usable_cores() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # (macOS, Windows)
        return os.cpu_count()


def thread_counts() -> dict[str, Any]:
    """What each pool will use: what was asked for (``--threads``, ``GENTOOL_THREADS``;
    None: each library's default), and the defaults that then apply."""
    asked = threads.requested()
    cores = _usable_cores()
    return {
        "requested": asked,
        "source": "--threads"
        if threads.set_by_option()
        else (threads.ENV if asked is not None else "default"),
        "tokenizers": asked or _env_int("RAYON_NUM_THREADS") or cores,
    }


def _env_int(name: str) -> int | None:
    text = os.environ.get(name, "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def _numpy() -> dict[str, Any]:
    import numpy
    from threadpoolctl import threadpool_info

    blas = [
        {
            "library": pool.get("internal_api"),
            "version": pool.get("version"),
            "threads": pool.get("num_threads"),
            "architecture": pool.get("architecture"),
        }
        for pool in threadpool_info()
        if pool.get("user_api") == "blas"
    ]
    return {"version": numpy.__version__, "blas": blas}


def _torch() -> dict[str, Any] | None:
    if "torch" not in sys.modules:
        try:
            import torch
        except ImportError:
            return None
    import torch

    threads.apply(torch)
    devices: list[dict[str, Any]] = [{"device": "cpu", "name": cpu()["model"]}]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            devices.append(
                {
                    "device": f"cuda:{i}",
                    "name": props.name,
                    "memory_gb": round(props.total_memory / 2**30, 1),
                }
            )
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append({"device": "mps", "name": "Apple GPU"})
    return {
        "version": torch.__version__,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "devices": devices,
    }


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
