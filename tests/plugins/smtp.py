"""A real SMTP server for tests (aiosmtpd, REFERENCE.md section 7), and a newsroom to send from.

``smtp_server``: plain SMTP on a free port, recording every message with its envelope. It can be
told to answer 451 a few times then 250, to refuse recipients (at RCPT or DATA), to drop the
connection in the middle of a DATA, and to be slow, per message, so a `kill -9` lands mid-send.
``smtp_servers``: a factory of such servers, for several relays (DIGEST_SMTP_HOSTS); a server
can be told to refuse at the greeting or at MAIL FROM, or to drop the connection there, from
the start or once it holds some messages.
``smtp_tls_server``: the same, but STARTTLS and AUTH are required, with a certificate from a
throwaway CA (trustme); ``SSL_CERT_FILE`` points the client at that CA.

``newsroom``: settings, blogs.yaml, database, stored posts, a draft and subscribers, made the
way digest makes them (store functions and ``refresh_draft``), for the send tests.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import re
import secrets
import socket
import sqlite3
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from digest.config import BlogsFile, Settings, load_blogs
from digest.issue.draft import refresh_draft
from digest.models import Post
from digest.store import connect, transaction
from digest.store import posts as posts_store
from digest.store import subscribers as subscribers_store

USER, PASSWORD = "digest", "s3cret-pass"


def free_port() -> int:
    # aiosmtpd's Controller does not support port=0 (REFERENCE.md section 7).
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(slots=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    peer: Any
    at: float = field(default_factory=time.monotonic)

    @property
    def message(self) -> email.message.EmailMessage:
        msg = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(msg, email.message.EmailMessage)
        return msg

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])


@dataclass
class Handler:
    """What the server does with each message; tests set the knobs."""

    messages: list[Received] = field(default_factory=list)
    transient: dict[str, int] = field(default_factory=dict)  # rcpt -> 451s before a 250
    refuse_rcpt: dict[str, str] = field(default_factory=dict)  # rcpt -> reply at RCPT
    refuse_data: dict[str, str] = field(default_factory=dict)  # rcpt -> reply after DATA
    # rcpt -> replies to give first, each at its stage ("rcpt" or "data"), then accept: the
    # throttling answers (421, 450, 451, 454) providers give (REFERENCE.md section 6)
    throttle: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    drop_at: set[int] = field(default_factory=set)  # drop the connection at these DATA numbers
    delay: float = 0.0  # seconds per message, before it is accepted
    gate: threading.Event | None = None  # when set up, DATA waits until the test opens it
    # DATA numbers above this hang (a stalled server) until `unhang` is set, then answer 451
    # without keeping the message
    hang_after: int | None = None
    unhang: threading.Event = field(default_factory=threading.Event)
    # A relay going bad: the reply instead of the 220 greeting, the reply to every MAIL FROM
    # (a 421 closes the connection), or dropping the connection at MAIL FROM; once the server
    # holds `refuse_after` messages (None: from the start).
    refuse_greeting: str | None = None
    refuse_mail: str | None = None
    drop_mail: bool = False
    refuse_after: int | None = None
    datas: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def refusing(self) -> bool:
        with self.lock:
            return self.refuse_after is None or len(self.messages) >= self.refuse_after

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.drop_mail and self.refusing():
            server.transport.abort()
            return "421 4.4.2 connection dropped"
        if self.refuse_mail and self.refusing():
            return self.refuse_mail
        envelope.mail_from = address  # what aiosmtpd does without this hook
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.refuse_rcpt:
            return self.refuse_rcpt[address]
        if reply := self._throttled(address, "rcpt"):
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.datas += 1
            number = self.datas
        if self.delay:
            await asyncio.sleep(self.delay)
        while self.gate is not None and not self.gate.is_set():
            await asyncio.sleep(0.005)
        if self.hang_after is not None and number > self.hang_after:
            while not self.unhang.is_set():
                await asyncio.sleep(0.01)
            return "451 4.3.0 was stalled"
        rcpt = envelope.rcpt_tos[0]
        if number in self.drop_at:
            # The connection dies before the final reply: the client cannot know the outcome.
            server.transport.abort()
            return "421 4.4.2 connection dropped"
        if reply := self._throttled(rcpt, "data"):
            return reply
        with self.lock:
            if self.transient.get(rcpt, 0) > 0:
                self.transient[rcpt] -= 1
                return "451 4.3.0 try again later"
        if rcpt in self.refuse_data:
            return self.refuse_data[rcpt]
        with self.lock:
            self.messages.append(
                Received(
                    envelope.mail_from, list(envelope.rcpt_tos), envelope.content, session.peer
                )
            )
        return "250 2.0.0 Ok: queued"

    def _throttled(self, rcpt: str, stage: str) -> str | None:
        with self.lock:
            queued = self.throttle.get(rcpt)
            if queued and queued[0][0] == stage:
                return queued.pop(0)[1]
        return None


class _Smtp(SMTP):
    async def _handle_client(self) -> None:
        refusal = self.event_handler.refuse_greeting
        if refusal and self.event_handler.refusing():
            await self.push(refusal)
            assert self.transport is not None
            self.transport.close()
            return
        await super()._handle_client()


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _Smtp(self.handler, **self.SMTP_kwargs)


class SmtpServer:
    def __init__(self, handler: Handler, controller: Controller, port: int) -> None:
        self.handler = handler
        self.controller = controller
        self.host = "127.0.0.1"
        self.port = port
        self.ca: trustme.CA | None = None

    @property
    def messages(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.messages)

    def env(self, security: str = "none") -> dict[str, str]:
        """DIGEST_* variables pointing digest at this server."""
        return {
            "DIGEST_SMTP_HOST": self.host,
            "DIGEST_SMTP_PORT": str(self.port),
            "DIGEST_SMTP_SECURITY": security,
        }

    def copies(self) -> dict[str, int]:
        """recipient -> how many copies it received (what a reader sees, whatever the ids)."""
        out: dict[str, int] = {}
        for received in self.messages:
            for rcpt in received.rcpt_tos:
                out[rcpt] = out.get(rcpt, 0) + 1
        return out

    def message_ids(self) -> dict[str, list[str]]:
        """recipient -> Message-IDs of every copy it received."""
        out: dict[str, list[str]] = {}
        for received in self.messages:
            for rcpt in received.rcpt_tos:
                out.setdefault(rcpt, []).append(received.message_id)
        return out


def _start(handler: Handler, port: int | None = None, **kwargs: Any) -> tuple[Controller, int]:
    port = port or free_port()
    controller = _Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    return controller, port


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    handler = Handler()
    controller, port = _start(handler, enable_SMTPUTF8=True)
    try:
        yield SmtpServer(handler, controller, port)
    finally:
        handler.unhang.set()
        controller.stop()


@pytest.fixture
def smtp_servers() -> Iterator[Callable[..., SmtpServer]]:
    """``start(port=None)`` -> one more plain SMTP server, stopped after the test."""
    started: list[SmtpServer] = []

    def start(port: int | None = None) -> SmtpServer:
        handler = Handler()
        controller, port = _start(handler, port, enable_SMTPUTF8=True)
        started.append(SmtpServer(handler, controller, port))
        return started[-1]

    try:
        yield start
    finally:
        for server in started:
            server.handler.unhang.set()
            server.controller.stop()


def _authenticate(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp_tls_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    """STARTTLS required before anything else, AUTH required; SSL_CERT_FILE trusts its CA."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    handler = Handler()
    controller, port = _start(
        handler,
        tls_context=context,
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=_authenticate,
    )
    server = SmtpServer(handler, controller, port)
    server.ca = ca
    try:
        yield server
    finally:
        controller.stop()


