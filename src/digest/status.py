"""`digest status`: where things stand, as one plain dict (printed as a table or as JSON)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from digest.config import BlogsFile, Settings
from digest.errors import DraftError
from digest.issue.draft import current_draft, load_issue
from digest.schedule import next_slot
from digest.store import deliveries, runs
from digest.store import feedback as feedback_store
from digest.store import feeds as feeds_store
from digest.store import inbound as inbound_store
from digest.store import issues as issues_store
from digest.store import subscribers as subscribers_store
from digest.store.db import Connection
from digest.weekly import held_issue


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
        "feedback": feedback_store.counts_since(conn, now - timedelta(days=30)),
    }
    if newsletter.mode == "review":
        out["next_run"]["review"] = _at(slot - timedelta(hours=newsletter.review_hours), blogs)
    if last is not None:
        out["last_issue"] = {
            "number": last.number,
            "subject": last.subject,
            "status": last.status,
            "date": _when(last.sent_at or last.created_at, blogs),
            "deliveries": deliveries.counts(conn, last.number),
        }
    path = current_draft(settings, conn)
    if path is not None:
        number = issues_store.next_number(conn)
        draft: dict[str, Any] = {
            "number": number,
            "path": str(path),
            "held": held_issue(conn) == number,
            "skipped_weeks": runs.skipped_weeks(conn, number),
        }
        try:
            issue = load_issue(settings, blogs, conn)
            draft["posts"] = len(issue.posts)
            draft["subject"] = issue.subject
        except DraftError as exc:
            # "path" is a key of its own: the error says what is wrong where, inside the file
            where = str(path)
            draft["error"] = exc.message.removeprefix(f"{where}, ").removeprefix(f"{where}: ")
            draft["hint"] = exc.hint
        out["draft"] = draft
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
    health["mail"] = inbound_store.counts_since(conn, now - timedelta(days=30))
    out["feeds"] = health
    run = runs.last_run(conn)
    if run is not None:
        out["last_run"] = {
            "outcome": run.outcome,
            "finished": _when(run.finished_at, blogs),
            "issue": run.issue,
            "error": run.error,
        }
    return out
