"""What happened to one issue's sending: a plain value for the CLI, reports and the scheduler."""

from __future__ import annotations

from dataclasses import dataclass, field


def edition_name(number: int | None, month: str | None) -> str:
    """An edition as the curator knows it: "issue 12", or "monthly edition 2026-11" (its key in
    the ledger, 202611, is no issue number anyone chose)."""
    return f"issue {number}" if month is None else f"monthly edition {month}"


@dataclass(slots=True)
class SendSummary:
    """Totals over all runs, as kept in the database, plus what this run did."""

    issue: int | None
    subject: str = ""
    month: str | None = None  # 'YYYY-MM': the monthly edition of that month; None: weekly
    sent: int = 0
    deferred: int = 0
    bounced: int = 0
    skipped: int = 0
    failed: int = 0
    queued: int = 0  # not tried yet (or claimed when a stop came)
    audience: int = 0
    sent_now: int = 0  # sent by this run
    resumed: bool = False
    finished: bool = False  # nothing left queued or sending
    dry_run: bool = False
    target: str = ""
    commits: int = 0
    seconds: float = 0.0
    policy: list[str] = field(default_factory=list)  # 5.7.x refusals of this run

    @property
    def left(self) -> int:
        return self.queued + self.deferred

    @property
    def edition(self) -> str:
        return edition_name(self.issue, self.month)

    def line(self) -> str:
        return (
            f"sent {self.sent}, deferred {self.deferred}, bounced {self.bounced}, "
            f"skipped {self.skipped}" + (f", failed {self.failed}" if self.failed else "")
        )

    def stop_line(self) -> str:
        """The one line a stopped send ends with."""
        which = "" if self.month is None else f" of the {self.edition}"
        return (
            f"stopped: {self.sent_now} sent, {self.left} left{which}; "
            "run `digest send` to resume"
        )
