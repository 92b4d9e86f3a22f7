"""The one seam to aiosmtplib: a few reused SMTP connections, or the Maildir outbox.

REFERENCE.md section 6. A ``Transport`` has ``lanes``: one per parallel connection, each reused
for many messages and reopened after a drop or every ``DIGEST_SMTP_RECONNECT_EVERY`` messages.
Without ``DIGEST_SMTP_HOST`` the single lane writes into a Maildir instead, through the same
code path, so the weekly job works on a fresh machine and the curator can open what was sent.

A lane returns a ``Reply`` for anything about one recipient (2xx, 4xx, 5xx, a dropped
connection) and raises ``DeliveryError`` only for what would fail for everyone: no server,
STARTTLS missing, AUTH refused, the sender address refused. With several relays
(DIGEST_SMTP_HOSTS, ``digest.send.relays``) a lane first fails over to another relay.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import mailbox
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiosmtplib

from digest.config import Settings, SmtpRelay
from digest.errors import DeliveryError
from digest.send.bounces import Bounce, classify
from digest.send.relays import RateLimiter, RelayRefused, RelaySet

__all__ = ["RateLimiter", "Reply", "SmtpLane", "Transport", "deliver_one", "open_transport"]

T = TypeVar("T")

# A drop or a refused connection: tried again after these pauses before giving up on the server.
CONNECT_RETRIES = (0.2, 1.0, 3.0)


@dataclass(frozen=True, slots=True)
class Reply:
    """The server's answer about one message. ``code`` 0: the connection failed mid-transaction."""

    code: int
    text: str
    stage: str = "data"  # mail | rcpt | data | connection | local
    # Refused before DATA for a reason of the relay's (a 421, MAIL FROM refused, a drop):
    # another relay may take the message without risking a second copy.
    failover: bool = field(default=False, compare=False)

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300

    @property
    def transient(self) -> bool:
        # A timeout waiting for the final 250 is ambiguous (the server may have accepted it):
        # retrying with the same Message-ID lets receivers drop the duplicate.
        return self.code == 0 or 400 <= self.code < 500

    @property
    def bounce(self) -> Bounce | None:
        """What the refusal says about the reader (RFC 3463 classes; None: accepted)."""
        return classify(self.code, self.text)

    @property
    def hard_bounce(self) -> bool:
        """The address itself is bad, so the subscriber is suppressed. A 5.7.x refusal is about
        the sender (a blocklisting, DMARC), whatever the stage it comes at: never the reader."""
        return self.bounce is Bounce.HARD

    def __str__(self) -> str:
        return f"{self.code} {self.text}".strip() if self.code else self.text


class Lane(Protocol):
    async def send(self, sender: str, to: str, message: bytes) -> Reply: ...

    async def close(self) -> None: ...


def describe_target(settings: Settings) -> str:
    """Where mail goes, for the confirmation prompt and the summary."""
    relays = settings.smtp_relays
    if not relays:
        return f"Maildir {settings.outbox}/ (DIGEST_SMTP_HOST is unset)"
    shown = []
    for relay in relays:
        user = relay.username or settings.smtp_username
        who = f", as {user}" if user else ""
        shown.append(f"{relay} ({relay.security or settings.smtp_security}{who})")
    return "smtp " + ", ".join(shown)


async def _abandon(client: aiosmtplib.SMTP) -> None:
    """Drop a session refused after the TCP connect (TLS, AUTH). Aborted, not closed: a
    graceful TLS close waits for the server's close_notify, which a loaded machine may not
    deliver before the loop ends, leaving the socket open; a refused session owes nothing."""
    transport = client.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if isinstance(transport, asyncio.Transport):
        transport.abort()
    client.close()
    for _ in range(200):  # until the socket is really closed (a loaded machine takes longer)
        await asyncio.sleep(0.005)
        if sock is None or sock.fileno() == -1:
            return


async def _greet(client: aiosmtplib.SMTP) -> None:
    """EHLO now rather than lazily at the first MAIL (aiosmtplib's way when neither STARTTLS
    nor AUTH ran it): SIZE and SMTPUTF8 are chosen from its answer before that MAIL, and a
    non-ASCII address must not be refused as "no SMTPUTF8" for being first on a connection."""
    if not client.is_ehlo_or_helo_needed:
        return
    try:
        await client.ehlo()
    except aiosmtplib.SMTPHeloError:
        await client.helo()  # an old server without ESMTP (RFC 5321 3.2)


