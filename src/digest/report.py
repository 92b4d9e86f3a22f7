"""Short plain-text mails to the curator when something needs their attention.

Built as pure functions of what happened (testable with values); `send_report` mails them to
the newsletter's reply-to address and never lets a failed report hide the original problem.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Protocol

from digest.config import BlogsFile, Settings
from digest.errors import DigestError
from digest.send.summary import SendSummary
from digest.send.transactional import send_mail
from digest.store.db import Connection, log_event


@dataclass(slots=True)
class Report:
    subject: str
    text: str


def run_failed(error: BaseException, *, what: str) -> Report:
    if isinstance(error, DigestError):
        detail = error.message + (f"\nHint: {error.hint}" if error.hint else "")
    else:
        detail = f"{type(error).__name__}: {error}"
    return Report(
        subject=f"digest: the weekly job failed ({what})",
        text=(
            f"The weekly job stopped while it was {what}:\n\n{detail}\n\n"
            "Nothing was sent twice: deliveries are recorded one by one. What to do:\n"
            "- run `digest status` to see where things stand;\n"
            "- fix the cause above, then run `digest run --once` (or wait for the next slot;\n"
            "  the scheduler catches up on its own).\n"
        ),
    )


class FeedOutcome(Protocol):
    blog: str
    url: str | None
    status: str
    failures: int
    error: str | None


def failing_feeds(
    results: Sequence[FeedOutcome], blogs: BlogsFile, *, threshold: int
) -> Report | None:
    """Feeds of this run that just reached `threshold` consecutive failures, or answered 410.

    Only the run that crosses the threshold reports a feed, so a dead feed mails once, not
    every week (a gone feed is not polled again, so it reports once too).
    """
    names = {b.id: b.name for b in blogs.blogs()}
    crossing = [s for s in results if s.status == "error" and s.failures == threshold]
    gone = [s for s in results if s.status == "gone"]
    if not crossing and not gone:
        return None
    lines = []
    for s in crossing:
        lines.append(f"- {names.get(s.blog, s.blog)} ({s.url}): failed {s.failures} runs in a row")
        lines.append(f"  last error: {s.error}")
    for s in gone:
        lines.append(f"- {names.get(s.blog, s.blog)} ({s.url}): the server says the feed is gone")
    return Report(
        subject=f"digest: {len(crossing) + len(gone)} feed(s) need a look",
        text=(
            "Some feeds keep failing. digest keeps trying (with growing pauses) and never drops\n"
            "a blog on its own.\n\n" + "\n".join(lines) + "\n\n"
            "What to do: open the blog's homepage; if the feed moved, put the new URL in\n"
            "blogs.yaml (or run `digest feeds discover URL`). `digest feeds check` retries now.\n"
        ),
    )


def send_trouble(summary: SendSummary) -> Report | None:
    if not summary.deferred and not summary.bounced and not summary.failed:
        return None
    return Report(
        subject=f"digest: {summary.edition} sent with problems",
        text=(
            f"{summary.edition.capitalize()} ({summary.subject}): {summary.line()}.\n\n"
            f"- deferred: the mail server said 'try later' (or could not be reached); the next\n"
            f"  `digest send` or scheduled run retries them with the same Message-ID.\n"
            f"- bounced: the server refused the address for good; those subscribers are\n"
            f"  suppressed and get nothing more (`digest subscribers list --status bounced`).\n"
        ),
    )


def policy_refusals(refusals: Sequence[str], *, target: str) -> Report:
    """5.7.x refusals (a blocklisting, DMARC, spam): the sender's problem, never the readers'.
    Mailed once per send; the deliveries stay deferred and the readers subscribed."""
    shown = "\n".join(f"- {line}" for line in refusals[:20])
    more = f"\n- ... and {len(refusals) - 20} more" if len(refusals) > 20 else ""
    return Report(
        subject=f"digest: {len(refusals)} message(s) refused for policy reasons",
        text=(
            f"The mail server refused {len(refusals)} message(s) for policy or reputation\n"
            f"reasons (RFC 3463 class 5.7). This is about the sending server, not the readers:\n"
            f"nobody was unsubscribed, and the next `digest send` tries them again.\n\n"
            f"Sent through: {target}\n\n{shown}{more}\n\n"
            "What to do:\n"
            "- a blocklisting ('blocked using ...', Spamhaus and the like): look the sending IP\n"
            "  up on that list's site and follow its delisting steps, or send through your\n"
            "  provider's relay (DIGEST_SMTP_HOST, or another in DIGEST_SMTP_HOSTS);\n"
            "- 5.7.26 or 'DMARC': check SPF and DKIM for the From domain (README: DNS);\n"
            "- 'spam' or 'content': check the issue with `digest preview --check`.\n"
        ),
    )


def send_report(
    settings: Settings, blogs: BlogsFile, conn: Connection, report: Report
) -> bool:
    """Mail the curator; on failure record it in the events log instead of raising."""
    newsletter = blogs.newsletter
    try:
        send_mail(
            settings,
            newsletter,
            to=parseaddr(newsletter.reply_to)[1],
            subject=report.subject,
            text=report.text,
        )
    except DigestError as exc:
        log_event(conn, "report_failed", f"{report.subject}: {exc.message}")
        return False
    log_event(conn, "report", report.subject)
    return True
