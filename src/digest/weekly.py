"""The weekly job in one call: gather, draft if there is no draft, send without asking.

`digest run --once` (cron, `make run`) and the scheduler call ``run_once``. An issue a crash
left half-sent is resumed first; the draft the curator may have edited is never overwritten.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from digest.config import BlogsFile, Settings
from digest.feeds.gather import GatherReport, gather_sync
from digest.issue.draft import current_draft, refresh_draft
from digest.send.deliver import SendSummary, send_issue, sending_issue
from digest.store import deliveries


@dataclass(slots=True)
class WeeklyOutcome:
    gathered: GatherReport
    drafted: Any  # digest.issue.draft.DraftSummary, or None when a draft already existed
    sent: SendSummary | None
    outcome: str  # sent | resumed | nothing

    def line(self) -> str:
        if self.sent is None:
            return "nothing to send: no draft was made (a quiet week?)"
        verb = "resumed" if self.sent.resumed else "sent"
        return f"issue {self.sent.issue} {verb}: {self.sent.line()}"


def run_once(
    settings: Settings, blogs: BlogsFile, conn: sqlite3.Connection, *, now: datetime
) -> WeeklyOutcome:
    gathered = gather_sync(settings, blogs, conn, now=now)
    drafted = None
    if sending_issue(conn) is None and current_draft(settings, conn) is None:
        # Gathering stamps new posts first_seen = now and the issue window is [since, until):
        # cut the draft just after, or this run's own posts would wait a week.
        drafted = refresh_draft(settings, blogs, conn, now=now + timedelta(seconds=1))
    if (
        sending_issue(conn) is None
        and current_draft(settings, conn) is None
        and not deliveries.pending_issues(conn)
    ):
        return WeeklyOutcome(gathered, drafted, None, "nothing")
    summary = send_issue(settings, blogs, conn, now=now)
    return WeeklyOutcome(gathered, drafted, summary, "resumed" if summary.resumed else "sent")
