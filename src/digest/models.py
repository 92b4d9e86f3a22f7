"""Plain values passed between the stages: gather -> draft -> render -> send.

Stages pass these, never database rows or feedparser dicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict


@dataclass(slots=True)
class Entry:
    """One entry as parsed from a feed, before it is stored."""

    key: str  # identity within the blog: guid, else link, else hash(title, date)
    title: str
    url: str | None
    author: str | None
    published: datetime | None  # UTC, as the feed claims it
    excerpt: str  # plain text, never HTML
    guid: str | None = None
    words: int | None = None  # of the full content (reading time); None: only a summary
    image: str | None = None  # the thumbnail the feed names: absolute http(s) URL
    image_alt: str | None = None  # its alt text, when the feed's <img> carries one


@dataclass(slots=True)
class Post:
    """A stored post."""

    id: str  # '<blog>-<8 hex>': stable, used in drafts
    blog: str  # blog id from blogs.yaml
    title: str
    url: str | None
    author: str | None
    published: datetime | None  # already clamped to first_seen
    first_seen: datetime
    excerpt: str
    words: int | None = None  # of the full content (reading time); None: only a summary
    image: str | None = None  # the thumbnail the feed names: absolute http(s) URL
    image_alt: str | None = None

    @property
    def date(self) -> datetime:
        """The date shown: min(published, first_seen) (REFERENCE.md section 2)."""
        return self.published if self.published is not None else self.first_seen


@dataclass(slots=True)
class FeedState:
    """How fetching one blog's feed went, for `digest feeds check`, `digest status`, reports."""

    blog: str  # blog id from blogs.yaml
    url: str | None  # the URL fetched (after discovery and permanent moves); None: not found yet
    status: str  # new | ok | error | gone
    http_status: int | None
    error: str | None  # why the last fetch failed, in words a person understands
    failures: int  # consecutive
    last_fetch: datetime | None
    last_success: datetime | None
    next_poll: datetime | None  # not before (Cache-Control, Retry-After, backoff); None: never
    warning: str | None = None  # the feed parsed, but oddly (feedparser's bozo with entries)


@dataclass(slots=True)
class Subscriber:
    id: int
    email: str
    name: str | None
    categories: frozenset[str] | None  # None: every category
    status: str  # pending | confirmed | unsubscribed | bounced
    token: str  # opaque public token for unsubscribe and preferences links
    cadence: str = "weekly"  # weekly | monthly: which editions they get


class Thumbnail(BaseModel):
    """A post's image as digest serves it: ``/images/<key>.<ext>``, stored in the database."""

    model_config = ConfigDict(extra="forbid")

    key: str  # sha256 of the source URL, hex (store/images.py)
    ext: str  # jpg | png
    width: int  # CSS pixels as shown (the stored image is twice that, for retina screens)
    height: int
    alt: str  # the feed's alt text, else the post's title


class IssuePost(BaseModel):
    """A post as it appears in an issue (and in the draft YAML, plus `include`)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    title: str
    url: str
    blog: str  # blog id
    category: str  # category id
    author: str | None = None
    date: datetime | None = None
    excerpt: str = ""
    note: str = ""  # the curator's Markdown
    words: int | None = None  # of the full content; None: the feed gave only a summary
    image: Thumbnail | None = None  # newsletter.images: cached, and the image was fetched


class Issue(BaseModel):
    """Everything needed to render an issue; frozen as JSON in the archive when sending starts."""

    model_config = ConfigDict(extra="forbid")

    number: int  # weekly: 1, 2, 3 ...; the monthly edition: YYYYMM (202611)
    subject: str
    intro: str = ""  # the curator's Markdown
    since: datetime
    until: datetime
    posts: list[IssuePost]  # included posts, in display order within their category
    archive_pick: IssuePost | None = None
    skipped_weeks: int = 0  # quiet weeks rolled into this one
    # blog id -> the curator's commentary this issue shows in full (issue/rhythm.py); the other
    # featured blogs get their tagline. None: an issue frozen before this was recorded, which
    # shows each blog's commentary once.
    commentary: dict[str, str] | None = None
    # 'YYYY-MM': the monthly edition of that month ("The month in TITLE", issue/monthly.py);
    # None: a weekly issue.
    month: str | None = None

    @property
    def kind(self) -> str:
        return "weekly" if self.month is None else "monthly"

    @property
    def key(self) -> str:
        """Its name in the web archive: /archive/12, /archive/2026-11."""
        return str(self.number) if self.month is None else self.month

    def categories(self) -> list[str]:
        seen: list[str] = []
        for post in self.posts:
            if post.category not in seen:
                seen.append(post.category)
        return seen
