"""Weekly issues really sent (to a real aiosmtpd) at chosen times, readers of both cadences:
what the monthly edition is composed from and sent to (tests/test_monthly*.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from ruamel.yaml import YAML

from digest.config import Settings
from digest.issue.draft import refresh_draft
from digest.send.deliver import send_issue
from digest.store import transaction

if TYPE_CHECKING:  # imported by name: plugins.smtp registers after this module
    from plugins.smtp import Newsroom, SmtpServer

# Mondays at 08:00 in Brussels (the repository's blogs.yaml schedule), as UTC.
NOVEMBER = [datetime(2026, 11, d, 7, 0, tzinfo=UTC) for d in (2, 9, 16, 23, 30)]
FIRST_OF_DECEMBER = datetime(2026, 12, 7, 7, 0, tzinfo=UTC)


class Editions:
    def __init__(self, room: Newsroom, server: SmtpServer) -> None:
        self.room = room
        self.server = server
        self.env = {**room.env, **server.env()}

    def settings(self, **extra: Any) -> Settings:
        values = {k.removeprefix("DIGEST_").lower(): v for k, v in self.server.env().items()}
        return self.room.settings(**values, **extra)

    def weekly(self, when: datetime, *, notes: dict[int, str] | None = None) -> int:
        """A weekly issue of one new post per blog, drafted and sent at ``when``; ``notes``:
        the curator's note on the draft's n-th post. Returns its number."""
        room = self.room
        room.add_posts(1, at=when - timedelta(days=1))
        settings = self.settings()
        path = refresh_draft(settings, room.blogs, room.conn, now=when).path
        if notes:
            annotate(path, notes)
        summary = send_issue(settings, room.blogs, room.conn, now=when)
        assert summary.finished and summary.issue is not None
        return summary.issue

    def readers(self, weekly: int, monthly: int) -> tuple[list[str], list[str]]:
        """Confirmed readers of each cadence: (weekly addresses, monthly addresses)."""
        room = self.room
        weekly_readers = room.subscribe_many(weekly, start=0)
        monthly_readers = room.subscribe_many(monthly, start=10_000)
        with transaction(room.conn):
            room.conn.executemany(
                "UPDATE subscribers SET cadence = 'monthly' WHERE email = ?",
                [(a,) for a in monthly_readers],
            )
        return weekly_readers, monthly_readers

    def copies(self, since: int = 0) -> dict[str, int]:
        out: dict[str, int] = {}
        for received in self.server.messages[since:]:
            for rcpt in received.rcpt_tos:
                out[rcpt] = out.get(rcpt, 0) + 1
        return out


def annotate(path: Path, notes: dict[int, str]) -> None:
    """Edit a draft as the curator does: a note on some posts, the rest untouched."""
    yaml = YAML(typ="rt")
    doc = yaml.load(path.read_text(encoding="utf-8"))
    for index, note in notes.items():
        doc["posts"][index]["note"] = note
    with path.open("w", encoding="utf-8") as out:
        yaml.dump(doc, out)


@pytest.fixture
def editions(newsroom: Newsroom, smtp_server: SmtpServer) -> Iterator[Editions]:
    yield Editions(newsroom, smtp_server)
