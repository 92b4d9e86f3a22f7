"""Choosing what goes into the next issue. Pure: values in, values out, no I/O, no clock.

- The window ``[since, until)`` of first_seen: ``since`` is the previous issue's ``until`` (the
  first issue looks back ``lookback_days``), so between two issues no post is skipped or repeated.
- Posts grouped by category, then by blog, in blogs.yaml order.
- The "from the archive" pick: a curator's highlight or a back-catalogue post no issue featured,
  chosen by rendezvous hashing on the issue number: a fresh draft of the same issue picks the
  same post, and new candidates rarely displace it.
- Feed health, for the curator only: failing and gone feeds, dormant blogs, duplicates merged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol
from urllib.parse import urlsplit, urlunsplit

from digest.config import Blog, BlogsFile
from digest.models import IssuePost, Post

STORED_RESOLUTION = timedelta(seconds=1)  # store.db.ts() keeps whole seconds


@dataclass(frozen=True, slots=True)
class Window:
    since: datetime
    until: datetime

    def __contains__(self, moment: datetime) -> bool:
        return self.since <= moment < self.until


def issue_window(
    *,
    previous_until: datetime | None,
    draft_since: datetime | None,
    now: datetime,
    lookback_days: int,
) -> Window:
    """The window of the next issue, drafted at ``now``.

    ``previous_until``: the last issue's cutoff, the one source of truth once an issue exists.
    ``draft_since``: the existing draft's start, kept on a re-draft of the first issue so the
    look-back does not slide forward and drop posts.
    """
    if previous_until is not None:
        since = previous_until
    elif draft_since is not None:
        since = draft_since
    else:
        since = now - timedelta(days=lookback_days)
    # Times are stored to the second and the window is half-open: ending it one second after
    # `now` includes the posts gathered at `now` (`digest draft` gathers, then drafts, within
    # the same second), and the next issue starts exactly there.
    until = now.replace(microsecond=0) + STORED_RESOLUTION
    return Window(since=since, until=max(until, since))


def issue_post(post: Post, blog: Blog) -> IssuePost:
    return IssuePost(
        id=post.id,
        title=" ".join(post.title.split()) or (post.url or blog.name),
        url=post.url or blog.homepage,  # a post without a link still leads to its blog
        blog=blog.id,
        category=blog.category,
        author=post.author,
        date=post.date,
        excerpt=post.excerpt,
        words=post.words,
    )


def arrange(posts: Iterable[Post], blogs: BlogsFile) -> list[IssuePost]:
    """Posts of blogs still in blogs.yaml, by category then blog (file order), then date."""
    position = {blog.id: i for i, blog in enumerate(blogs.blogs())}
    known = [p for p in posts if p.blog in position]
    known.sort(key=lambda p: (position[p.blog], p.date, p.id))
    out = []
    for post in known:
        blog = blogs.blog(post.blog)
        assert blog is not None
        out.append(issue_post(post, blog))
    return out


def insertion_index(categories: Sequence[str], category: str, order: Sequence[str]) -> int:
    """Where a new post of ``category`` goes in a list whose entries have ``categories``:
    after the category's last entry; for a category not there yet, before the first entry of
    a category that comes later in blogs.yaml, else at the end."""
    for i in range(len(categories) - 1, -1, -1):
        if categories[i] == category:
            return i + 1
    rank = {c: i for i, c in enumerate(order)}
    mine = rank.get(category, len(rank))
    for i, other in enumerate(categories):
        if rank.get(other, len(rank)) > mine:
            return i
    return len(categories)


# --- from the archive -------------------------------------------------------------------------


def same_url(url: str) -> str:
    """A URL as compared with what earlier issues featured: scheme, case of the host and a
    trailing slash make no difference."""
    parts = urlsplit(url.strip())
    host = parts.netloc.lower().removeprefix("www.")
    return urlunsplit(("", host, parts.path.rstrip("/"), parts.query, parts.fragment))


def _score(number: int, url: str) -> str:
    return hashlib.sha256(f"{number}\n{same_url(url)}".encode()).hexdigest()


def highlight_id(blog: str, url: str) -> str:
    """Highlights are not posts; give them an id of the same shape, stable across drafts."""
    return f"{blog}-h{hashlib.sha1(same_url(url).encode()).hexdigest()[:7]}"


def archive_candidates(
    blogs: BlogsFile,
    catalogue: Mapping[str, Sequence[Post]],
    *,
    featured: Iterable[str],
    exclude: Iterable[str] = (),
) -> tuple[list[IssuePost], list[IssuePost]]:
    """(highlights, back catalogue) never featured, minus ``exclude`` (this week's posts)."""
    skip = {same_url(u) for u in featured} | {same_url(u) for u in exclude}
    by_url = {same_url(p.url): p for posts in catalogue.values() for p in posts if p.url}
    highlights: list[IssuePost] = []
    back: list[IssuePost] = []
    for blog in blogs.blogs():
        for link in blog.highlights:
            key = same_url(link.url)
            if key in skip:
                continue
            skip.add(key)
            known = by_url.get(key)
            highlights.append(
                IssuePost(
                    id=known.id if known else highlight_id(blog.id, link.url),
                    title=link.title,
                    url=link.url,
                    blog=blog.id,
                    category=blog.category,
                    author=known.author if known else None,
                    date=known.date if known else None,
                    excerpt=known.excerpt if known else "",
                    note=link.note,
                    words=known.words if known else None,
                )
            )
        for post in catalogue.get(blog.id, ()):
            if post.url and same_url(post.url) not in skip:
                back.append(issue_post(post, blog))
    return highlights, back


def pick_archive(
    number: int, highlights: Sequence[IssuePost], back: Sequence[IssuePost]
) -> IssuePost | None:
    """One pick per issue number: odd issues prefer the curator's highlights, even ones the
    back catalogue (serendipity), each falling back to the other. Within a pool the candidate
    with the lowest hash of (number, url) wins: deterministic, and stable as pools grow."""
    pools = (highlights, back) if number % 2 else (back, highlights)
    for pool in pools:
        if pool:
            return min(pool, key=lambda p: _score(number, p.url))
    return None


# --- feed health ------------------------------------------------------------------------------


class FeedStateLike(Protocol):
    """What health reads of models.FeedState."""

    @property
    def status(self) -> str: ...
    @property
    def error(self) -> str | None: ...
    @property
    def failures(self) -> int: ...
    @property
    def last_success(self) -> datetime | None: ...


class MailLike(Protocol):
    """What health reads of store.inbound.InboundMail (mail for blogs that publish by email)."""

    @property
    def blog(self) -> str | None: ...
    @property
    def sender(self) -> str | None: ...
    @property
    def subject(self) -> str | None: ...
    @property
    def status(self) -> str: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def confirm_url(self) -> str | None: ...


HealthKind = Literal[
    "failing",
    "gone",
    "dormant",
    "duplicate",
    "unfetched",
    "image",
    "page",
    "quarantined",
    "confirmation",
]


@dataclass(frozen=True, slots=True)
class HealthNote:
    blog: str
    kind: HealthKind
    text: str

    def __str__(self) -> str:
        return self.text


def feed_health(
    blogs: BlogsFile,
    *,
    states: Mapping[str, FeedStateLike],
    newest: Mapping[str, datetime | None],
    duplicates: Sequence[tuple[Post, str]],
    now: datetime,
    dormant_days: int,
    mail: Sequence[MailLike] = (),
) -> list[HealthNote]:
    """What the curator should know about the feeds; never part of the email.

    ``duplicates``: (post recorded as a duplicate in this window, blog id of the first copy).
    ``mail``: quarantined mail and newsletters' confirmations received in this window.
    """
    notes: list[HealthNote] = []
    for blog in blogs.blogs():
        state = states.get(blog.id)
        if blog.email is not None:
            state = None  # no feed to fetch: only dormancy applies, and its mail below
        elif state is None or state.status == "new":
            notes.append(HealthNote(blog.id, "unfetched", f"{blog.name}: not fetched yet"))
            continue
        if state is not None and state.status == "gone":
            reason = state.error or "the feed is gone"
            notes.append(
                HealthNote(
                    blog.id,
                    "gone",
                    f"{blog.name}: gone ({reason}): fix its feed URL in blogs.yaml "
                    "or remove the blog",
                )
            )
            continue
        if state is not None and state.status == "error":
            runs = "run" if state.failures == 1 else "runs"
            since = f", last success {state.last_success:%Y-%m-%d}" if state.last_success else ""
            notes.append(
                HealthNote(
                    blog.id,
                    "failing",
                    f"{blog.name}: failing for {state.failures} {runs}{since}: "
                    f"{state.error or 'unknown error'}",
                )
            )
        latest = newest.get(blog.id)
        if latest is not None and now - latest > timedelta(days=dormant_days):
            days = (now - latest).days
            notes.append(
                HealthNote(
                    blog.id,
                    "dormant",
                    f"{blog.name}: dormant, no post for {days} days (last {latest:%Y-%m-%d})",
                )
            )
    notes += [_mail_note(blogs, m) for m in mail]
    for post, first_blog in duplicates:
        copy = blogs.blog(post.blog)
        first = blogs.blog(first_blog)
        notes.append(
            HealthNote(
                post.blog,
                "duplicate",
                f"{copy.name if copy else post.blog}: {post.title!r} merged, already seen in "
                f"{first.name if first else first_blog} ({post.url})",
            )
        )
    return notes


def _mail_note(blogs: BlogsFile, mail: MailLike) -> HealthNote:
    blog = blogs.blog(mail.blog) if mail.blog else None
    who = blog.name if blog else "DIGEST_INBOX"
    what = f"{mail.subject!r} from {mail.sender or 'no sender'}"
    if mail.status == "confirmation":
        unverified = f" (unverified: {mail.reason})" if mail.reason else ""
        return HealthNote(
            mail.blog or "",
            "confirmation",
            f"{who}: the newsletter asks to confirm the subscription{unverified}: "
            f"{mail.confirm_url}",
        )
    return HealthNote(mail.blog or "", "quarantined", f"{who}: quarantined {what}: {mail.reason}")
