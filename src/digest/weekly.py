"""The weekly job: gather, draft, honour a hold and quiet weeks, send, tell the curator.

`digest run --once` (cron, `make run`) and the scheduler both call ``run_once``; the scheduler
also calls ``review`` ahead of a slot in review mode. One job runs at a time (the job lock), and
sending keeps its own lock, so a manual `digest send` and the job never both send.

After the weekly issue, the first run of a month drafts the monthly edition of the month before
(issue/monthly.py) and sends it unless it is held; later runs of the month catch it up if that
failed. A month with no weekly issue sent has no edition, and the run says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import make_msgid, parseaddr

from digest import report
from digest.config import BlogsFile, Settings
from digest.errors import ConfigError, DraftError
from digest.feeds.gather import GatherReport, gather_sync
from digest.issue import monthly
from digest.issue.draft import DraftSummary, current_draft, load_issue, refresh_draft
from digest.models import Issue
from digest.send.deliver import SendSummary, send_issue, sending_issue
from digest.send.lock import job_lock
from digest.store import deliveries, runs, transaction
from digest.store import issues as issues_store
from digest.store.db import Connection, get_meta, log_event, set_meta

HOLD_KEY = "hold"
MONTHLY_HOLD_KEY = "hold_monthly"


@dataclass(slots=True)
class WeeklyOutcome:
    gathered: GatherReport
    drafted: DraftSummary | None
    sent: SendSummary | None
    outcome: str  # sent | resumed | skipped | held | nothing
    issue: int | None = None
    reason: str = ""
    monthly: str = ""  # what became of the monthly edition, in words; "": not its time
    monthly_sent: SendSummary | None = None
    monthly_error: DraftError | None = None  # its draft is broken: mailed to the curator

    def line(self) -> str:
        if self.sent is not None:
            verb = "resumed" if self.sent.resumed else "sent"
            line = f"{self.sent.edition} {verb}: {self.sent.line()}"
        else:
            line = self.reason or "nothing to send"
        return f"{line}; {self.monthly}" if self.monthly else line


# --- hold and release ----------------------------------------------------------------------


def held_issue(conn: Connection) -> int | None:
    """The issue on hold, if it is still to be sent. A hold on an issue that went out since
    (a manual `digest send`) is spent: `digest release` must not send the next draft."""
    value = get_meta(conn, HOLD_KEY)
    if value is None or int(value) < issues_store.next_number(conn):
        return None
    return int(value)


def hold(conn: Connection) -> int:
    """Keep the next issue from going out at its slot; returns its number.

    The hold names the issue number, not a draft file: placed before the draft exists, it
    holds the issue the next run drafts (drafts are numbered by the next issue too)."""
    number = issues_store.next_number(conn)
    _place_hold(conn, HOLD_KEY, str(number), f"issue {number}")
    return number


def release(conn: Connection) -> int | None:
    """Lift the hold; returns the issue it held (None if nothing was held)."""
    number = held_issue(conn)
    _lift_hold(conn, HOLD_KEY, None if number is None else f"issue {number}")
    return number


def due_month(settings: Settings, blogs: BlogsFile, conn: Connection, *, now: datetime) -> str:
    """The month whose monthly edition goes out next: the monthly draft's, else last month's
    unless it went out, else this month's."""
    current = monthly.current_month(settings, conn)
    if current is not None:
        return current
    zone = blogs.newsletter.schedule.tz
    last = monthly.previous_month(now, zone)
    return last if issues_store.get_monthly(conn, last) is None else monthly.month_of(now, zone)


def held_month(conn: Connection) -> str | None:
    """The month whose monthly edition is on hold, while it is still to be sent."""
    value = get_meta(conn, MONTHLY_HOLD_KEY)
    if value is None or issues_store.get_monthly(conn, value) is not None:
        return None
    return value


def hold_monthly(settings: Settings, blogs: BlogsFile, conn: Connection, *, now: datetime) -> str:
    """Keep the next monthly edition from going out at its slot; returns its month."""
    month = due_month(settings, blogs, conn, now=now)
    _place_hold(conn, MONTHLY_HOLD_KEY, month, f"monthly edition {month}")
    return month


