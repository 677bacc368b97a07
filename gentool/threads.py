"""How many threads torch computes with: ``--threads N`` or ``GENTOOL_THREADS``.

torch's default is one intra-op thread per core (``OMP_NUM_THREADS`` when that is set). On a
shared or busy machine that is often the slowest choice for a small model: each operation
waits for its slowest thread, and a thread that lost its core makes every one wait (tiny
models ran up to 20x slower than on one thread). The choice is kept here, torch-free, and
applied when a neural kind imports torch (``gentool.neural.require_neural``), or at once if
torch is already imported; the n-gram family never imports torch for it.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from gentool.errors import GentoolError

ENV = "GENTOOL_THREADS"

_requested: int | None = None  # set_threads'; None: GENTOOL_THREADS, else torch's default


def set_threads(threads: int | None) -> None:
    """Compute torch's operations on ``threads`` threads (None: GENTOOL_THREADS, else
    torch's default); takes effect now if torch is imported, else when it is."""
    global _requested
    if threads is not None and threads < 1:
        raise GentoolError(f"--threads must be 1 or more, got {threads}")
    _requested = threads
    torch = sys.modules.get("torch")
    if torch is not None:
        apply(torch)


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
