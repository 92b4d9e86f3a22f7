"""`digest status`: where things stand, as one plain dict (printed as a table or as JSON).

Every key is always there: a part that is off (webmentions, click counts) is null, a part
with nothing yet (no issue, no draft) too, so a script reading the JSON never guesses.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from digest.clickstats import issue_clicks
from digest.config import BlogsFile, Settings
from digest.errors import DraftError
from digest.issue import monthly
from digest.issue.draft import current_draft, load_issue
from digest.models import Issue
from digest.schedule import next_slot
from digest.store import deliveries, runs
from digest.store import feedback as feedback_store
from digest.store import feeds as feeds_store
from digest.store import inbound as inbound_store
from digest.store import issues as issues_store
from digest.store import subscribers as subscribers_store
from digest.store import webmentions as webmentions_store
from digest.store.db import Connection
from digest.store.issues import ArchivedIssue
from digest.weekly import due_month, held_issue, held_month

RECENT = timedelta(days=30)  # the window of the feedback, mail and webmention counts


def _at(moment: datetime, blogs: BlogsFile) -> dict[str, str]:
    local = moment.astimezone(blogs.newsletter.schedule.tz)
    return {
        "utc": moment.isoformat().replace("+00:00", "Z"),
        "local": local.strftime("%a %d %b %Y %H:%M %Z"),
    }


def _when(moment: datetime | None, blogs: BlogsFile) -> dict[str, str] | None:
    return None if moment is None else _at(moment, blogs)


def status(
    settings: Settings, blogs: BlogsFile, conn: Connection, *, now: datetime
) -> dict[str, Any]:
    newsletter = blogs.newsletter
    last = issues_store.last_issue(conn)
    slot = next_slot(newsletter.schedule, now)
    out: dict[str, Any] = {
        "last_issue": None,
        "next_run": _at(slot, blogs) | {"mode": newsletter.mode},
        "draft": None,
        "subscribers": {state: 0 for state in ("pending", "confirmed", "unsubscribed", "bounced")}
        | subscribers_store.counts_by_status(conn),
        "feeds": {},
        "last_run": None,
        # Reported after the 250 (webhooks, `digest bounces`), the last 30 days.
        "feedback": feedback_store.counts_since(conn, now - RECENT),
        "cadence": {},  # confirmed subscribers by cadence
        "monthly": {},
        "webmentions": None,  # by status, the last 30 days; None: newsletter.webmentions off
        "clicks": None,  # the latest edition counted; None: newsletter.click_counts off
    }
    if newsletter.mode == "review":
        out["next_run"]["review"] = _at(slot - timedelta(hours=newsletter.review_hours), blogs)
    if last is not None:
        out["last_issue"] = {"number": last.number} | _sent(conn, last, blogs)
    path = current_draft(settings, conn)
    if path is not None:
        number = issues_store.next_number(conn)
        out["draft"] = {
            "number": number,
            "path": str(path),
            "held": held_issue(conn) == number,
            "skipped_weeks": runs.skipped_weeks(conn, number),
        } | _contents(path, lambda: load_issue(settings, blogs, conn))
    out["cadence"] = {c: deliveries.confirmed_readers(conn, c) for c in ("weekly", "monthly")}
    out["monthly"] = _monthly(settings, blogs, conn, now=now, slot=slot)
    states = feeds_store.feed_states(conn)
    names = {b.id: b.name for b in blogs.blogs()}
    health: dict[str, Any] = {
        "total": len(names),
        "ok": 0,
        "error": 0,
        "gone": 0,
        "new": 0,
        "email": 0,
    }
    by_email = {b.id for b in blogs.blogs() if b.email is not None}  # no feed: digest/inbound
    for blog_id in names:
        state = states.get(blog_id)
        health["email" if blog_id in by_email else state.status if state else "new"] += 1
    health["failing"] = [
        {
            "blog": names.get(s.blog, s.blog),
            "status": s.status,
            "failures": s.failures,
            "error": s.error,
        }  # fmt: skip
        for s in states.values()
        if s.status in ("error", "gone") and s.blog in names and s.blog not in by_email
    ]
    # Mail for those blogs, the last 30 days: posts, quarantined, opt-in confirmations.
    health["mail"] = inbound_store.counts_since(conn, now - RECENT)
    out["feeds"] = health
    run = runs.last_run(conn)
    if run is not None:
        out["last_run"] = {
            "outcome": run.outcome,
            "finished": _when(run.finished_at, blogs),
            "issue": run.issue,
            "error": run.error,
        }
    if newsletter.webmentions:
        out["webmentions"] = webmentions_store.counts_since(conn, now - RECENT)
    if newsletter.click_counts:
        out["clicks"] = _clicks(conn, blogs)
    return out


def _sent(conn: Connection, edition: ArchivedIssue, blogs: BlogsFile) -> dict[str, Any]:
    """An edition sent or being sent: what it was, when, and its deliveries."""
    return {
        "subject": edition.subject,
        "status": edition.status,
        "date": _when(edition.sent_at or edition.created_at, blogs),
        "deliveries": deliveries.counts(conn, edition.number),
    }


def _contents(path: Path, load: Callable[[], Issue]) -> dict[str, Any]:
    """A draft's posts and subject, or what is wrong with it."""
    try:
        issue = load()
    except DraftError as exc:
        # "path" is a key of its own: the error says what is wrong where, inside the file
        where = str(path)
        error = exc.message.removeprefix(f"{where}, ").removeprefix(f"{where}: ")
        return {"error": error, "hint": exc.hint}
    return {"posts": len(issue.posts), "subject": issue.subject}