def release_monthly(conn: Connection) -> str | None:
    """Lift the monthly hold; returns the month it held (None if nothing was held)."""
    month = held_month(conn)
    _lift_hold(conn, MONTHLY_HOLD_KEY, None if month is None else f"monthly edition {month}")
    return month


def _place_hold(conn: Connection, key: str, value: str, what: str) -> None:
    with transaction(conn):
        set_meta(conn, key, value)
        log_event(conn, "hold", f"{what} held")


def _lift_hold(conn: Connection, key: str, what: str | None) -> None:
    with transaction(conn):
        conn.execute("DELETE FROM meta WHERE key = ?", (key,))
        if what is not None:
            log_event(conn, "release", f"{what} released")


# --- the job ---------------------------------------------------------------------------------


def run_once(
    settings: Settings,
    blogs: BlogsFile,
    conn: Connection,
    *,
    now: datetime,
    slot: datetime | None = None,
) -> WeeklyOutcome:
    """One run of the weekly job, recorded in `runs` (under `slot` when the scheduler runs it).

    Any failure is recorded, mailed to the curator, and raised again.
    """
    with job_lock(settings):
        with transaction(conn):
            run_id = runs.start_run(conn, slot, now=now)
        try:
            result = _job(settings, blogs, conn, now=now)
        except Exception as exc:
            with transaction(conn):
                runs.finish_run(conn, run_id, "failed", now=now, error=str(exc))
            failure = report.run_failed(exc, what="running the weekly job")
            report.send_report(settings, blogs, conn, failure)
            raise
        with transaction(conn):
            runs.finish_run(conn, run_id, result.outcome, now=now, issue=result.issue)
        _report_trouble(settings, blogs, conn, result)
        # Once the run's outcome is recorded, the issues sent by now tell their featured posts
        # (and earlier 429s and 5xx are retried). It never raises: a receiver cannot fail a run.
        from digest.webmention import after_send

        after_send(settings, blogs, conn, now=now)
        return result


def _job(
    settings: Settings, blogs: BlogsFile, conn: Connection, *, now: datetime
) -> WeeklyOutcome:
    result = _weekly(settings, blogs, conn, now=now)
    try:
        result.monthly, result.monthly_sent = _monthly(settings, blogs, conn, now=now)
    except DraftError as exc:
        # The weekly issue went out: a broken monthly draft must not fail the run (a failed
        # run is retried, and would draft and send the next weekly issue early).
        result.monthly = f"the monthly edition was not sent: {exc}"
        result.monthly_error = exc
    return result


def first_of_month(moment: datetime, blogs: BlogsFile) -> bool:
    """The first weekly slot of its month: a week earlier was the month before."""
    zone = blogs.newsletter.schedule.tz
    return monthly.month_of(moment - timedelta(days=7), zone) != monthly.month_of(moment, zone)


def _monthly(
    settings: Settings, blogs: BlogsFile, conn: Connection, *, now: datetime
) -> tuple[str, SendSummary | None]:
    """The monthly edition of last month, if it has not gone out: drafted if there is no draft
    (the curator's edits stay), then sent unless held."""
    month = monthly.previous_month(now, blogs.newsletter.schedule.tz)
    name = f"the monthly edition of {monthly.label(month)}"
    if issues_store.get_monthly(conn, month) is not None:
        return "", None
    if not monthly.draft_path(settings, month).is_file():
        drafted = monthly.refresh_monthly(settings, blogs, conn, month=month)
        if drafted.path is None:
            return (drafted.reason if first_of_month(now, blogs) else ""), None
    if held_month(conn) == month:
        return f"{name} is held: `digest release --monthly` sends it", None
    summary = send_issue(settings, blogs, conn, now=now, month=month)
    return f"{name} sent: {summary.line()}", summary


