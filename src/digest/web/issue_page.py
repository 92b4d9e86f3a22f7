"""An archived issue for the web: the email's own view model, read back from the frozen content.

The page is built from the Issue kept in the ``issues`` table, never from the frozen mail HTML:
that copy greets a subscriber, carries their links and keeps the base URL of the day it was sent.
The grouping (categories, blocks, commentary as the issue showed it, "In this issue") is
render/view.py's, called as the email calls it but with every post in full, and with links from
the current DIGEST_BASE_URL.
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
        url=f"{base}/archive/{issue.key}",
        description=describe(view, blogs),
    )


def describe(view: IssueView, blogs: BlogsFile) -> str:
    """One or two sentences for OpenGraph, Twitter cards and feed summaries: never empty."""
    text = markdown.to_plain(view.intro) or view.preheader
    return shorten(text or blogs.newsletter.description or view.subject, DESCRIPTION_CHARS)


def neighbour(found: tuple[int, str] | None, base_url: str) -> Neighbour | None:
    if found is None:
        return None
    number, subject = found
    return Neighbour(number, subject, f"{base_url.rstrip('/')}/archive/{number}")