def _monthly(
    settings: Settings, blogs: BlogsFile, conn: Connection, *, now: datetime, slot: datetime
) -> dict[str, Any]:
    """The monthly edition: the last one out, and the next (its month, its slot, its draft)."""
    last = issues_store.last_monthly(conn)
    month, due = _next_month(settings, blogs, conn, now=now, slot=slot)
    path = monthly.draft_path(settings, month)
    draft = None
    if path.is_file():  # due_month is the draft's month when there is one
        draft = {"path": str(path)} | _contents(
            path, lambda: monthly.load_monthly(settings, blogs, conn, month)
        )
    return {
        "last": None if last is None else {"month": last.month} | _sent(conn, last, blogs),
        "next": {"month": month, "label": monthly.label(month), "held": held_month(conn) == month}
        | _at(due, blogs),
        "draft": draft,
    }


def _next_month(
    settings: Settings, blogs: BlogsFile, conn: Connection, *, now: datetime, slot: datetime
) -> tuple[str, datetime]:
    """The month of the next monthly edition and the slot that sends it: the first slot of
    the month after it, or the next run once that is past (the run catches it up). A month
    over with no weekly issue sent and no draft has no edition: this month's is next."""
    zone = blogs.newsletter.schedule.tz
    month = due_month(settings, blogs, conn, now=now)
    over = monthly.bounds(month, zone)[1] <= now
    if over and not monthly.draft_path(settings, month).is_file():
        if not monthly.sent_weekly(conn, month, zone):
            month = monthly.month_of(now, zone)
    return month, max(_first_slot_after(month, blogs), slot)


def _first_slot_after(month: str, blogs: BlogsFile) -> datetime:
    """The first scheduled slot of the month after ``month``: its edition's slot."""
    schedule = blogs.newsletter.schedule
    _, end = monthly.bounds(month, schedule.tz)
    return next_slot(schedule, end - timedelta(microseconds=1))


def _clicks(conn: Connection, blogs: BlogsFile) -> dict[str, Any]:
    """The latest edition sent with click counts: its clicks and its most clicked post."""
    counted = issue_clicks(conn, blogs)
    if counted is None:
        return {"issue": None, "subject": None, "clicks": 0, "top_post": None}
    top = counted.posts[0] if counted.posts and counted.posts[0].clicks else None
    blog = blogs.blog(top.blog) if top else None
    return {
        "issue": counted.issue,
        "subject": counted.subject,
        "clicks": counted.clicks,
        "top_post": None
        if top is None
        else {
            "post_id": top.post_id,
            "title": top.title,
            "blog": top.blog,
            "name": blog.name if blog else top.blog,
            "url": top.url,
            "clicks": top.clicks,
        },
    }
