"""The monthly edition, "The month in TITLE", for readers who chose cadence: monthly.

It is composed from the weekly issues SENT in the month (in the newsletter's time zone), never
from the feeds: monthly readers get the best of what the curator already chose. First the
posts the curator annotated (a note is the strongest signal there is), then, with click counts
on, the posts readers followed most, then the rest in issue order; at most
``monthly.max_per_category`` per category. ``compose`` is pure: values in, values out.

The draft, ``drafts/monthly-YYYY-MM.yaml``, is edited like the weekly one and goes through the
same reading, validation and writing (issue/draft.py, issue/validate.py). Frozen, the edition
is keyed YYYYMM in ``issues`` (kind 'monthly'), so ``deliveries`` keeps it exactly-once per
reader like any weekly issue.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from digest.config import BlogsFile, Settings
from digest.errors import DraftError
from digest.issue.draft import (
    add_entries,
    draft_entry,
    read_document,
    set_readonly,
    write_document,
)
from digest.issue.validate import validate
from digest.models import Issue, IssuePost
from digest.store import issues as store_issues
from digest.store import posts as store_posts
from digest.store.db import Connection, ts

MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")
KEYS = ("month", "since", "until", "subject", "intro", "posts", "top_posts")
TOP_POSTS = 5  # the last issue's most-clicked posts the draft shows

HEADER = """\
The monthly edition of {title} for {label} ("The month in {title}"), for readers who chose
monthly: edit this file, then `digest preview --monthly` (and `digest send --monthly`).
subject and intro (Markdown, the month's note) are yours to write.
posts: composed from the weekly issues sent in {label}: the posts you annotated, then the
  most-clicked (with click counts on), then the rest, at most {cap} per category. The order is
  the display order within each category; note and include work as in the weekly draft.
month, since, until and top_posts are written by digest: edits to since, until and top_posts
  are ignored (the month's own bounds stand), and month must stay the file name's.
Drafted before {label} is over? The scheduler sends this file as it finds it: run
  `digest draft --monthly --month {month}` again to add the weekly issues sent since."""


# --- months ----------------------------------------------------------------------------------


def parse_month(text: str) -> str:
    """'2026-11' as given, or ValueError saying what a month looks like."""
    if not MONTH.fullmatch(text.strip()):
        raise ValueError(f"expected a month such as 2026-11, found {text!r}")
    return text.strip()


def edition_number(month: str) -> int:
    """The edition's key in ``issues`` and ``deliveries``: 2026-11 -> 202611."""
    year, mon = month.split("-")
    return int(year) * 100 + int(mon)


def label(month: str) -> str:
    """'November 2026'."""
    return f"{datetime.strptime(month, '%Y-%m'):%B %Y}"


def bounds(month: str, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """[first instant, first instant of the next month) in ``zone``, as aware times."""
    year, mon = (int(x) for x in month.split("-"))
    start = datetime(year, mon, 1, tzinfo=zone)
    end = datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=zone)
    return start, end


def month_of(moment: datetime, zone: ZoneInfo) -> str:
    return f"{moment.astimezone(zone):%Y-%m}"


def previous_month(moment: datetime, zone: ZoneInfo) -> str:
    first = moment.astimezone(zone).replace(day=1)
    return month_of(first - timedelta(days=1), zone)


def default_subject(title: str, month: str) -> str:
    return f"The month in {title}: {label(month)}"


def draft_path(settings: Settings, month: str) -> Path:
    return settings.drafts / f"monthly-{month}.yaml"


# --- composing -------------------------------------------------------------------------------


def compose(
    weekly: Sequence[Issue],
    blogs: BlogsFile,
    *,
    clicks: Mapping[str, int] | None = None,
) -> list[IssuePost]:
    """The month's posts from its weekly issues (in issue order), ranked and capped per
    category, in blogs.yaml category order, a blog's posts together. Posts of blogs no longer
    in blogs.yaml are left out; a post whose category is gone moves to its blog's."""
    seen: set[str] = set()
    posts: list[IssuePost] = []
    for issue in weekly:
        for post in issue.posts:
            blog = blogs.blog(post.blog)
            if blog is None or post.id in seen:
                continue
            seen.add(post.id)
            if blogs.category(post.category) is None:
                post = post.model_copy(update={"category": blog.category})
            posts.append(post)

    def rank(item: tuple[int, IssuePost]) -> tuple[int, int, int]:
        position, post = item
        if post.note.strip():
            return (0, 0, position)
        followed = clicks.get(post.id, 0) if clicks else 0
        return (1, -followed, position) if followed else (2, 0, position)

    cap = blogs.newsletter.monthly.max_per_category
    order = {c.id: i for i, c in enumerate(blogs.categories)}
    taken: dict[str, int] = {}
    chosen: list[tuple[int, IssuePost]] = []
    for position, post in sorted(enumerate(posts), key=rank):
        if taken.get(post.category, 0) < cap:
            taken[post.category] = taken.get(post.category, 0) + 1
            chosen.append((position, post))
    # Shown by category (blogs.yaml order), then by blog as the weekly issue shows them: each
    # blog where its best-ranked post comes, its posts together in rank order.
    lead: dict[tuple[str, str], int] = {}
    for rank_no, (_, post) in enumerate(chosen):
        lead.setdefault((post.category, post.blog), rank_no)
    chosen.sort(
        key=lambda item: (
            order.get(item[1].category, len(order)),
            lead[(item[1].category, item[1].blog)],
        )
    )
    return [post for _, post in chosen]


# --- the draft -------------------------------------------------------------------------------


@dataclass(slots=True)
class MonthlySummary:
    month: str
    path: Path | None  # None: nothing to compose, no draft written
    weekly: list[int]  # the weekly issues it is composed from
    created: bool = False
    added: int = 0  # posts added by this run
    included: int = 0
    entries: int = 0
    top_posts: list[str] | None = None  # None: click counts are off
    reason: str = ""  # why there is no edition, in words

    def line(self) -> str:
        if self.path is None:
            return self.reason
        verb = "drafted" if self.created else "refreshed"
        return (
            f"the monthly edition of {label(self.month)} {verb} ({self.path}): "
            f"{self.included} of {self.entries} post(s) from weekly issue(s) "
            + ", ".join(str(n) for n in self.weekly)
        )


def sent_weekly(conn: Connection, month: str, zone: ZoneInfo) -> list[store_issues.ArchivedIssue]:
    since, until = bounds(month, zone)
    return store_issues.sent_between(conn, since, until)


def top_posts(conn: Connection, blogs: BlogsFile) -> list[str]:
    """The last weekly issue's most-clicked posts, as lines for the draft: titles and counts."""
    from digest.store.clicks import top_posts as most_clicked

    last = store_issues.last_issue(conn)
    if last is None:
        return []
    titles = {p.id: p for p in last.content.posts}
    lines = []
    for post_id, count in most_clicked(conn, last.number, TOP_POSTS):
        post = titles.get(post_id)
        if post is None:
            continue
        blog = blogs.blog(post.blog)
        noun = "click" if count == 1 else "clicks"
        lines.append(f"{post.title} ({blog.name if blog else post.blog}): {count} {noun}")
    return lines


def refresh_monthly(
    settings: Settings, blogs: BlogsFile, conn: Connection, *, month: str
) -> MonthlySummary:
    """Create the monthly draft of ``month``, or add to it what weekly issues sent since
    brought; the curator's edits stay. Nothing sent that month: no draft, said in words."""
    zone = blogs.newsletter.schedule.tz
    if store_issues.get_monthly(conn, month) is not None:
        raise _sent_already(draft_path(settings, month), month)
    weekly = sent_weekly(conn, month, zone)
    numbers = [w.number for w in weekly]
    if not weekly:
        return MonthlySummary(
            month,
            None,
            [],
            reason=f"no weekly issue was sent in {label(month)}: no monthly edition to compose",
        )
    clicks = None
    if blogs.newsletter.click_counts:
        from digest.store.clicks import post_clicks

        clicks = post_clicks(conn, numbers)
    posts = compose([w.content for w in weekly], blogs, clicks=clicks)
    top = top_posts(conn, blogs) if blogs.newsletter.click_counts else None
    path = draft_path(settings, month)
    since, until = bounds(month, zone)
    created = not path.exists()
    if created:
        doc = _new_document(month, since, until, blogs, posts)
        added = len(posts)
    else:
        doc = read_document(path, missing="no monthly draft", command="digest draft --monthly")
        _load(doc, path, blogs, conn, month)  # a broken draft is reported, never overwritten
        added = len(add_entries(doc, posts, blogs))
    if top is not None:
        set_readonly(doc, "top_posts", CommentedSeq(top or ["no clicks counted yet"]))
        doc.yaml_set_comment_before_after_key(
            "top_posts", before="For you only: the last issue's most-clicked posts."
        )
    write_document(path, doc)
    draft = _load(read_document(path), path, blogs, conn, month)
    return MonthlySummary(
        month,
        path,
        numbers,
        created=created,
        added=added,
        included=sum(1 for _, included in draft.posts if included),
        entries=len(draft.posts),
        top_posts=top,
    )


def _sent_already(path: Path, month: str) -> DraftError:
    return DraftError(
        f"the monthly edition of {label(month)} is already in the archive",
        path=str(path),
        hint="`digest draft --monthly --month YYYY-MM` drafts another month",
    )


def _new_document(
    month: str, since: datetime, until: datetime, blogs: BlogsFile, posts: list[IssuePost]
) -> CommentedMap:
    title = blogs.newsletter.title
    doc = CommentedMap()
    doc["month"] = month
    doc["since"] = ts(since)
    doc["until"] = ts(until)
    doc["subject"] = default_subject(title, month)
    doc["intro"] = ""
    doc["posts"] = CommentedSeq(draft_entry(p) for p in posts)
    doc.yaml_set_start_comment(
        HEADER.format(
            title=title,
            label=label(month),
            month=month,
            cap=blogs.newsletter.monthly.max_per_category,
        )
    )
    return doc


def _load(doc: Any, path: Path, blogs: BlogsFile, conn: Connection, month: str) -> Any:
    """The draft validated, or DraftError naming file, line and field, in the monthly draft's
    words. ``since`` and ``until`` are the month's bounds whatever the file says (an edited or
    deleted one is put back, in ``doc``, for the next write): digest writes them."""
    if not isinstance(doc, CommentedMap):
        raise DraftError(
            f"expected a mapping with subject, intro and posts, found {_kind(doc)}",
            path=str(path),
            line=1,
            hint=f"move the file aside and run `digest draft --monthly --month {month}`: "
            "it composes the edition again",
        )
    since, until = bounds(month, blogs.newsletter.schedule.tz)
    if "month" not in doc:
        doc.insert(0, "month", month)
    set_readonly(doc, "since", ts(since), after="month")
    set_readonly(doc, "until", ts(until), after="since")
    nodes = doc.get("posts")
    ids = [
        n["id"]
        for n in (nodes if isinstance(nodes, list) else [])
        if isinstance(n, Mapping) and isinstance(n.get("id"), str)
    ]
    known = store_posts.get_posts(conn, ids)
    draft = validate(doc, path=str(path), blogs=blogs, known=known, keys=KEYS)
    if str(doc["month"]) != month:
        raise DraftError(
            f"this draft says month {doc['month']}, but its file name says {month}",
            path=str(path),
            line=draft.lines.get("month"),
            field="month",
            hint="digest writes `month`: restore it, or move the file aside and "
            f"`digest draft --monthly --month {month}` again",
        )
    return draft


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (no key at all)"
    return "a list" if isinstance(value, list) else repr(value)[:60]


def current_month(settings: Settings, conn: Connection) -> str | None:
    """The month of the newest monthly draft not sent yet, if there is one: what
    `digest preview --monthly` and `digest send --monthly` take."""
    months = sorted(
        (p.name[len("monthly-") : -len(".yaml")] for p in settings.drafts.glob("monthly-*.yaml")),
        reverse=True,
    )
    for month in months:
        if MONTH.fullmatch(month) and store_issues.get_monthly(conn, month) is None:
            return month
    return None


def load_monthly(
    settings: Settings, blogs: BlogsFile, conn: Connection, month: str | None = None
) -> Issue:
    """The monthly draft of ``month`` (None: the current one) as an Issue keyed YYYYMM;
    DraftError naming file, line and field when it is broken, or when there is none."""
    month = month or current_month(settings, conn)
    if month is None:
        raise DraftError(
            "no monthly draft",
            path=str(settings.drafts),
            hint="run `digest draft --monthly` to compose the last month's edition",
        )
    path = draft_path(settings, month)
    if store_issues.get_monthly(conn, month) is not None:
        raise _sent_already(path, month)
    command = f"digest draft --monthly --month {month}"
    doc = read_document(path, missing=f"no monthly draft for {label(month)}", command=command)
    draft = _load(doc, path, blogs, conn, month)
    return Issue(
        number=edition_number(month),
        month=month,
        subject=draft.subject,
        intro=draft.intro,
        since=draft.since,
        until=draft.until,
        posts=[p for p, included in draft.posts if included],
        commentary={},  # a month's round-up shows each blog's tagline, not its introduction
    )