class SmtpLane:
    """One SMTP connection, opened on first use and reopened when needed."""

    def __init__(self, settings: Settings, relay: SmtpRelay | None = None) -> None:
        self.settings = settings
        self.relay = relay or settings.smtp_relays[0]
        self.security = self.relay.security or settings.smtp_security
        self.client: aiosmtplib.SMTP | None = None
        self.sent_on_connection = 0
        self.connections = 0
        self.busy = False

    def _new_client(self) -> aiosmtplib.SMTP:
        s, relay = self.settings, self.relay
        password = relay.password or s.smtp_password
        return aiosmtplib.SMTP(
            hostname=relay.host,
            port=relay.port,
            username=relay.username or s.smtp_username,
            password=password.get_secret_value() if password else None,
            timeout=s.smtp_timeout,
            use_tls=self.security == "tls",
            # True, not None: aiosmtplib's None silently stays plaintext without STARTTLS.
            start_tls=self.security == "starttls",
        )

    async def _connect(self, retries: Sequence[float]) -> aiosmtplib.SMTP:
        s = self.settings
        target = str(self.relay)
        hosts = "DIGEST_SMTP_HOSTS" if s.smtp_hosts else "DIGEST_SMTP_HOST, DIGEST_SMTP_PORT"
        last = ""
        for pause in (*retries, None):
            client = self._new_client()
            try:
                try:
                    await client.connect()
                    await _greet(client)
                except Exception:
                    await _abandon(client)
                    raise
            except aiosmtplib.SMTPAuthenticationError as exc:
                user = self.relay.username or s.smtp_username
                raise RelayRefused(
                    f"{target}: AUTH refused for {user}: {exc.code} {exc.message}",
                    hint="check DIGEST_SMTP_USERNAME and DIGEST_SMTP_PASSWORD",
                ) from None
            except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPTimeoutError, OSError) as exc:
                last = str(exc) or type(exc).__name__
            except aiosmtplib.SMTPServerDisconnected as exc:
                last = str(exc) or "disconnected"
            except aiosmtplib.SMTPResponseException as exc:
                if exc.code >= 500:
                    raise RelayRefused(
                        f"{target}: the server refused the session: {exc.code} {exc.message}",
                        hint=f"check {hosts} and DIGEST_SMTP_SECURITY",
                    ) from None
                last = f"{exc.code} {exc.message}"
            except aiosmtplib.SMTPException as exc:
                # STARTTLS not offered, TLS handshake or certificate trouble: never retried,
                # and never downgraded to plaintext.
                raise RelayRefused(
                    f"{target}: {exc}",
                    hint="DIGEST_SMTP_SECURITY=tls for port 465, starttls for 587; 'none' only "
                    "for a local relay",
                ) from None
            else:
                self.client = client
                self.sent_on_connection = 0
                self.connections += 1
                return client
            if pause is not None:
                await asyncio.sleep(pause)
        raise RelayRefused(
            f"cannot connect to {target}: {last}",
            hint=f"is the SMTP server up? check {hosts}; "
            "the deliveries not sent yet are kept for the next `digest send`",
        )

    async def send(
        self, sender: str, to: str, message: bytes, *, retries: Sequence[float] | None = None
    ) -> Reply:
        """``retries``: pauses between connection attempts (CONNECT_RETRIES unless given)."""
        self.busy = True  # until the reply: a send cut off here leaves the session unusable
        pauses = CONNECT_RETRIES if retries is None else retries
        reply = await self._send(sender, to, message, pauses)
        self.busy = False
        return reply

    async def _send(self, sender: str, to: str, message: bytes, retries: Sequence[float]) -> Reply:
        client = self.client
        if client is None or not client.is_connected:
            client = await self._connect(retries)
        # MAIL, RCPT, DATA rather than sendmail(): the message is already CRLF throughout, so
        # its SIZE (RFC 1870) is its length, and sendmail's extra pass over the whole message
        # to compute it is saved on every recipient.
        options = [f"SIZE={len(message)}"] if client.supports_extension("size") else []
        encoding = "ascii"
        if not (sender + to).isascii():
            if not client.supports_extension("smtputf8"):
                return Reply(553, "the server does not offer SMTPUTF8 for this address", "local")
            options.append("SMTPUTF8")
            encoding = "utf-8"
        stage = "mail"  # until DATA, nothing of the message reached the relay
        try:
            await client.mail(sender, options=options, encoding=encoding)
            await client.rcpt(to, encoding=encoding)
            stage = "data"
            response = await client.data(message)
        except aiosmtplib.SMTPSenderRefused as exc:
            await self._reset()
            if exc.code >= 500:
                raise RelayRefused(
                    f"the server refused the sender {sender}: {exc.code} {exc.message}",
                    hint="the newsletter's `from:` in blogs.yaml must be an address this server "
                    "may send as",
                ) from None
            return Reply(exc.code, exc.message, "mail", failover=True)
        except aiosmtplib.SMTPRecipientRefused as exc:
            await self._reset()
            return Reply(exc.code, exc.message, "rcpt", failover=exc.code == 421)
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code == 421:  # the server is closing the connection (RFC 5321 3.8)
                await self._drop()
            else:
                await self._reset()
            return Reply(exc.code, exc.message, "data")
        except (aiosmtplib.SMTPException, OSError) as exc:
            await self._drop()
            # Before DATA another relay may take it; during DATA the outcome is unknown.
            lost = f"connection lost: {exc or type(exc).__name__}"
            return Reply(0, lost, "connection", failover=stage == "mail")
        except ValueError as exc:  # an address aiosmtplib cannot send to
            await self._reset()
            return Reply(553, f"invalid address: {exc}", "local")
        self.sent_on_connection += 1
        if self.sent_on_connection >= self.settings.smtp_reconnect_every:
            await self.close()
        return Reply(response.code, response.message)

    async def _reset(self) -> None:
        """RSET after a refusal, so the connection serves the next recipient."""
        if self.client is None:
            return
        try:
            await self.client.rset()
        except (aiosmtplib.SMTPException, OSError):
            await self._drop()

    async def _drop(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    async def close(self) -> None:
        if self.busy:  # cancelled mid-transaction (a stop's grace ran out): no QUIT to wait on
            await self._drop()
        client, self.client = self.client, None
        if client is not None and client.is_connected:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()


class OutboxLane:
    """The embedded default: each message a file in a Maildir (stdlib ``mailbox``).

    Files get LF line ends, as Maildir readers expect: mutt shows ``^M`` on the header lines of
    CRLF files and munpack mis-decodes quoted-printable soft breaks (REFERENCE.md section 6b).
    The SMTP bytes stay CRLF."""

    def __init__(self, path: Path) -> None:
        try:
            # An existing folder (the systemd unit's ReadWritePaths wants one) gets the three
            # subfolders a Maildir needs; mailbox.Maildir(create=True) only makes them for a
            # folder it creates itself.
            for sub in ("tmp", "new", "cur"):
                (path / sub).mkdir(parents=True, exist_ok=True)
            self.box = mailbox.Maildir(path, factory=None, create=False)
        except OSError as exc:
            raise DeliveryError(
                f"{path}: cannot create the outbox: {exc.strerror}",
                hint=_outbox_hint(exc),
            ) from None
        self.path = path

    async def send(self, sender: str, to: str, message: bytes) -> Reply:
        try:
            key = self.box.add(message.replace(b"\r\n", b"\n"))
        except OSError as exc:
            raise DeliveryError(
                f"{self.path}: cannot write to the outbox: {exc.strerror}",
                hint=_outbox_hint(exc),
            ) from None
        return Reply(250, f"2.0.0 stored as {self.path}/new/{key}")

    async def close(self) -> None:
        return None


def _outbox_hint(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full: free some space, or set DIGEST_OUTBOX to another disk"
    return "set DIGEST_OUTBOX to a folder digest may write, or DIGEST_SMTP_HOST to send over SMTP"


class NullLane:
    """`--dry-run`: every message is built, nothing leaves the machine."""

    async def send(self, sender: str, to: str, message: bytes) -> Reply:
        return Reply(250, "dry run: not sent")

    async def close(self) -> None:
        return None


class Transport:
    """The lanes plus the shared rate limit. ``async with open_transport(settings) as t``."""

    def __init__(self, settings: Settings, *, dry_run: bool = False) -> None:
        self.lanes: list[Lane]
        self.limiter = RateLimiter(None if dry_run else settings.rate_per_second)
        self.relays: RelaySet | None = None
        relays = settings.smtp_relays
        if dry_run:
            self.lanes = [NullLane() for _ in range(sum(r.pool for r in relays) or 1)]
        elif relays:
            # The relays take their own rates and the total (self.limiter) themselves.
            self.relays = RelaySet(relays, self.limiter, lambda r: SmtpLane(settings, r))
            self.lanes = list(self.relays.lanes)
        else:
            self.lanes = [OutboxLane(settings.outbox)]
        self.target = describe_target(settings)

    async def send(self, lane: int, sender: str, to: str, message: bytes) -> Reply:
        if self.relays is None:
            await self.limiter.wait()
        return await self.lanes[lane].send(sender, to, message)

    async def aclose(self) -> None:
        await asyncio.gather(*(lane.close() for lane in self.lanes))
        if self.relays is not None:
            await self.relays.aclose()

    async def __aenter__(self) -> Transport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def open_transport(settings: Settings, *, dry_run: bool = False) -> Transport:
    return Transport(settings, dry_run=dry_run)


async def adeliver_one(settings: Settings, *, sender: str, to: str, message: bytes) -> str:
    """Send one message now; the server's reply, or DeliveryError naming the recipient."""
    async with Transport(settings) as transport:
        reply = await transport.send(0, sender, to, message)
    if not reply.ok:
        raise DeliveryError(
            f"{to}: not delivered: {reply}",
            recipient=to,
            hint="a 4xx or a lost connection is temporary: try again later"
            if reply.transient
            else "the server refused this address",
        )
    return str(reply)


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from sync code, even when this thread already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def deliver_one(settings: Settings, *, sender: str, to: str, message: bytes) -> str:
    """Sync ``adeliver_one``: confirmation mails, curator reports, previews."""
    return run_sync(adeliver_one(settings, sender=sender, to=to, message=message))
