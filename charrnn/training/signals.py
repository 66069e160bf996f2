"""Stopping a run cleanly on a signal: Ctrl-C (SIGINT), SIGTERM (what
Slurm, Kubernetes and systemd send before they kill a job) and SIGHUP (a
closed terminal). The first sets a flag the loop reads between steps, so a
step is never cut in half and `last` is saved from a consistent state; the
run then exits with 128 + the signal's number (130, 143, 129).

A second Ctrl-C interrupts at once (KeyboardInterrupt); a second SIGTERM or
SIGHUP ends the process as that signal does by default. Either may land
during a save: writes are atomic (files.py), so the previous checkpoint
stays whole, and a temporary file left behind is removed at the next start.
"""

from __future__ import annotations

import os
import signal
import threading

# SIGHUP does not exist on Windows.
STOP_SIGNALS = tuple(s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s)


class StopFlag:
    """Context manager: while inside, the stop signals set `signum`."""

    def __init__(self, repeat_interrupts: bool = True) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}
        # Under torchrun each process gets SIGINT twice (the terminal's and
        # the launcher's forwarded one): there, a second one must not raise.
        self.repeat_interrupts = repeat_interrupts

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():  # only the main thread may set handlers
            self._previous = {s: signal.signal(s, self._handle) for s in STOP_SIGNALS}
        return self

    def _handle(self, signum, frame) -> None:
        if self.signum is None:
            self.signum = signum
            return
        if not self.repeat_interrupts:
            return
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        signal.signal(signum, signal.SIG_DFL)  # asked twice: end now, as the signal does by default
        os.kill(os.getpid(), signum)

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
