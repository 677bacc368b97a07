"""Ctrl-C and SIGTERM must reach the main thread, which is the one that stops cleanly.

The kernel hands a process-wide signal to any thread that does not block it. Libraries
start thread pools when they are imported (numpy's OpenBLAS, for one); if such a thread
takes SIGINT while the main thread waits in a system call (reading a pipe or a FIFO),
Python notes the signal but the main thread never wakes up to act on it. A thread inherits
its creator's signal mask, so imports that may start threads run with the two signals
blocked: the threads they start never take them.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

INTERRUPTS = {signal.SIGINT, signal.SIGTERM}


@contextlib.contextmanager
def threads_started_here_ignore_interrupts() -> Iterator[None]:
    """Block SIGINT/SIGTERM in this thread for the block (they stay pending, and arrive
    when it ends), so that threads started inside it never receive them."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no masks, nothing to do
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, INTERRUPTS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