def _weekly(
    settings: Settings, blogs: BlogsFile, conn: Connection, *, now: datetime
) -> WeeklyOutcome:
    gathered = gather_sync(settings, blogs, conn, now=now)
    if sending_issue(conn) is not None:
        # A crash left an issue half-sent: finish it (same Message-IDs), nothing else this run.
        summary = send_issue(settings, blogs, conn, now=now)
        return WeeklyOutcome(gathered, None, summary, "resumed", summary.issue)

    number = issues_store.next_number(conn)
    drafted = None
    # Draft only when there is none: a draft the curator reviewed must not grow posts they
    # never saw. A draft kept from a quiet week is the exception: it gathers the new posts.
    if current_draft(settings, conn) is None or runs.skipped_weeks(conn, number):
        drafted = refresh_draft(settings, blogs, conn, now=now)

    if held_issue(conn) == number:
        return _nothing(settings, blogs, conn, gathered, drafted, now, "held", number,
                        f"issue {number} is held: `digest release` sends it")  # fmt: skip
    issue = load_issue(settings, blogs, conn)
    quiet = _quiet(issue, blogs)
    if quiet:
        return _nothing(settings, blogs, conn, gathered, drafted, now, "skipped", number, quiet)
    summary = send_issue(settings, blogs, conn, now=now)
    return WeeklyOutcome(gathered, drafted, summary, "sent", summary.issue)


def quiet_week(issue: Issue, blogs: BlogsFile) -> str:
    """Why the scheduler would skip this issue as a quiet week, or '' to send it.

    The rule of `min_posts` and `quiet_week`: the scheduler, `run --once` and `digest release`
    all apply it (release unless --force)."""
    newsletter = blogs.newsletter
    if len(issue.posts) >= newsletter.min_posts:
        return ""
    if newsletter.quiet_week == "archive_only" and issue.archive_pick is not None:
        return ""
    return (
        f"a quiet week: {len(issue.posts)} new post(s), fewer than min_posts "
        f"({newsletter.min_posts})"
    )


def _quiet(issue: Issue, blogs: BlogsFile) -> str:
    reason = quiet_week(issue, blogs)
    if not reason:
        return ""
    return f"{reason}; issue {issue.number} keeps its draft and next week's posts join it"


def require_base_url(settings: Settings) -> None:
    """Refuse to mail readers through an SMTP server while DIGEST_BASE_URL was never set: every
    link in those mails, the unsubscribe link first, would point at the default localhost
    address. The Maildir outbox (no SMTP host) is for trying digest out and is not refused."""
    relays = settings.smtp_relays
    if relays and not settings.base_url_set:
        raise ConfigError(
            f"DIGEST_BASE_URL is not set: mails sent through {relays[0].host} would carry "
            f"links to {settings.base_url}, so no reader could unsubscribe",
            hint="set DIGEST_BASE_URL (environment or .env) to the public address of "
            "`digest serve`, such as https://digest.example.org (`digest send`, `release` and "
            "`run` take --force to send anyway)",
        )


def _nothing(
    settings: Settings,
    blogs: BlogsFile,
    conn: Connection,
    gathered: GatherReport,
    drafted: DraftSummary | None,
    now: datetime,
    outcome: str,
    number: int,
    reason: str,
) -> WeeklyOutcome:
    """No new issue goes out; deliveries deferred from earlier issues are still retried."""
    summary = None
    if deliveries.pending_issues(conn):
        summary = send_issue(settings, blogs, conn, now=now)
    result = WeeklyOutcome(gathered, drafted, None, outcome, number, reason)
    if summary is not None:
        result.reason += f"; retried earlier deliveries: {summary.line()}"
    return result


def _report_trouble(
    settings: Settings, blogs: BlogsFile, conn: Connection, result: WeeklyOutcome
) -> None:
    mails = [
        report.failing_feeds(
            result.gathered.results, blogs, threshold=blogs.newsletter.report_after_failures
        ),
        report.send_trouble(result.sent) if result.sent is not None else None,
        report.send_trouble(result.monthly_sent) if result.monthly_sent is not None else None,
        _monthly_trouble(result.monthly_error) if result.monthly_error is not None else None,
    ]
    for mail in mails:
        if mail is not None:
            report.send_report(settings, blogs, conn, mail)


def _monthly_trouble(error: DraftError) -> report.Report:
    hint = f"\nHint: {error.hint}" if error.hint else ""
    return report.Report(
        subject="digest: the monthly edition was not sent",
        text=(
            f"The weekly issue went out; the monthly edition did not:\n\n{error}{hint}\n\n"
            "Fix the draft, then `digest preview --monthly` and `digest send --monthly` (or wait "
            "for the next run, which sends it).\n"
        ),
    )


# --- review mode ------------------------------------------------------------------------------


