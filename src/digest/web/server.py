"""uvicorn, run so that slow or greedy clients cannot exhaust it (the seam to uvicorn).

uvicorn has no timeout for receiving a request: `timeout_keep_alive` covers only the idle time
between requests and is cancelled by the first byte, so a client that sends half a request and
then one byte now and then holds its connection (a file descriptor) for as long as it likes
(uvicorn issue 157). Thousands of them used up the file limit and /healthz stopped answering.
The protocol below adds what is missing, on top of uvicorn's own httptools protocol:

- a deadline: a whole request (headers and body) arrives within ``request_timeout`` seconds of
  the connection opening or of the previous answer, or the connection is closed;
- a header cap: 64 KiB of request line and headers, or 431 (uvicorn takes megabytes);
- a connection cap below the file limit: at the cap, a new connection closes the oldest one
  still waiting for its request (a slow or idle client), so one that is sending now gets in;
  when every connection is busy with a request, uvicorn's `limit_concurrency` answers 503;
- the security headers on uvicorn's own 400 and 503 answers.

Behind a reverse proxy, let the proxy time out slow clients too (nginx `client_header_timeout`,
`client_body_timeout`; Caddy `servers.timeouts.read_header`): see the README.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
import threading
from typing import Any, ClassVar, cast

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from digest.web.security import SecurityHeaders, redact, security_headers

log = logging.getLogger("digest.web")

MAX_HEADER_BYTES = 64 * 1024
KEEP_ALIVE = 5  # seconds an idle connection stays open (uvicorn's default, stated)
GRACEFUL_SHUTDOWN = 10  # seconds requests in flight get to finish on SIGTERM
FILES_RESERVED = 64  # descriptors kept for the database, logs, mail and the listening socket


class _Limits:
    """What every connection of one server shares: the limits, and who waits for a request."""

    def __init__(self, max_connections: int, request_timeout: float, base_origin: str) -> None:
        self.max_connections = max_connections
        self.request_timeout = request_timeout
        self.headers = security_headers(base_origin)
        self.unavailable = SecurityHeaders(
            cast(ASGIApp, service_unavailable), base_origin=base_origin
        )
        # Oldest first (dicts keep insertion order): the connections that are not being served.
        self.waiting: dict[GuardedProtocol, None] = {}


class GuardedProtocol(HttpToolsProtocol):
    limits: ClassVar[_Limits]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._in_headers = True
        self._header_bytes = 0

    # --- the deadline and the waiting list -----------------------------------------------------

    def _expect_request(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(self.limits.request_timeout, self._too_slow)
        self.limits.waiting.pop(self, None)
        self.limits.waiting[self] = None  # to the end: the newest waiter

    def _received(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self.limits.waiting.pop(self, None)

    def _too_slow(self) -> None:
        self._deadline = None
        self._drop()

    def _drop(self) -> None:
        self._received()
        # Out of the count at once, not when the loop gets to connection_lost: in a burst of
        # new connections the count must be true for the next one (and for limit_concurrency).
        self.connections.discard(self)
        if not self.transport.is_closing():
            self.transport.close()

    def _busy(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _refuse(self, status: bytes, text: bytes) -> None:
        lines = [b"HTTP/1.1 " + status + b"\r\n"]
        headers = [*self.server_state.default_headers, *self.limits.headers]
        lines += [name + b": " + value + b"\r\n" for name, value in headers]
        lines += [
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: " + str(len(text)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
            text,
        ]
        self.transport.write(b"".join(lines))
        self.transport.close()

    # --- uvicorn's hooks -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._expect_request()
        excess = len(self.connections) - self.limits.max_connections
        if excess > 0:
            idle = [c for c in self.limits.waiting if c is not self and not c._busy()]
            for other in idle[:excess]:
                other._drop()

    def connection_lost(self, exc: Exception | None) -> None:
        self._received()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._in_headers and not self.transport.is_closing():
            self._header_bytes += len(data)
            if self._header_bytes > MAX_HEADER_BYTES:
                self._refuse(b"431 Request Header Fields Too Large", b"Headers too large.")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers, self._header_bytes = True, 0
        if self._deadline is None:  # a pipelined request: its own deadline
            self._expect_request()

    def on_headers_complete(self) -> None:
        self._in_headers = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._received()

    def on_response_complete(self) -> None:
        queued = bool(self.pipeline)
        super().on_response_complete()
        if not queued and not self.transport.is_closing():
            self._expect_request()  # idle now: the next request has the same deadline

    def send_400_response(self, msg: str) -> None:
        self._refuse(b"400 Bad Request", msg.encode("ascii", "replace"))

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        if app is service_unavailable:  # uvicorn's limit_concurrency: with our headers too
            app = self.limits.unavailable
        super()._start_asgi_task(cycle, app)


class _RedactTokens(logging.Filter):
    """The access log (``--access-log``) shows paths with the personal tokens cut out."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact(args[2]), *args[3:])
        return True


def connection_cap(requested: int, reserved: int = FILES_RESERVED) -> int:
    """``requested``, lowered to fit the process's file limit with ``reserved`` to spare."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return requested
    return max(1, min(requested, soft - reserved))


def run(
    app: ASGIApp,
    *,
    host: str,
    port: int,
    base_origin: str,
    max_connections: int,
    request_timeout: float,
    access_log: bool,
) -> None:
    protocol = type(
        "DigestHttpProtocol",
        (GuardedProtocol,),
        {"limits": _Limits(max_connections, request_timeout, base_origin)},
    )
    logging.getLogger("uvicorn.access").addFilter(_RedactTokens())
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol,
        # One more than the connection cap: connections are kept at the cap by closing idle
        # ones, so this answers 503 only when every connection is busy with a request.
        limit_concurrency=max_connections + 1,
        timeout_keep_alive=KEEP_ALIVE,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
        access_log=access_log,
        server_header=False,
        log_level="info",
    )
    server = uvicorn.Server(config)
    # uvicorn handles SIGINT and SIGTERM; SIGHUP (a closed terminal, some supervisors) gets
    # the same graceful shutdown rather than killing the process mid-request.
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGHUP, server.handle_exit)
    try:
        server.run()
    finally:
        if previous is not None:
            signal.signal(signal.SIGHUP, previous)
