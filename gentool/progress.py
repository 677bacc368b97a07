"""Progress on stderr for work that takes a while: training steps, and the phases around
them (learning a tokenizer, encoding, the final evaluation, a translator's BLEU).

On a terminal, a status line is rewritten in place. Elsewhere (CI, ``nohup``, a pipe) a
rewritten line would pile up as one endless line, so progress is a plain line, at most
one every ``PLAIN_EVERY`` seconds: the log shows that the work goes on without drowning.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator

from gentool.interrupts import threads_started_here_ignore_interrupts

ANNOUNCE_AFTER = 3.0  # seconds: a phase still running then is announced
PLAIN_EVERY = 30.0  # seconds between plain progress lines off a terminal

Log = Callable[[str], None]


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


class StatusLine:
    """One progress line: rewritten in place on a terminal; off one, written with ``log``
    when ``every`` seconds have passed since the last (or since the start)."""

    def __init__(self, log: Log, terminal: bool, every: float = PLAIN_EVERY) -> None:
        self.log = log
        self.terminal = terminal
        self.every = every
        self.last = time.monotonic()
        self.shown = False

    def show(self, text: str) -> None:
        if self.terminal:
            sys.stderr.write(f"\r{text} ")
            sys.stderr.flush()
            self.shown = True
        elif time.monotonic() - self.last >= self.every:
            self.log(text)
            self.last = time.monotonic()

    def clear(self) -> None:
        """End a status line, so that the next message starts on a line of its own."""
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self.shown = False


@contextlib.contextmanager
def phase(
    log: Log,
    what: str,
    total: int = 0,
    unit: str = "",
    terminal: bool | None = None,
    after: float = ANNOUNCE_AFTER,
    every: float = PLAIN_EVERY,
) -> Iterator[Callable[[int], None]]:
    """Report a phase of work, ``what`` ("encoding the training text"), if it takes long.

    Nothing is shown for a phase shorter than ``after`` seconds. A longer one is announced
    (``what...``) while it runs, and its time is logged when it ends. The block gets an
    ``advance(n)`` function: with a ``total``, the count (``120/500 pairs``) is shown as it
    grows, as a status line on a terminal, else a plain line every ``every`` seconds.
    """
    terminal = stderr_is_terminal() if terminal is None else terminal
    started = time.monotonic()
    lock = threading.Lock()
    state = {"done": 0, "announced": False, "over": False}
    status = StatusLine(log, terminal, every)

    def announce() -> None:
        with lock:
            if not state["over"] and not state["announced"]:
                state["announced"] = True
                log(f"{what}..." if not total else f"{what}: {state['done']}/{total} {unit}")
                status.last = time.monotonic()

    def advance(n: int) -> None:
        state["done"] += n
        if not total or time.monotonic() - started < after:
            return
        announce()
        with lock:
            status.show(f"{what}: {state['done']}/{total} {unit}")

    with threads_started_here_ignore_interrupts():  # see gentool.interrupts
        timer = threading.Timer(after, announce)
        timer.daemon = True
        timer.start()
    try:
        yield advance
    finally:
        timer.cancel()
        with lock:
            state["over"] = True
        status.clear()
        if state["announced"]:
            log(f"{what}: done in {_duration(time.monotonic() - started)}")


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{seconds:.1f} s"
