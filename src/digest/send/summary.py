"""What happened to one issue's sending: a plain value for the CLI, reports and the scheduler."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class SendSummary:
    """Totals over all runs, as kept in the database, plus what this run did."""

    issue: int | None
    subject: str = ""
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

    def line(self) -> str:
        return (
            f"sent {self.sent}, deferred {self.deferred}, bounced {self.bounced}, "
            f"skipped {self.skipped}" + (f", failed {self.failed}" if self.failed else "")
        )

    def stop_line(self) -> str:
        """The one line a stopped send ends with."""
        return f"stopped: {self.sent_now} sent, {self.left} left; run `digest send` to resume"
