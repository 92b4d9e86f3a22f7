from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from digest.config import load_blogs
from digest.errors import DraftError
from digest.models import FeedState
from digest.report import failing_feeds, run_failed, send_trouble
from digest.send.deliver import SendSummary

ROOT = Path(__file__).resolve().parent.parent
BLOGS = load_blogs(ROOT / "blogs.yaml")
NOW = datetime(2026, 3, 2, tzinfo=UTC)


def state(blog: str, status: str, failures: int, error: str | None = None) -> FeedState:
    return FeedState(
        blog=blog,
        url=f"https://{blog}.example.org/feed",
        status=status,
        http_status=None,
        error=error,
        failures=failures,
        last_fetch=NOW,
        last_success=None,
        next_poll=None,
    )


def test_a_failing_feed_is_reported_once_when_it_crosses_the_threshold() -> None:
    assert failing_feeds([state("xxiivv", "error", 2, "timed out")], BLOGS, threshold=3) is None
    report = failing_feeds(
        [state("xxiivv", "error", 3, "timed out after 20 s")], BLOGS, threshold=3
    )
    assert report is not None
    assert "XXIIVV" in report.text and "timed out after 20 s" in report.text
    assert "blogs.yaml" in report.text  # says what to do
    assert failing_feeds([state("xxiivv", "error", 4, "timed out")], BLOGS, threshold=3) is None


def test_a_gone_feed_is_reported() -> None:
    report = failing_feeds([state("chris-olah", "gone", 1)], BLOGS, threshold=3)
    assert report is not None and "Chris Olah" in report.text and "gone" in report.text


def test_send_trouble_only_when_something_went_wrong() -> None:
    assert send_trouble(SendSummary(issue=3, subject="S", sent=10)) is None
    report = send_trouble(SendSummary(issue=3, subject="S", sent=8, deferred=1, bounced=1))
    assert report is not None and report.subject == "digest: issue 3 sent with problems"
    assert "deferred 1, bounced 1" in report.text and "suppressed" in report.text


def test_run_failed_carries_the_message_and_hint() -> None:
    error = DraftError("not valid YAML", path="drafts/4.yaml", line=7, hint="check the quoting")
    report = run_failed(error, what="running the weekly job")
    assert "drafts/4.yaml, line 7: not valid YAML" in report.text
    assert "Hint: check the quoting" in report.text
