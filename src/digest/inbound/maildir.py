"""DIGEST_INBOX: a Maildir the curator's own mail setup fills, read at every gathering.

Each message in ``new/`` (and each one in ``cur/`` not yet flagged Seen, where a mail client may
have moved it) is processed once, then renamed into ``cur/`` with the Seen flag (the Maildir
convention: ``<name>:2,S``); the database also knows it by its Message-ID, so a second reader or
a crash between the two changes nothing. A message that cannot be read (or is larger than
DIGEST_FETCH_MAX_BYTES, the cap `digest inbound` applies too) is left where it is and named in
the report; a Maildir that is missing is one error line, never a failed gathering.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from email.parser import BytesHeaderParser
from email.policy import default
from pathlib import Path

from digest.config import BlogsFile, Settings
from digest.errors import StoreError
from digest.inbound.receive import INBOX_ADDRESS, Received, receive
from digest.inbound.verify import DnsFunc
from digest.store.db import Connection, DbError

# Where a delivering mail system writes the address a message came in for.
_ADDRESS_HEADERS = ("delivered-to", "x-original-to", "envelope-to", "to", "cc")


@dataclass(slots=True)
class InboxReport:
    received: list[Received] = field(default_factory=list)
    error: str | None = None  # the Maildir could not be read
    unreadable: list[str] = field(default_factory=list)  # messages left for the next run

    def new_posts(self, blog: str) -> int:
        return sum(
            1 for r in self.received if r.blog == blog and r.status == "post" and not r.repeated
        )


def read_inbox(
    settings: Settings,
    blogs: BlogsFile,
    conn: Connection,
    *,
    now: datetime,
    dnsfunc: DnsFunc | None = None,
) -> InboxReport:
    report = InboxReport()
    inbox = settings.inbox
    if inbox is None:
        return report
    try:
        waiting = _waiting(inbox)
    except OSError as exc:
        report.error = f"DIGEST_INBOX {inbox}: {exc.strerror or exc}: not a readable Maildir"
        return report
    for path in waiting:
        try:
            if path.stat().st_size > settings.fetch_max_bytes:
                report.unreadable.append(f"{path.name}: larger than DIGEST_FETCH_MAX_BYTES")
                continue
            raw = path.read_bytes()
        except FileNotFoundError:  # another reader took it
            continue
        except OSError as exc:
            report.unreadable.append(f"{path.name}: {exc.strerror or exc}")
            continue
        try:
            received = receive(
                conn,
                blogs,
                raw,
                now=now,
                base_url=settings.base_url,
                to=_address(raw),
                dnsfunc=dnsfunc,
            )
        except (StoreError, *DbError):
            raise  # the database, not this message: gathering reports it
        except Exception as exc:  # noqa: BLE001 - one odd message must not stop the others
            report.unreadable.append(f"{path.name}: internal error: {type(exc).__name__}: {exc}")
            continue
        report.received.append(received)
        _mark_seen(inbox, path)
    return report


def _waiting(inbox: Path) -> list[Path]:
    """The messages not yet processed, oldest name first (names start with the time)."""
    found = [inbox / "new" / name for name in os.listdir(inbox / "new")]
    found += [
        inbox / "cur" / name
        for name in os.listdir(inbox / "cur")
        if "S" not in name.partition(":2,")[2]
    ]
    return sorted((p for p in found if not p.name.startswith(".")), key=lambda p: p.name)


def _address(raw: bytes) -> str | None:
    head = BytesHeaderParser(policy=default).parsebytes(raw)
    for name in _ADDRESS_HEADERS:
        for value in head.get_all(name) or []:
            try:
                addresses = [a.addr_spec for a in value.addresses]
            except AttributeError:  # an unparsable header: a plain string
                addresses = str(value).replace("<", " ").replace(">", " ").split()
            for address in addresses:
                if INBOX_ADDRESS.match(address):
                    return str(address)
    return None


def _mark_seen(inbox: Path, path: Path) -> None:
    base, _, flags = path.name.partition(":2,")
    flags = "".join(sorted(set(flags) | {"S"}))
    try:
        os.rename(path, inbox / "cur" / f"{base}:2,{flags}")
    except FileNotFoundError:
        pass  # another reader moved it; the database knows the message either way