# --- a newsroom to send from ------------------------------------------------------------------

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


class Newsroom:
    """A digest checkout in tmp_path: blogs.yaml, database with posts, a draft, subscribers."""

    def __init__(self, root: Path, blogs_yaml: Path, db_path: Path) -> None:
        self.root = root
        self.env: dict[str, str] = {
            "DIGEST_BLOGS": str(blogs_yaml),
            "DIGEST_DB": str(db_path),
            "DIGEST_DRAFTS": str(root / "drafts"),
            "DIGEST_OUTBOX": str(root / "outbox"),
            "DIGEST_BASE_URL": "https://digest.example.org",
        }
        if str(db_path).startswith("postgresql://"):
            # A killed sender's rows wait for its lease: seconds, not the default minute.
            self.env["DIGEST_SEND_LEASE"] = "2"
        self.blogs: BlogsFile = load_blogs(blogs_yaml)
        self.db_path = db_path
        self.conn: sqlite3.Connection = connect(db_path)
        self.now = NOW

    def settings(self, **extra: Any) -> Settings:
        values: dict[str, Any] = {k.removeprefix("DIGEST_").lower(): v for k, v in self.env.items()}
        values.update(extra)
        return Settings(**values)

    def local_feeds(self, feed_server: Any) -> None:
        """Point every feed (and every homepage, for discovery) of blogs.yaml at the local feed
        server, serving the fixture feeds: a test never touches the internet."""
        path = Path(self.env["DIGEST_BLOGS"])
        fixtures = sorted(
            p.name for p in (Path(__file__).parent.parent / "fixtures/feeds").iterdir()
        )
        count = 0

        def local(match: re.Match[str]) -> str:
            nonlocal count
            count += 1
            if match[1] == "feed":
                name = fixtures[count % len(fixtures)]
                return f"{match[1]}: {feed_server.serve_fixture(f'/{count}.xml', name)}"
            return f"{match[1]}: {feed_server.url(f'/home-{count}/')}"

        text = re.sub(r"\b(feed|homepage): (https?://\S+)", local, path.read_text())
        path.write_text(text)
        self.blogs = load_blogs(path)

    def subprocess_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
        env.update(self.env)
        return env

    def add_posts(self, per_blog: int = 2, *, at: datetime | None = None) -> None:
        at = at or self.now - timedelta(days=2)
        with transaction(self.conn):
            for b, blog in enumerate(self.blogs.blogs()):
                for i in range(per_blog):
                    post = Post(
                        id=f"{blog.id}-{int(at.timestamp()) // 60 % 65536:04x}{b:02x}{i:02x}",
                        blog=blog.id,
                        title=f"{blog.name}: post {i} — café",
                        url=f"{blog.homepage.rstrip('/')}/post-{at:%Y%m%d}-{i}",
                        author=None,
                        published=at - timedelta(hours=i),
                        first_seen=at,
                        excerpt=f"What {blog.name} wrote about, number {i}.",
                    )
                    posts_store.insert_post(
                        self.conn,
                        post,
                        key=post.url or post.id,
                        link_title=None,
                        canonical=post.url,
                        backlog=False,
                        duplicate_of=None,
                    )

    def draft(self, *, now: datetime | None = None) -> Path:
        return refresh_draft(self.settings(), self.blogs, self.conn, now=now or self.now).path

    def subscribe(
        self,
        email_address: str,
        *,
        name: str | None = None,
        categories: list[str] | None = None,
        status: str = "confirmed",
    ) -> int:
        with transaction(self.conn):
            sub = subscribers_store.insert_subscriber(
                self.conn,
                email=email_address,
                name=name,
                categories=categories,
                status=status,
                token=secrets.token_urlsafe(32),
                source="cli",
                now=self.now,
            )
        return sub.id

    def subscribe_many(self, n: int, *, start: int = 0) -> list[str]:
        addresses = [f"reader{i}@example.net" for i in range(start, start + n)]
        with transaction(self.conn):
            self.conn.executemany(
                "INSERT INTO subscribers (email, name, status, token, source, requested_at,"
                " confirmed_at) VALUES (?, ?, 'confirmed', ?, 'cli', ?, ?)",
                [
                    (a, f"Reader {i}", f"t{i:042d}", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z")
                    for i, a in enumerate(addresses, start=start)
                ],
            )
        return addresses

    def deliveries(self, issue: int = 1) -> dict[str, tuple[str, str, int]]:
        """email -> (status, message_id, attempts)."""
        rows = self.conn.execute(
            "SELECT email, status, message_id, attempts FROM deliveries WHERE issue = ?", (issue,)
        )
        return {r[0]: (r[1], r[2], r[3]) for r in rows}


@pytest.fixture
def newsroom(tmp_path: Path, blogs_yaml: Path, db_path: Path) -> Iterator[Newsroom]:
    room = Newsroom(tmp_path, blogs_yaml, db_path)
    try:
        yield room
    finally:
        room.conn.close()
