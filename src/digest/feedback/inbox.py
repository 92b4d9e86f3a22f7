"""`digest bounces`: the delivery reports and complaints waiting in a Maildir or IMAP folder.

Each message is read (digest.feedback.reports) and its events applied; a message applied (or
with nothing to act on, such as a 'delayed' DSN) leaves the unread set, so the next run reads
only new ones: a Maildir's message moves from new/ to cur/ (flag S), an IMAP message is marked
\\Seen. A message that is no report stays where it is, listed for a human.
"""

from __future__ import annotations

import imaplib
import os
import re
import ssl
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from digest.errors import ConfigError, DigestError
from digest.feedback import reports
from digest.feedback.apply import apply
from digest.feedback.model import Kind
from digest.store.db import Connection

MAX_MESSAGE = 10 * 1024 * 1024  # a bounce returning a huge message is read up to here


class Folder(Protocol):
    def unread(self) -> Iterator[tuple[str, bytes]]: ...
    def done(self, key: str) -> None: ...
    def close(self) -> None: ...


class Maildir:
    def __init__(self, path: Path) -> None:
        if not (path / "new").is_dir() or not (path / "cur").is_dir():
            raise ConfigError(
                f"{path} is not a Maildir (no new/ and cur/ in it)",
                hint="give the folder your MTA delivers the bounce address to",
            )
        self.path = path

    def unread(self) -> Iterator[tuple[str, bytes]]:
        for name in sorted(os.listdir(self.path / "new")):
            if name.startswith("."):
                continue
            with open(self.path / "new" / name, "rb") as handle:
                yield name, handle.read(MAX_MESSAGE)

    def done(self, key: str) -> None:
        os.replace(self.path / "new" / key, self.path / "cur" / f"{key}:2,S")

    def close(self) -> None:
        pass


class Imap:
    """``imaps://user@host[:port]/folder`` (TLS), or ``imap://`` (STARTTLS; plain text only
    to a loopback address)."""

    def __init__(self, url: str, password: str | None, *, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("imap", "imaps") or not parts.hostname or not parts.username:
            raise ConfigError(
                f"{url!r} is not an IMAP folder URL",
                hint="use imaps://user@imap.example.org/INBOX (the password in "
                "DIGEST_BOUNCES_IMAP_PASSWORD)",
            )
        if password is None:
            raise ConfigError(
                f"no password for {parts.username}@{parts.hostname}",
                hint="set DIGEST_BOUNCES_IMAP_PASSWORD",
            )
        host, user = parts.hostname, unquote(parts.username)
        folder = unquote(parts.path.lstrip("/")) or "INBOX"
        try:
            if parts.scheme == "imaps":
                self.imap: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                    host,
                    parts.port or 993,
                    ssl_context=ssl.create_default_context(),
                    timeout=timeout,
                )
            else:
                self.imap = imaplib.IMAP4(host, parts.port or 143, timeout=timeout)
                if "STARTTLS" in self.imap.capabilities:
                    self.imap.starttls(ssl.create_default_context())
                elif host not in ("127.0.0.1", "::1", "localhost"):
                    raise ConfigError(f"{host} offers no STARTTLS", hint="use imaps://")
            self.imap.login(user, password)
            status, _ = self.imap.select(_quoted(folder))
            if status != "OK":
                raise ConfigError(f"no IMAP folder {folder!r} at {host}", hint="check the URL")
        except (imaplib.IMAP4.error, OSError, ConfigError) as exc:
            if hasattr(self, "imap"):
                self.imap.shutdown()
            if isinstance(exc, ConfigError):
                raise
            raise DigestError(
                f"IMAP {host}: {exc}", hint="check the URL, the password and the server"
            ) from None

    def unread(self) -> Iterator[tuple[str, bytes]]:
        _, found = self.imap.uid("SEARCH", "UNSEEN")
        for uid in (found[0] or b"").decode().split():
            _, data = self.imap.uid("FETCH", uid, "(BODY.PEEK[])")
            raw = next((item[1] for item in data if isinstance(item, tuple)), b"")
            yield uid, raw[:MAX_MESSAGE]

    def done(self, key: str) -> None:
        self.imap.uid("STORE", key, "+FLAGS", "(\\Seen)")

    def close(self) -> None:
        try:
            self.imap.close()
            self.imap.logout()
        except (imaplib.IMAP4.error, OSError):
            pass


def _quoted(folder: str) -> str:
    return (
        folder
        if re.fullmatch(r"[A-Za-z0-9._/-]+", folder)
        else '"' + folder.replace('"', r"\"") + '"'
    )


@dataclass
class Summary:
    kinds: Counter[str] = field(default_factory=Counter)  # hard | soft | policy | complaint
    outcomes: Counter[str] = field(default_factory=Counter)
    reports: int = 0
    nothing_to_do: int = 0  # delayed DSNs, warnings, not-spam reports
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (key, why)
    policy: list[str] = field(default_factory=list)  # for the curator


def collect(
    conn: Connection,
    folder: Folder,
    *,
    bounce_address: str | None,
    id_domain: str,
    now: datetime,
    dry_run: bool = False,
) -> Summary:
    summary = Summary()
    for key, raw in folder.unread():
        try:
            events = reports.read(raw, bounce_address=bounce_address, id_domain=id_domain)
        except reports.NotAReport as exc:
            summary.unreadable.append((key, str(exc)))
            continue
        summary.reports += 1
        if not events:
            summary.nothing_to_do += 1
        for event in events:
            summary.kinds[event.kind] += 1
            if event.kind == Kind.POLICY:
                summary.policy.append(f"{event.recipient or '?'}: {event.detail}")
            if not dry_run:
                summary.outcomes[apply(conn, event, now=now).outcome] += 1
        if not dry_run:
            folder.done(key)
    return summary
