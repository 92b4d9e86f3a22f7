"""Signup mails leave from a background thread, so POST /subscribe answers in the same time
whether it sent a mail or not (REFERENCE.md section 5: the form must not reveal who subscribes)."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from digest.subscribers import Mail

log = logging.getLogger("digest.web")


class Mailer:
    def __init__(self, send: Callable[[Mail], None]) -> None:
        self._send = send
        self._queue: queue.Queue[Mail | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, mail: Mail) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="digest-mailer", daemon=True)
                self._thread.start()
        self._queue.put(mail)

    def join(self) -> None:
        """Wait until every submitted mail was handled (tests, shutdown)."""
        self._queue.join()

    def close(self, timeout: float = 30.0) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            mail = self._queue.get()
            try:
                if mail is None:
                    return
                self._send(mail)
            except Exception:  # one failed mail must not stop the ones after it
                log.exception("could not send the signup mail to %s", mail.to if mail else "?")
            finally:
                self._queue.task_done()
