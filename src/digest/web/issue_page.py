"""An archived issue for the web: the email's own view model, read back from the frozen content.

The page is built from the Issue kept in the ``issues`` table, never from the frozen mail HTML:
that copy greets a subscriber, carries their links and keeps the base URL of the day it was sent.
The grouping (categories, blocks, commentary once) is render/view.py's, called as the email
calls it, with links from the current DIGEST_BASE_URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from digest.config import BlogsFile
from digest.render import markdown
from digest.render.text import shorten
from digest.render.view import IssueView, build_view
from digest.store.issues import ArchivedIssue

DESCRIPTION_CHARS = 200  # OpenGraph and feed summaries: a sentence or two


@dataclass(frozen=True, slots=True)
class BlogCount:
    name: str
    anchor: str  # the id of the blog's first block on the issue page
    posts: int


@dataclass(frozen=True, slots=True)
class Section:
    """One line of "In this issue": a category, its blogs and how many posts each."""

    id: str
    title: str
    blogs: tuple[BlogCount, ...]

    @property
    def posts(self) -> int:
        return sum(b.posts for b in self.blogs)


@dataclass(frozen=True, slots=True)
class Neighbour:
    number: int
    subject: str
    url: str


@dataclass(frozen=True, slots=True)
class IssuePage:
    view: IssueView
    published: datetime
    url: str  # canonical
    description: str
    sections: tuple[Section, ...]


def web_view(
    issue: ArchivedIssue,
    blogs: BlogsFile,
    *,
    base_url: str,
    categories: frozenset[str] | None = None,
) -> IssuePage:
    base = base_url.rstrip("/")
    view = build_view(issue.content, blogs, base_url=base, categories=categories)
    return IssuePage(
        view=view,
        published=issue.sent_at or issue.created_at,
        url=f"{base}/archive/{issue.number}",
        description=describe(view, blogs),
        sections=sections(view),
    )


def sections(view: IssueView) -> tuple[Section, ...]:
    """Each category with its blogs (in order of first appearance) and their post counts."""
    out: list[Section] = []
    for category in view.categories:
        counts: dict[str, int] = {}
        names: dict[str, str] = {}
        for block in category.blocks:
            counts[block.blog] = counts.get(block.blog, 0) + len(block.posts) + block.more
            names.setdefault(block.blog, block.name)
        out.append(
            Section(
                id=category.id,
                title=category.title,
                blogs=tuple(BlogCount(names[b], f"blog-{b}", n) for b, n in counts.items()),
            )
        )
    return tuple(out)


def describe(view: IssueView, blogs: BlogsFile) -> str:
    """One or two sentences for OpenGraph, Twitter cards and feed summaries: never empty."""
    text = markdown.to_plain(view.intro) or view.preheader
    return shorten(text or blogs.newsletter.description or view.subject, DESCRIPTION_CHARS)


def neighbour(found: tuple[int, str] | None, base_url: str) -> Neighbour | None:
    if found is None:
        return None
    number, subject = found
    return Neighbour(number, subject, f"{base_url.rstrip('/')}/archive/{number}")
