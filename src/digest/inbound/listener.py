"""`digest inbound`: an SMTP listener (aiosmtpd) taking newsletters at in+<blog-id>@ any domain.

RCPT is the gate: only the address of a blog with ``email:`` in blogs.yaml is accepted, every
other one gets a 550 saying why, so a mistyped address bounces to the curator at once instead
of vanishing. One blog per message: a second blog's address gets a 452 (send it again), since
a message is recorded once, for one blog. The size is capped at DIGEST_FETCH_MAX_BYTES, as a
feed is (announced in EHLO's SIZE, refused with a 552 beyond it).

Each message goes through inbound.receive, the same processing as the Maildir's, on one worker
thread (DKIM's DNS lookups must not stall the other sessions); a quarantined message is still
a 250: it is stored, and the feed health shows it. SIGTERM and SIGINT stop listening, let the
message being recorded finish, and end the command.
"""

from __future__ import annotations

import asyncio
import errno
import signal
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from digest.config import BlogsFile, Settings
from digest.errors import ConfigError, DigestError
from digest.inbound.receive import blog_of_address, receive
from digest.inbound.verify import DnsFunc
from digest.store.db import Connection, DbError, utcnow

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Inbox:
    """The aiosmtpd handler."""

    def __init__(
        self,
        settings: Settings,
        blogs: BlogsFile,
        conn: Connection,
        *,
        dnsfunc: DnsFunc | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings, self.blogs, self.conn = settings, blogs, conn
        self.dnsfunc, self.clock = dnsfunc, clock
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="digest-inbound")
        self.taken = 0

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        blog = blog_of_address(self.blogs, address)
        if blog is None:
            return (
                f"550 5.1.1 <{address}>: no such inbox here: digest takes mail only at "
                "in+<blog-id>@ for a blog with `email:` in blogs.yaml"
            )
        taken = {b.id for a in envelope.rcpt_tos if (b := blog_of_address(self.blogs, a))}
        if taken and blog.id not in taken:
            return f"452 4.5.3 <{address}>: one blog per message: send it again for this one"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or b""
        work = partial(
            receive,
            self.conn,
            self.blogs,
            raw,
            now=self.clock(),
            base_url=self.settings.base_url,
            to=envelope.rcpt_tos[0],
            dnsfunc=self.dnsfunc,
        )
        try:
            result = await asyncio.get_running_loop().run_in_executor(self.worker, work)
        except (DigestError, *DbError):
            # The database is full, locked or gone: a 4xx makes the sender try again later.
            return "451 4.3.0 cannot store the message now: try again later"
        self.taken += 1
        if result.status == "post":
            return f"250 2.0.0 taken as post {result.post_id}"
        if result.status == "confirmation":
            return "250 2.0.0 taken: a subscription confirmation, for the curator"
        return f"250 2.0.0 quarantined: {result.reason}"

    def close(self) -> None:
        self.worker.shutdown(wait=True)  # the message being recorded is recorded


@dataclass(slots=True)
class Stop:
    """Why `serve` returned: the signal, or None when ``stop`` was set by the caller."""

    signum: int | None
    taken: int


async def serve(
    settings: Settings,
    blogs: BlogsFile,
    conn: Connection,
    *,
    host: str,
    port: int,
    dnsfunc: DnsFunc | None = None,
    on_ready: Callable[[str, int], None] | None = None,
    stop: asyncio.Event | None = None,
    signals: bool = True,
) -> Stop:
    """Listen until a stop signal (``signals``, main thread only) or ``stop`` is set."""
    loop = asyncio.get_running_loop()
    inbox = Inbox(settings, blogs, conn, dnsfunc=dnsfunc)
    stop = stop or asyncio.Event()
    caught: list[int] = []

    def factory() -> SMTP:
        return SMTP(
            inbox,
            data_size_limit=settings.fetch_max_bytes,
            ident="digest inbound",
            enable_SMTPUTF8=True,
            loop=loop,
        )

    try:
        server = await loop.create_server(factory, host, port)
    except OSError as exc:
        inbox.close()
        if isinstance(exc, socket.gaierror):
            hint = "--host takes an address of this machine, such as 127.0.0.1 or ::1"
        elif exc.errno == errno.EACCES:
            hint = "ports under 1024 need root: choose --port 2525 and let your MTA relay to it"
        else:
            hint = "choose another --port, or stop what holds this one"
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}", hint=hint
        ) from None
    if signals:
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, _caught, caught, sig, stop)
    try:
        bound: Any = server.sockets[0].getsockname()
        if on_ready is not None:
            on_ready(str(bound[0]), int(bound[1]))
        await stop.wait()
    finally:
        if signals:
            for sig in STOP_SIGNALS:
                loop.remove_signal_handler(sig)
        server.close()
        await server.wait_closed()
        await loop.run_in_executor(None, inbox.close)
    return Stop(caught[0] if caught else None, inbox.taken)


def _caught(caught: list[int], signum: int, stop: asyncio.Event) -> None:
    caught.append(signum)
    stop.set()
