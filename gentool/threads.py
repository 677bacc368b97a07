"""How many threads gentool computes with: ``--threads N`` or ``GENTOOL_THREADS``.

torch's default is one intra-op thread per core (``OMP_NUM_THREADS`` when that is set). On a
shared or busy machine that is often the slowest choice for a small model: each operation
waits for its slowest thread, and a thread that lost its core makes every one wait (tiny
models ran up to 20x slower than on one thread). The choice is kept here, torch-free, and
applied when a neural kind imports torch (``gentool.neural.require_neural``), or at once if
torch is already imported; the n-gram family never imports torch for it.

The same number goes to the libraries that keep their own thread pools: numpy's BLAS
(OpenBLAS, MKL or BLIS) and ``tokenizers``' (rayon, which encodes the token caches). They
read their environment variables when they load, which a command line reaches first
(``gentool.cli`` imports neither numpy nor tokenizers), so setting them costs nothing and
needs no import; a BLAS already loaded (gentool used as a library, after numpy) is limited
through ``threadpoolctl``, the maintained tool for changing it at run time.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from gentool.errors import GentoolError

ENV = "GENTOOL_THREADS"
# What the libraries with thread pools of their own read when they load.
LIBRARY_ENV = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS", "RAYON_NUM_THREADS")

_requested: int | None = None  # set_threads'; None: GENTOOL_THREADS, else torch's default


def set_threads(threads: int | None) -> None:
    """Compute torch's operations on ``threads`` threads (None: GENTOOL_THREADS, else
    torch's default); takes effect now if torch is imported, else when it is."""
    global _requested
    if threads is not None and threads < 1:
        raise GentoolError(f"--threads must be 1 or more, got {threads}")
    _requested = threads
    count = requested()
    if count is not None:
        for name in LIBRARY_ENV:
            os.environ[name] = str(count)
        if "numpy" in sys.modules:  # its BLAS is loaded: the variables came too late
            from threadpoolctl import threadpool_limits

            threadpool_limits(count, user_api="blas")
    torch = sys.modules.get("torch")
    if torch is not None:
        apply(torch)


def set_by_option() -> bool:
    """Whether ``set_threads`` was given a number (``--threads``), not only the default."""
    return _requested is not None


def requested() -> int | None:
    """The number of threads asked for: set_threads', else GENTOOL_THREADS', else None."""
    if _requested is not None:
        return _requested
    text = os.environ.get(ENV, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise GentoolError(
            f"{ENV}={text!r} is not a number of threads; set it to 1 or more, or unset it"
        )
    return int(text)


def apply(torch: Any) -> None:
    """Give torch the requested number of intra-op threads (nothing when none was asked)."""
    threads = requested()
    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
