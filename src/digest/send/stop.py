"""Stop signals: SIGTERM, SIGINT and SIGHUP mean "stop claiming, finish what is in flight,
record, exit" (REFERENCE.md section 6).

`systemctl stop` and `restart` and `docker stop` send SIGTERM, then SIGKILL after a grace period
(90 s and 10 s by default): a sender that ignores SIGTERM is killed mid-message, and every row it
had sent but not yet recorded goes out again. Here a signal outside the send loop stops the
command at once (``Stopped`` is raised where the program is, like KeyboardInterrupt: every write
is in a transaction, so nothing is half-done). Inside the send loop (``deferring``) it only sets
a flag: the loop stops claiming, lets the messages in flight finish (within DIGEST_STOP_GRACE
seconds), records every reply, and then raises ``Stopped``. A second signal cuts the grace short.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Stopped(BaseException):  # noqa: N818  (like KeyboardInterrupt: not an error)
    """The process was asked to stop. A BaseException so that `except Exception` around a job
    (which records and mails failures) lets a deliberate stop through."""

    def __init__(self, signum: int, line: str = "") -> None:
        super().__init__(line or f"stopped by {signal.Signals(signum).name}")
        self.signum = signum
        self.line = line or "stopped"

    def exit_by_signal(self) -> None:
        """End the process as killed by the signal, now that everything is recorded: the
        convention for a program that handles SIGINT/SIGTERM (the shell sees 130/143, and
        systemd counts a SIGTERM stop as clean, not as a failed exit code)."""
        signal.signal(self.signum, signal.SIG_DFL)
        os.kill(os.getpid(), self.signum)


class StopRequest:
    """The process-wide stop flag: set by a signal, or by ``request`` from another thread
    (`digest serve --with-scheduler`, whose signals uvicorn receives)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.hurry = False  # a second signal: do not wait for the messages in flight
        self.deferring = 0
        self._lock = threading.Lock()

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def request(self, signum: int = signal.SIGTERM) -> None:
        with self._lock:
            if self.signum is not None:
                self.hurry = True
            else:
                self.signum = signum

    def reset(self) -> None:
        with self._lock:
            self.signum, self.hurry = None, False

    @contextmanager
    def deferred(self) -> Iterator[StopRequest]:
        """Within: a signal only sets the flag (the send loop polls it). Signal handlers run
        in the main thread, so only the main thread's send loop defers them: a send in another
        thread (`serve --with-scheduler`) leaves the main thread's stop as it is."""
        main = threading.current_thread() is threading.main_thread()
        self.deferring += main
        try:
            yield self
        finally:
            self.deferring -= main

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.request(signum)
        if not self.deferring:
            raise Stopped(signum)


STOP = StopRequest()


@contextmanager
def handle_stops() -> Iterator[StopRequest]:
    """Route SIGTERM, SIGINT and SIGHUP to ``STOP`` while the block runs (main thread only;
    elsewhere the flag is set by whoever owns the signals)."""
    STOP.reset()
    if threading.current_thread() is not threading.main_thread():
        yield STOP
        return
    previous = {sig: signal.signal(sig, STOP._handle) for sig in SIGNALS}
    try:
        yield STOP
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