def _monthly_note(settings: Settings, blogs: BlogsFile, conn: Connection, *, slot: datetime) -> str:
    """What the slot does with the monthly edition of the month before, drafting it now (the
    curator edits it like the weekly draft); "" when it is not its time."""
    month = monthly.previous_month(slot, blogs.newsletter.schedule.tz)
    if issues_store.get_monthly(conn, month) is not None:
        return ""
    path = monthly.draft_path(settings, month)
    if not path.is_file():
        drafted = monthly.refresh_monthly(settings, blogs, conn, month=month)
        if drafted.path is None:
            said = f"{drafted.reason[0].upper()}{drafted.reason[1:]}.\n"
            return said if first_of_month(slot, blogs) else ""
    edition = monthly.load_monthly(settings, blogs, conn, month)
    when = (
        "is held: it waits for `digest release --monthly`"
        if held_month(conn) == month
        else "goes out after this issue unless you run `digest hold --monthly`"
    )
    return (
        f"The monthly edition, {edition.subject!r}, {when}; to "
        f"{deliveries.confirmed_readers(conn, 'monthly')} monthly reader(s).\n"
        f"Monthly draft: {path} ({len(edition.posts)} posts): `digest preview --monthly` "
        "to check.\n"
    )


def review(
    settings: Settings,
    blogs: BlogsFile,
    conn: Connection,
    *,
    now: datetime,
    slot: datetime,
) -> DraftSummary:
    """Draft ahead of `slot` and mail the curator the issue as subscribers will get it, with the
    feed-health notes they alone see."""
    from digest.clickstats import review_lines
    from digest.render import render_issue
    from digest.send.message import MessageTemplate, date_header, message_id, wire_address
    from digest.send.transport import deliver_one

    with job_lock(settings):
        gather_sync(settings, blogs, conn, now=now)
        summary = refresh_draft(settings, blogs, conn, now=now)
        issue = load_issue(settings, blogs, conn)
        newsletter = blogs.newsletter
        curator = parseaddr(newsletter.reply_to)[1]
        domain = newsletter.from_address.rpartition("@")[2]
        rendered = render_issue(
            issue, blogs, base_url=settings.base_url, templates=settings.templates
        )
        preview = MessageTemplate.build(
            rendered, newsletter=newsletter, settings=settings, issue_number=issue.number
        ).message(
            to=curator,
            name=newsletter.curator,
            token="review" + "0" * 37,
            message_id=message_id(domain),
            subject_prefix="[Review] ",
        )
        local = slot.astimezone(newsletter.schedule.tz)
        health = "\n".join(f"- {note.text}" for note in summary.health) or "- every feed is fine"
        quiet = _quiet(issue, blogs)
        when = (
            "is held: it waits for `digest release`"
            if held_issue(conn) == issue.number
            else f"goes out {local:%A %d %B %H:%M %Z} unless you run `digest hold`"
        )
        note = (
            f"Issue {issue.number} {when}.\n"
            + (f"It will be skipped: {quiet}.\n" if quiet else "")
            + _monthly_note(settings, blogs, conn, slot=slot)
            + f"\nDraft: {summary.path} ({len(issue.posts)} posts). Edit it, then "
            "`digest preview` to check.\n\n"
            f"Feed health (for you only, never in the issue):\n{health}\n\n"
            + (review_lines(conn) if newsletter.click_counts else "")
            + "The attached message is the issue exactly as subscribers will get it.\n"
        )
        to = wire_address(curator)  # never RFC 2047 encoded: see send/transactional.py
        mail = EmailMessage(policy=SMTP if to.isascii() else SMTP.clone(utf8=True))
        mail["From"] = newsletter.from_
        mail["To"] = to
        mail["Subject"] = f"[Review] issue {issue.number}: {issue.subject}"
        mail["Date"] = date_header()
        mail["Message-ID"] = make_msgid(domain=domain)
        mail["Auto-Submitted"] = "auto-generated"
        mail.set_content(note, cte="quoted-printable")
        mail.add_attachment(message_from_bytes(preview, policy=SMTP))
        deliver_one(settings, sender=newsletter.from_address, to=to, message=mail.as_bytes())
        with transaction(conn):
            runs.mark_reviewed(conn, slot, now=now)
        return summary
